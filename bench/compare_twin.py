"""eigenssl's stored Table 1 runs beside the PyTorch twin's (bench/torch_twin.py cells), cell by cell:
readout top-1 mean ± std and per seed, Welch's t-test between the two, collapsed seeds, and the final
participation ratio of C. Prints a markdown table and writes it next to the twin's records.

Usage: python3 bench/compare_twin.py results/table1/cpu results/table1/cpu-twin   (needs scipy)
"""
import json
import statistics
import sys
from pathlib import Path

from scipy import stats


# What makes two runs the same protocol: compared only where both sides agree on all of these.
PROTOCOL = ("dataset", "width", "train_subset", "test_subset", "batch", "epochs", "warmup_epochs", "loss", "ema", "optimizer", "lr")


def load(runs_dir, twin_dir):
    ours, twin, protocols = {}, {}, {}
    for f in sorted(Path(runs_dir, "runs").glob("*.json")):
        r = json.loads(f.read_text())
        ours.setdefault(r["cell"], []).append((r["seed"], r["status"], r["metrics"].get("readout_top1"), r["metrics"].get("participation_ratio")))
        protocols.setdefault(r["cell"], {})[f] = {k: r["config"]["params"].get(k) for k in PROTOCOL}
    for f in sorted(Path(twin_dir).glob("*_seed*.json")):
        r = json.loads(f.read_text())
        twin.setdefault(r["cell"], []).append((r["seed"], r["status"], r["readout_top1"], r["participation_ratio"]))
        protocols.setdefault(r["cell"], {})[f] = {k: r["config"].get(k) for k in PROTOCOL}
    for cell, by_file in protocols.items():
        (first, want), *rest = by_file.items()
        for f, got in rest:
            differ = [f"{k}: {want[k]} in {first}, {got[k]} in {f}" for k in PROTOCOL if got[k] != want[k]]
            if differ:
                raise SystemExit(f"{cell}: the runs were not made with the same protocol; " + "; ".join(differ))
    return ours, twin


def summary(rows):
    acc = [r[2] for r in rows if r[2] is not None]
    prs = [r[3] for r in rows if r[3] is not None]
    collapsed = sum(r[1] == "collapsed" for r in rows)
    mean = statistics.mean(acc) if acc else float("nan")
    sd = statistics.stdev(acc) if len(acc) > 1 else float("nan")
    pr = f"{statistics.mean(prs):.1f}" if prs else "—"
    return acc, f"{mean:.1f} ± {sd:.1f} (n {len(acc)})", ", ".join(f"{a:.1f}" for a in acc), collapsed, pr


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    ours, twin = load(sys.argv[1], sys.argv[2])
    lines = ["| cell | eigenssl top-1 | per seed | collapsed | PR of C | twin top-1 | per seed | collapsed | PR of C | Welch p |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for cell in sorted(twin):
        a, sa, pa, ca, pra = summary(ours.get(cell, []))
        b, sb, pb, cb, prb = summary(twin.get(cell, []))
        p = stats.ttest_ind(a, b, equal_var=False).pvalue if len(a) > 1 and len(b) > 1 else float("nan")
        lines.append(f"| `{cell}` | {sa} | {pa} | {ca}/{len(ours.get(cell, []))} | {pra} | {sb} | {pb} | {cb}/{len(twin.get(cell, []))} | {prb} | {p:.2f} |")
    text = "\n".join(lines) + "\n"
    untwinned = sorted(set(ours) - set(twin))
    if untwinned:
        text += "\nNot run by the twin: " + ", ".join(f"`{c}`" for c in untwinned) + ".\n"
    print(text)
    Path(sys.argv[2], "comparison.md").write_text(
        "# eigenssl beside the PyTorch twin of the authors' code\n\n"
        f"`python3 bench/compare_twin.py {sys.argv[1]} {sys.argv[2]}`. Readout top-1 (%) after the last epoch, "
        "mean ± sample std over seeds; collapsed = std of the l2-normalised embeddings times sqrt(D) below 0.1 "
        "at the end; PR = participation ratio of C at the end (mean over seeds); Welch's t-test on top-1.\n\n" + text)


if __name__ == "__main__":
    main()

"""The summary of ci/gpu-check.sh: reads what the check wrote under OUT (which sections passed, the step
measurements, the smoke verdict, the full-width cell's record, the `reproduce --dry-run` plans), prints
the tables and writes OUT/gpu-check.json. A section that failed leaves its part of the summary saying so;
the other parts are still computed. Standard library only. Tested on CPU outputs by tests/gpu_check.rs.

Usage: python3 ci/gpu_check_summary.py OUT "GPU description"
"""
import glob, json, re, sys

out, gpu = sys.argv[1], sys.argv[2]
sections = [json.loads(line) for line in open(f"{out}/sections.jsonl") if line.strip()]


def section(prefix):  # the record of the section whose name starts with `prefix`, or None
    return next((s for s in sections if s["section"].startswith(prefix)), None)


def load(name):  # a JSON file the check wrote, or None where its section did not write it
    try:
        return json.load(open(f"{out}/{name}"))
    except (OSError, ValueError):
        return None


def planned(name):  # seconds of training steps that `reproduce --dry-run` expects, or None
    try:
        m = re.search(r"\((\d+) s of training steps\)", open(f"{out}/{name}").read())
    except OSError:
        return None
    return float(m.group(1)) if m else None


rows = []
for p in ("f32", "tf32"):
    for w in ("0.25", "1"):
        ours, theirs, mem = load(f"step-ours-{w}-{p}.json"), load(f"step-torch-{w}-{p}.json"), load(f"step-ours-{w}-{p}.mem.json")
        row = {"width": float(w), "precision": p}
        if ours:
            row.update(ours_ms=ours["step"]["median_s"] * 1e3, ours_img_s=ours["images_per_s"], ours_gpu_mib=mem and mem["gpu_peak_mib"])
        if theirs:
            row.update(torch_ms=theirs["step"]["median_s"] * 1e3, torch_img_s=theirs["images_per_s"],
                       torch_gpu_mib=theirs.get("gpu_peak_bytes", 0) / 2**20)
        if ours and theirs:
            row["ratio"] = ours["images_per_s"] / theirs["images_per_s"]
        rows.append(row)

smoke = section("2.")
smoke_verdict = "not run" if smoke is None else "skipped (the budget was spent)" if smoke.get("skipped") else "pass" if smoke["exit"] == 0 else f"CHANGED or failed (exit {smoke['exit']}; see smoke-verify-candle.txt and smoke-verify-native.txt)"
summary = {"gpu": gpu, "sections": sections, "steps": rows, "smoke_cuda_vs_cpu": smoke_verdict}

cell = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/cell/table1/gpucheck/runs/*.json"))]
steps_only, paper = planned("gpucheck-plan.txt"), planned("paper-plan.txt")
if paper:
    summary["paper_profile"] = {"steps_only_s": paper}
if cell and cell[0]["status"] == "ok":
    rec = cell[0]
    cfg = rec["config"]["params"]
    epochs, batch = cfg["epochs"], cfg["batch"]
    images = cfg["train_subset"] or {"cifar10": 50000, "stl10": 105000, "synthetic": 640}[cfg["dataset"]]
    # An epoch's training time (augmentation included) from its throughput; the last epoch is past warm-up.
    per_epoch = 2 * (images // batch) * batch / rec["history"]["images_per_s"][-1]
    summary["cell"] = {"cell": rec["cell"], "epochs": epochs, "wall_s": rec["provenance"]["wall_seconds"], "s_per_epoch": per_epoch,
                       "readout_top1": rec["metrics"].get("readout_top1")}
    if steps_only and paper:
        factor = per_epoch / (steps_only / epochs)
        summary["paper_profile"].update(overhead_factor=factor, expected_s=paper * factor, expected_days=paper * factor / 86400)
else:
    summary["cell"] = {"status": cell[0]["status"] if cell else "missing", "message": cell[0].get("message") if cell else None}
json.dump(summary, open(f"{out}/gpu-check.json", "w"), indent=2)


def num(row, key, fmt):
    return format(row[key], fmt) if row.get(key) is not None else "failed"


print("\n| section | exit | s |\n|---|---|---|")
for s in sections:
    print(f"| {s['section']} | {'skipped' if s.get('skipped') else s['exit']} | {s['seconds']} |")
print("\n| step, batch 2x256 | precision | eigenssl ms | img/s | GPU MiB | PyTorch ms | img/s | GPU MiB | ratio |\n|---|---|---|---|---|---|---|---|---|")
for r in rows:
    cols = [num(r, "ours_ms", ".1f"), num(r, "ours_img_s", ".0f"), num(r, "ours_gpu_mib", ".0f"),
            num(r, "torch_ms", ".1f"), num(r, "torch_img_s", ".0f"), num(r, "torch_gpu_mib", ".0f"), num(r, "ratio", ".2f")]
    print(f"| width {r['width']} | {r['precision']} | " + " | ".join(cols) + " |")
print(f"smoke, CUDA vs CPU: {summary['smoke_cuda_vs_cpu']}")
c = summary["cell"]
if "s_per_epoch" in c:
    print(f"{c['cell']} at full width: {c['s_per_epoch']:.1f} s per epoch (the last of {c['epochs']}; {c['wall_s']:.0f} s for the run with data loading and the closing evaluations)")
else:
    print(f"the full-width cell did not finish: {c}")
p = summary.get("paper_profile")
if p and "expected_days" in p:
    print(f"expected time of the whole paper profile on this GPU: {p['expected_days']:.1f} days "
          f"({p['steps_only_s'] / 3600:.0f} h of training steps x {p['overhead_factor']:.2f}, the measured cell's epoch over its steps' expected time)")
elif p:
    print(f"the paper profile's training steps alone: {p['steps_only_s'] / 3600:.1f} h on this GPU (no measured cell to scale them by)")
print(f"written: {out}/gpu-check.json, {out}/gpu-check.log")

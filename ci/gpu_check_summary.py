"""The summary of ci/gpu-check.sh: reads what the check wrote under OUT (step measurements, the smoke
verdict, the full-width cell's record, the `reproduce --dry-run` plans), prints the tables and writes
OUT/gpu-check.json. Standard library only. Tested on CPU outputs by tests/gpu_check.rs.

Usage: python3 ci/gpu_check_summary.py OUT "GPU description" SMOKE_EXIT_CODE
"""
import glob, json, re, sys
out, gpu, smoke = sys.argv[1], sys.argv[2], int(sys.argv[3])
def planned(name):  # seconds of training steps that `reproduce --dry-run` expects
    m = re.search(r"\((\d+) s of training steps\)", open(f"{out}/{name}").read())
    return float(m.group(1)) if m else None
rows = []
for w in ("0.25", "1"):
    ours, theirs = json.load(open(f"{out}/step-ours-{w}.json")), json.load(open(f"{out}/step-torch-{w}.json"))
    mem = json.load(open(f"{out}/step-ours-{w}.mem.json"))["gpu_peak_mib"]
    rows.append({"width": float(w), "ours_ms": ours["step"]["median_s"] * 1e3, "ours_img_s": ours["images_per_s"], "ours_gpu_mib": mem,
                 "torch_ms": theirs["step"]["median_s"] * 1e3, "torch_img_s": theirs["images_per_s"],
                 "torch_gpu_mib": theirs.get("gpu_peak_bytes", 0) / 2**20, "ratio": ours["images_per_s"] / theirs["images_per_s"]})
cell = [json.load(open(f)) for f in glob.glob(f"{out}/cell/table1/gpucheck/runs/*.json")]
summary = {"gpu": gpu, "steps": rows, "smoke_cuda_vs_cpu": "pass" if smoke == 0 else "CHANGED (see smoke-verify.txt)"}
if cell and cell[0]["status"] == "ok":
    rec = cell[0]
    cfg = rec["config"]["params"]
    epochs, batch = cfg["epochs"], cfg["batch"]
    images = cfg["train_subset"] or {"cifar10": 50000, "stl10": 105000, "synthetic": 640}[cfg["dataset"]]
    # An epoch's training time (augmentation included) from its throughput; the last epoch is past warm-up.
    per_epoch = 2 * (images // batch) * batch / rec["history"]["images_per_s"][-1]
    steps_only = planned("cell-plan.txt")
    paper = planned("paper-plan.txt")
    summary["cell"] = {"cell": rec["cell"], "epochs": epochs, "wall_s": rec["provenance"]["wall_seconds"], "s_per_epoch": per_epoch,
                       "readout_top1": rec["metrics"].get("readout_top1")}
    if steps_only and paper:
        factor = per_epoch / (steps_only / epochs)
        summary["paper_profile"] = {"steps_only_s": paper, "overhead_factor": factor, "expected_s": paper * factor,
                                    "expected_days": paper * factor / 86400}
else:
    summary["cell"] = {"status": cell[0]["status"] if cell else "missing", "message": cell[0].get("message") if cell else None}
json.dump(summary, open(f"{out}/gpu-check.json", "w"), indent=2)
print("\n| step, batch 2x256 | eigenssl ms | img/s | GPU MiB | PyTorch ms | img/s | GPU MiB | ratio |\n|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| width {r['width']} | {r['ours_ms']:.1f} | {r['ours_img_s']:.0f} | {r['ours_gpu_mib']:.0f} | {r['torch_ms']:.1f} | {r['torch_img_s']:.0f} | {r['torch_gpu_mib']:.0f} | {r['ratio']:.2f}x |")
print(f"smoke, CUDA vs CPU: {summary['smoke_cuda_vs_cpu']}")
c = summary["cell"]
if "s_per_epoch" in c:
    print(f"{c['cell']} at full width: {c['s_per_epoch']:.1f} s per epoch (the last of {c['epochs']}; {c['wall_s']:.0f} s for the run with data loading and the closing evaluations)")
else:
    print(f"the full-width cell did not run: {c}")
if "paper_profile" in summary:
    p = summary["paper_profile"]
    print(f"expected time of the whole paper profile on this GPU: {p['expected_days']:.1f} days "
          f"({p['steps_only_s'] / 3600:.0f} h of training steps x {p['overhead_factor']:.2f}, the measured cell's epoch over its steps' expected time)")
print(f"written: {out}/gpu-check.json, {out}/gpu-check.log")

"""Puts back, one at a time, each known way in which eigenssl once trained differently from the authors'
code, and runs the parity test (tests/parity.rs) against the committed fixtures: each must make it fail.
Restores every file afterwards. Prints one line per deviation and exits 1 if any went unnoticed.

The init law cannot show in the step comparisons (the twin starts from eigenssl's weights); it is caught
by the init-statistics check, so that mutation also regenerates the fixtures with the mutated code first
(needs a Python with torch: pass it as the first argument) and restores them afterwards.

Usage: python3 bench/parity_mutations.py [python-with-torch]
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = "tests/fixtures/parity"

MUTATIONS = [
    ("candle's init law instead of torchvision's", [("src/ssl/init.rs", "(InitLaw::Candle, _) => hint,", "(_, _) => hint,")], True),
    ("one W_P per step for both views", [("src/ssl/step.rs", "if self.cfg.dp_per_view {", "if false {")], False),
    ("evaluation forwards do not update C", [("src/ssl/step.rs", "if self.cfg.dp_eval_updates && !self.cfg.freeze_backbone {", "if false {")], False),
    ("no weight decay on batch-norm parameters and biases under SGD",
     [("src/ssl/optim.rs", "                        if wd != 0.0 {\n                            (g + (w * wd)?)?", "                        if wd != 0.0 && w.rank() != 1 {\n                            (g + (w * wd)?)?")], False),
    ("LARS applied to biases and batch-norm parameters", [("src/ssl/optim.rs", "if w.rank() == 1 {", "if false {")], False),
    ("tau = 0 target not equal to the online network (a separate target that is never updated)",
     [("src/ssl/step.rs", "if cfg.ema && !cfg.freeze_backbone {", "if !cfg.freeze_backbone {"),
      ("src/ssl/step.rs", "if self.target.is_some() {", "if self.cfg.ema && self.target.is_some() {")], False),
    ("readout learning rate not scaled with the batch", [("src/ssl/step.rs", "base_lr: cfg.classifier_lr * scale", "base_lr: cfg.classifier_lr")], False),
    ("warm-up reaching the base rate at step W instead of W - 1", [("src/ssl/schedule.rs", "t as f64 / (self.warmup - 1) as f64", "t as f64 / self.warmup as f64")], False),
]


def run(cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def main():
    python = sys.argv[1] if len(sys.argv) > 1 else None
    unnoticed = 0
    for what, edits, regenerate in MUTATIONS:
        originals = {}
        for path, old, new in edits:
            text = originals.get(path) or (ROOT / path).read_text()
            originals.setdefault(path, text)
            current = (ROOT / path).read_text()
            if current.count(old) != 1:
                raise SystemExit(f"{path}: expected `{old}` once; update this script")
            (ROOT / path).write_text(current.replace(old, new))
        try:
            if regenerate:
                if python is None:
                    print(f"skipped (needs a Python with torch): {what}")
                    continue
                made = run(["bench/make_parity_fixtures.sh", python])
                if made.returncode != 0:
                    raise SystemExit(made.stderr)
            test = run(["cargo", "test", "--release", "--test", "parity", "--", "--nocapture"])
            failed = test.returncode != 0
            lines = [l for l in (test.stdout + test.stderr).splitlines() if "relative error" in l]
            first = next((l for l in lines if "comparisons" not in l), "no tensor reported")
            print(f"{'FAILS (good)' if failed else 'PASSES (bad) '}: {what}\n    {first.strip()[:200]}")
            unnoticed += not failed
        finally:
            for path, text in originals.items():
                (ROOT / path).write_text(text)
            if regenerate:
                run(["git", "checkout", "--", FIXTURES])
    sys.exit(1 if unnoticed else 0)


if __name__ == "__main__":
    main()

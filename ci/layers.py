"""Checks that modules only use modules of their own layer or below (the guide, docs/src/architecture.md), and that
the files of a folder module (ssl/, theory/, ...) use each other without cycles.

Each top-level module of src/ is in one layer; a file's `crate::<module>` and `super::` references
name what it uses. Prints every upward reference and every cycle, and exits 1 if there is one.
Usage: python3 ci/layers.py
"""
import re
import sys
from pathlib import Path

LAYERS = [
    ("foundations", ["error", "rng", "normal", "stats", "fsutil", "git", "linalg", "overlay", "device", "interrupt"]),
    ("data", ["data"]),
    ("engines", ["theory", "ssl"]),
    ("dispatch", ["engine"]),
    ("spec", ["spec"]),
    ("harness", ["harness"]),
    ("presentation", ["present", "plot", "bench"]),
]
RANK = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
SRC = Path(__file__).resolve().parent.parent / "src"


def module_of(path):
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".rs")


def cycles():
    """Cycles among the files of each folder module, from `super::x` and `crate::<folder>::x`."""
    found = []
    for folder in sorted(p for p in SRC.iterdir() if p.is_dir()):
        files = {f.stem: f for f in folder.glob("*.rs") if f.stem != "mod"}
        edges = {}
        for name, f in files.items():
            text = "\n".join(l for l in f.read_text().splitlines() if not l.lstrip().startswith("//"))
            used = set(re.findall(r"super::([a-z_]+)", text)) | set(re.findall(rf"crate::{folder.name}::([a-z_]+)", text))
            edges[name] = sorted(u for u in used if u in files and u != name)
        state = {}

        def visit(node, path):
            state[node] = "open"
            for nxt in edges[node]:
                if state.get(nxt) == "open":
                    found.append(f"src/{folder.name}/: cycle " + " -> ".join(path[path.index(nxt):] + [nxt]))
                elif nxt not in state:
                    visit(nxt, path + [nxt])
            state[node] = "done"

        for node in sorted(edges):
            if node not in state:
                visit(node, [node])
    return found


def main():
    bad = []
    for f in sorted(SRC.rglob("*.rs")):
        mod = module_of(f)
        if mod in ("main", "lib"):
            continue  # the CLI and the crate root sit above every layer
        if mod not in RANK:
            bad.append(f"{f.relative_to(SRC.parent)}: module `{mod}` has no layer in ci/layers.py")
            continue
        text = "\n".join(l for l in f.read_text().splitlines() if not l.lstrip().startswith("//"))
        for used in sorted(set(re.findall(r"crate::([a-z_]+)", text))):
            if used in RANK and RANK[used] > RANK[mod]:
                bad.append(f"{f.relative_to(SRC.parent)}: `{mod}` ({LAYERS[RANK[mod]][0]}) uses `{used}` ({LAYERS[RANK[used]][0]})")
    bad += cycles()
    print("\n".join(bad) if bad else "layers: every module uses only its own layer or those below; no cycles inside a module")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

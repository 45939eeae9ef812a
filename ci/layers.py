"""Checks that modules only use modules of their own layer or below (the guide, docs/src/architecture.md), that
the modules of src/ and the files of each folder module (ssl/, theory/, ...) use each other without cycles,
and that the crates under crates/ (the kernel crate) use nothing of eigenssl and have no cycles among their
modules.

Each top-level module of src/ is in one layer; a file's `crate::<module>` and `super::` references
name what it uses. Prints every upward reference and every cycle, and exits 1 if there is one.
Usage: python3 ci/layers.py
"""
import re
import sys
from pathlib import Path

LAYERS = [
    ("foundations", ["error", "rng", "normal", "stats", "fsutil", "git", "linalg", "overlay", "device", "precision", "interrupt"]),
    ("data", ["data"]),
    ("engines", ["theory", "ssl"]),
    ("dispatch", ["engine"]),
    ("spec", ["spec"]),
    ("harness", ["harness"]),
    ("presentation", ["present", "plot", "bench"]),
]
RANK = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
CRATES = ROOT / "crates"


def module_of(path):
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".rs")


def code(f):
    return "\n".join(l for l in f.read_text().splitlines() if not l.lstrip().startswith("//"))


def uses(files, patterns):
    """The names each of `files` (name -> list of paths) mentions through any of the regex `patterns`."""
    edges = {}
    for name, paths in files.items():
        used = set()
        for f in paths:
            text = code(f)
            for p in patterns:
                used |= set(re.findall(p, text))
        edges[name] = sorted(u for u in used if u in files and u != name)
    return edges


def cycles_in(label, edges):
    """Every cycle a depth-first walk of `edges` (name -> names it uses) meets, as `label: cycle a -> b -> a`."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                found.append(f"{label}: cycle " + " -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def cycles():
    """Cycles among the top-level modules of src/, among the files of each folder module, and among the
    modules of each crate."""
    top = {}
    for f in SRC.rglob("*.rs"):
        if module_of(f) not in ("main", "lib", "cli"):
            top.setdefault(module_of(f), []).append(f)
    found = cycles_in("src/ (modules)", uses(top, [r"crate::([a-z_]+)"]))
    for folder in sorted(p for p in SRC.iterdir() if p.is_dir()):
        files = {f.stem: [f] for f in folder.glob("*.rs") if f.stem != "mod"}
        found += cycles_in(f"src/{folder.name}/", uses(files, [r"super::([a-z_]+)", rf"crate::{folder.name}::([a-z_]+)"]))
    for crate in sorted(p for p in CRATES.iterdir() if (p / "src").is_dir()):
        files = {f.stem: [f] for f in (crate / "src").glob("*.rs") if f.stem != "lib"}
        found += cycles_in(f"crates/{crate.name}/src/", uses(files, [r"super::([a-z_]+)", r"crate::([a-z_]+)"]))
    return found


def crate_boundary():
    """The crates under crates/ stand alone: no source, test, bench or manifest of theirs names eigenssl."""
    found = []
    for crate in sorted(p for p in CRATES.iterdir() if p.is_dir()):
        for f in sorted(crate.rglob("*.rs")) + [crate / "Cargo.toml"]:
            if re.search(r"\beigenssl\b", code(f) if f.suffix == ".rs" else f.read_text()):
                found.append(f"{f.relative_to(ROOT)}: uses eigenssl (the crates under crates/ must not)")
    return found


def main():
    bad = []
    for f in sorted(SRC.rglob("*.rs")):
        mod = module_of(f)
        if mod in ("main", "lib", "cli"):
            continue  # the command line (main.rs, cli/) and the crate root sit above every layer
        if mod not in RANK:
            bad.append(f"{f.relative_to(SRC.parent)}: module `{mod}` has no layer in ci/layers.py")
            continue
        for used in sorted(set(re.findall(r"crate::([a-z_]+)", code(f)))):
            if used in RANK and RANK[used] > RANK[mod]:
                bad.append(f"{f.relative_to(SRC.parent)}: `{mod}` ({LAYERS[RANK[mod]][0]}) uses `{used}` ({LAYERS[RANK[used]][0]})")
    bad += cycles()
    bad += crate_boundary()
    print("\n".join(bad) if bad else "layers: every module uses only its own layer or those below; no cycles between modules, inside a module or inside a crate; crates/ use nothing of eigenssl")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

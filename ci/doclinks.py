"""Checks every relative link and image of README.md and the guide (docs/src/*.md), offline: the file it
points to exists, and a #fragment names a heading of that page (mdBook's ids: lower case, spaces to
dashes, other punctuation dropped). Exit 1 with one line per broken link."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def anchors(page: pathlib.Path) -> set:
    ids = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            ids.add(text.replace(" ", "-"))
    return ids


def links(page: pathlib.Path):
    in_code = False
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            yield n, target


def main() -> int:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs" / "src").glob("*.md"))]
    broken = []
    for page in pages:
        for n, target in links(page):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}:{n}: {target}"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{where}: no heading #{fragment}")
    for b in broken:
        print(b)
    print(f"doc links: {len(pages)} pages, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

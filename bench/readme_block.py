"""Replace a marked block of the README with fresh figures: `<!-- NAME:start -->` … `<!-- NAME:end -->`."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_block(name: str, body: str, readme: Path = README) -> None:
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme}: no {start} … {end} block to fill")
    readme.write_text(pattern.sub(lambda _: f"{start}\n{body.rstrip()}\n{end}", text))

"""Turn CLINC150 (intent level) into domain-level routing cases for ``switchyard eval``.

Each in-scope query expects the domain of its intent (a route of ``routes.yaml``); each
out-of-scope query expects ``other``. Usage:

    python -m router_model.clinc150 --data ../shared/data/clinc150 --out build/clinc150_cases.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable, Iterator

OTHER = "other"
OOS_INTENT = "oos"
# Which splits make up a benchmark: the score is reported on test + oos_test only.
SPLITS = {
    "test": ("test", "oos_test"),
    "val": ("val", "oos_val"),
    "train": ("train", "oos_train"),
}


def intent_to_domain(domains: dict[str, list[str]]) -> dict[str, str]:
    """Invert ``domains.json`` ({domain: [intent, ...]}) into {intent: domain}."""
    mapping: dict[str, str] = {}
    for domain, intents in domains.items():
        for intent in intents:
            mapping[intent] = domain
    return mapping


def to_cases(rows: Iterable[tuple[str, str]], intents: dict[str, str]) -> Iterator[dict]:
    """One case per (query, intent) row; unknown intents and ``oos`` become ``other``."""
    for query, intent in rows:
        expected = OTHER if intent == OOS_INTENT else intents.get(intent, OTHER)
        yield {"messages": [{"role": "user", "content": query}], "expected": expected}


def load_cases(data_dir: Path, split: str = "test") -> list[dict]:
    """The cases of one benchmark split (``test`` = test + oos_test) from the raw data files."""
    data = json.loads((data_dir / "data_full.json").read_text())
    intents = intent_to_domain(json.loads((data_dir / "domains.json").read_text()))
    cases: list[dict] = []
    for part in SPLITS[split]:
        cases.extend(to_cases(data[part], intents))
    return cases


def write_jsonl(cases: Iterable[dict], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with out.open("w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinc150", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with data_full.json and domains.json")
    parser.add_argument("--out", type=Path, required=True, help="CASES.jsonl to write")
    parser.add_argument("--split", choices=sorted(SPLITS), default="test", help="default: test + oos_test")
    args = parser.parse_args(argv)
    n = write_jsonl(load_cases(args.data, args.split), args.out)
    print(f"wrote {n} cases to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

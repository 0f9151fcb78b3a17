"""`make bench-routing`: the CLINC150 domain-level routing benchmark, figures into the README.

Scores the embedded engine with the evaluation harness (`switchyard eval`) on test + oos_test of
../shared/data/clinc150 (see its README for the rules), and writes the figures, the command and
the date into the README's bench-routing block.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.readme_block import replace_block

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "clinc150"))
    parser.add_argument("--engine", default="embedded")
    args = parser.parse_args()
    data = Path(args.data)
    cases = REPO / "build" / "clinc150_cases.jsonl"
    cases.parent.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "router_model.clinc150", "--data", str(data), "--out", str(cases)], check=True)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "filter.runtime.cli", "eval", "--routes", str(data / "routes.yaml"), "--cases", str(cases),
         "--engine", args.engine, "--json"],
        check=True, capture_output=True, text=True,
    )
    figures = json.loads(result.stdout)
    (REPO / "build" / "clinc150_result.json").write_text(json.dumps(figures, indent=2))
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    body = "\n".join([
        "| engine | overall | in-scope | out-of-scope recall | decision p50 | p95 | cases |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {args.engine} | {pct(figures['accuracy'])} | {pct(figures['in_scope_accuracy'])} | "
        f"{pct(figures['out_of_scope_recall'])} | {figures['latency_ms']['p50']:.1f} ms | {figures['latency_ms']['p95']:.1f} ms | "
        f"{figures['n']} |",
        "",
        f"Measured by `make bench-routing` on {time.strftime('%Y-%m-%d')} ({platform.machine()}, "
        f"{_cores()} cores, {time.monotonic() - started:.0f} s).",
    ])
    replace_block("bench-routing", body)
    print(body)
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())

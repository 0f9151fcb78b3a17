"""`make bench-routing`: the embedded engine on public routing sets, figures into the README.

- Zero-shot (the headline): CLINC150 test + oos_test, the ten routes known by their
  descriptions only (../shared/data/clinc150, see its README).
- Examples track: the same routes with k = 3 and k = 10 examples per domain drawn from `train`
  (fixed seeds), scored on the same test cases.
- Transfer: SNIPS test (../shared/data/snips; no out-of-scope cases: every "other" is a miss) and
  the coding-route set's test half (bench/routing_sets/coding), with the knobs fitted on CLINC150.
- Latency: each decision alone through the engine's async path (p50/p95); throughput: 16
  decisions in flight at once (micro-batched), decisions per second; and whether the batched
  decisions are identical to one-at-a-time ones.

Nothing here is fitted: the knobs come from `python -m router_model.embedded_tune`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import time
from pathlib import Path

from bench.readme_block import replace_block
from router_model.clinc150 import OTHER, load_cases
from router_model.embedded import EmbeddedEngine
from router_model.evaluate import latency_summary, load_routes, score
from router_model.embedded_text import routing_text
from router_model.engine import Route

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = 16


def _shared_data() -> Path:
    """../shared/data beside the checkout (or beside the folder of worktrees)."""
    for folder in (REPO.parent, REPO.parent.parent):
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return REPO.parent / "shared" / "data"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def with_examples(routes: list[Route], train: list[dict], k: int, seed: int) -> list[Route]:
    rng = random.Random(seed)
    by_route: dict[str, list[str]] = {r.name: [] for r in routes}
    for case in train:
        if case["expected"] in by_route:
            by_route[case["expected"]].append(routing_text(case["messages"]))
    return [Route(r.name, r.description, tuple(rng.sample(by_route[r.name], k))) for r in routes]


async def _sequential(engine: EmbeddedEngine, routes: list[Route], cases: list[dict]) -> tuple[list[str], list[float]]:
    predicted, seconds = [], []
    for case in cases:
        start = time.perf_counter()
        route = await engine.choose(routes, case["messages"])
        seconds.append(time.perf_counter() - start)
        predicted.append(route or OTHER)
    return predicted, seconds


async def _concurrent(engine: EmbeddedEngine, routes: list[Route], cases: list[dict]) -> tuple[list[str], float]:
    """CONCURRENCY decisions in flight at all times; decisions per second."""
    predicted: list[str] = [OTHER] * len(cases)
    queue = iter(range(len(cases)))

    async def client() -> None:
        for i in queue:
            predicted[i] = await engine.choose(routes, cases[i]["messages"]) or OTHER

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return predicted, len(cases) / (time.perf_counter() - start)


def track(engine: EmbeddedEngine, routes: list[Route], cases: list[dict], timing: bool) -> dict:
    engine.index_for(routes)
    expected = [c["expected"] for c in cases]
    if timing:
        predicted, seconds = asyncio.run(_sequential(engine, routes, cases))
        batched, rate = asyncio.run(_concurrent(engine, routes, cases))
    else:
        scored = engine.score_many([(routes, c["messages"]) for c in cases])
        predicted, seconds, batched, rate = [s.route or OTHER if s else OTHER for s in scored], [], None, None
    result = score(expected, predicted, [r.name for r in routes])
    result["to_other"] = round(sum(p == OTHER for e, p in zip(expected, predicted) if e != OTHER) / max(1, result["n_in_scope"]), 4)
    if timing:
        result["latency_ms"] = latency_summary(seconds)
        result["decisions_per_s"] = round(rate, 1)
        result["identical_batched"] = sum(a == b for a, b in zip(predicted, batched))
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(_shared_data()))
    parser.add_argument("--no-readme", action="store_true", help="print the figures only")
    args = parser.parse_args()
    data = Path(args.data)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    engine = EmbeddedEngine()
    clinc_routes = load_routes(data / "clinc150" / "routes.yaml")
    clinc_test = load_cases(data / "clinc150", "test")
    clinc_train = load_cases(data / "clinc150", "train")
    coding = REPO / "bench" / "routing_sets" / "coding"
    results = {
        "zero-shot": track(engine, clinc_routes, clinc_test, timing=True),
        "k=3": track(engine, with_examples(clinc_routes, clinc_train, 3, seed=3), clinc_test, timing=True),
        "k=10": track(engine, with_examples(clinc_routes, clinc_train, 10, seed=10), clinc_test, timing=True),
        "snips": track(engine, load_routes(data / "snips" / "routes.yaml"), _jsonl(data / "snips" / "test.jsonl"), timing=False),
        "coding": track(engine, load_routes(coding / "routes.yaml"), _jsonl(coding / "test.jsonl"), timing=False),
    }
    asyncio.run(engine.aclose())
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build" / "routing_result.json").write_text(json.dumps(results, indent=2))

    def pct(v: float) -> str:
        return f"{100 * v:.1f} %"

    rows = [
        "| track | routes know | overall | in-scope | out-of-scope recall | in-scope sent to other | decision p50 | p95 | decisions/s, 16 in flight | batched = one at a time | cases |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    labels = {"zero-shot": ("CLINC150, zero-shot (headline)", "descriptions"),
              "k=3": ("CLINC150, examples track", "descriptions + 3 examples each"),
              "k=10": ("CLINC150, examples track", "descriptions + 10 examples each"),
              "snips": ("SNIPS test, transfer (no out-of-scope cases)", "descriptions"),
              "coding": ("coding routes test, transfer", "descriptions")}
    for key, r in results.items():
        name, know = labels[key]
        oos = pct(r["out_of_scope_recall"]) if r["n_out_of_scope"] else "–"
        timed = (f"{r['latency_ms']['p50']:.2f} ms | {r['latency_ms']['p95']:.2f} ms | {r['decisions_per_s']:.0f} | "
                 f"{r['identical_batched']}/{r['n']}") if "latency_ms" in r else "– | – | – | –"
        rows.append(f"| {name} | {know} | {pct(r['accuracy'])} | {pct(r['in_scope_accuracy'])} | {oos} | {pct(r['to_other'])} | "
                    f"{timed} | {r['n']} |")
    body = "\n".join(rows + [
        "",
        f"Measured by `make bench-routing` on {time.strftime('%Y-%m-%d')} ({platform.machine()}, {os.cpu_count()} cores, "
        f"{time.monotonic() - started:.0f} s; 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: "
        f"other work on the machine shows in the times). Latency: one decision at a time through the engine's async path "
        f"(tokenizer, encoder, scoring); decisions/s: {CONCURRENCY} in flight, micro-batched.",
    ])
    if not args.no_readme:
        replace_block("bench-routing", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

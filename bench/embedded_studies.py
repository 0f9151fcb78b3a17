"""Two design studies of the embedded engine, re-runnable (figures in docs/design-notes.md).

    python -m bench.embedded_studies batching     # where a batch's work runs, and the wait
    python -m bench.embedded_studies max-tokens   # accuracy of the development sets by token cut

`batching` interleaves, in one process, the earlier design (the engine's thread tokenises,
encodes and scores; a 0.5 ms timed wait) with the shipped one (the loop tokenises and scores, the
thread only runs the encoder; one loop turn): decisions one at a time (p50, p99) and 16 in flight
(decisions/s). `max-tokens` scores CLINC150 val, SNIPS train and the coding dev set with turns
cut to N word pieces (never the test files).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from bench.perf_procs import ROUTES
from bench.routing import _jsonl, _shared_data
from router_model.embedded import EmbeddedEngine
from router_model.encoder_onnx import OnnxEncoder
from router_model.engine import Route

REPO = Path(__file__).resolve().parent.parent


class _EncodeOnly:
    """The encoder without prepare/run: the engine then does the whole batch on its thread."""

    def __init__(self, encoder: OnnxEncoder):
        self.encoder = encoder

    def encode(self, texts):
        return self.encoder.encode(texts)


def batching(rounds: int = 6) -> None:
    routes = [Route(name, description) for _, name, description in ROUTES]
    encoder = OnnxEncoder()
    engines = {"engine thread does all, 0.5 ms timed wait": EmbeddedEngine(encoder=_EncodeOnly(encoder), batch_wait_s=0.0005),
               "loop prepares and scores, one loop turn (shipped)": EmbeddedEngine(encoder=encoder, batch_wait_s=0.0)}
    for engine in engines.values():
        engine.index_for(routes)
    counter = iter(range(10**9))

    def message() -> list[dict]:
        return [{"role": "user", "content": f"write a python function that merges two sorted lists (request {next(counter)})"}]

    async def one_at_a_time(engine: EmbeddedEngine, n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            await engine.choose(routes, message())
            times.append((time.perf_counter() - start) * 1000)
        return times

    async def in_flight(engine: EmbeddedEngine, n: int) -> float:
        todo = iter(range(n))

        async def client() -> None:
            for _ in todo:
                await engine.choose(routes, message())

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(16)))
        return n / (time.perf_counter() - start)

    async def run() -> None:
        times = {k: [] for k in engines}
        rates = {k: [] for k in engines}
        for _ in range(rounds):
            for name, engine in engines.items():
                times[name] += await one_at_a_time(engine, 60)
                rates[name].append(await in_flight(engine, 320))
        for name in engines:
            ordered = sorted(times[name])
            print(f"{name:52s} one at a time p50 {statistics.median(ordered):.2f} ms, p99 "
                  f"{ordered[int(0.99 * (len(ordered) - 1))]:.2f} ms | 16 in flight {statistics.median(rates[name]):.0f}/s")

    asyncio.run(run())


def max_tokens() -> None:
    from router_model.clinc150 import load_cases
    from router_model.evaluate import load_routes, score

    data = _shared_data()
    coding = REPO / "bench" / "routing_sets" / "coding"
    sets = {"CLINC150 val": (load_routes(data / "clinc150" / "routes.yaml"), load_cases(data / "clinc150", "val")),
            "SNIPS train": (load_routes(data / "snips" / "routes.yaml"), _jsonl(data / "snips" / "train.jsonl")),
            "coding dev": (load_routes(coding / "routes.yaml"), _jsonl(coding / "dev.jsonl"))}
    encoder = OnnxEncoder(max_tokens=128)
    for cut in (128, 64, 32, 24, 16):
        encoder.max_tokens, encoder.head = cut, cut - min(16, cut // 4)
        engine = EmbeddedEngine(encoder=encoder)
        row = []
        for name, (routes, cases) in sets.items():
            answers = engine.score_many([(routes, c["messages"]) for c in cases])
            predicted = [(s.route or "other") if s else "other" for s in answers]
            row.append(f"{name} {100 * score([c['expected'] for c in cases], predicted)['accuracy']:.1f} %")
        print(f"{cut:4d} word pieces: " + ", ".join(row))


if __name__ == "__main__":
    study = sys.argv[1] if len(sys.argv) > 1 else ""
    if study == "batching":
        batching()
    elif study == "max-tokens":
        max_tokens()
    else:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)

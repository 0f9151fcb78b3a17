"""`make bench`'s embedded-engine part: decision times from the access log, the decision tail with
the other core busy, and the preference-path targets, side by side with the alias path.

Decision time is the filter's own `router_ms` (trimming, cache key, batching wait and queue,
encoder, scoring), read from the JSON access log lines a round wrote; the rest of each
request's latency is the same filter path as the alias requests'.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TAIL_DECISIONS = 400


class LogTail:
    """The `router_ms` of the access-log lines written to a Switchyard log since `mark()`."""

    def __init__(self, path: Path | None):
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path and self.path.exists() else 0

    def router_ms(self) -> list[float]:
        if not self.path or not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        values = []
        for line in data.splitlines():
            if b'"router_ms"' not in line:
                continue
            try:
                value = json.loads(line).get("router_ms")
            except ValueError:
                continue
            if isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
                values.append(float(value))
        return values


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def decision_tail(busy: bool) -> dict:
    """Sequential new decisions through the engine's async path, with one core spinning in
    another process (or not): the tail a thread pool fighting for cores would show."""
    from bench.perf_procs import ROUTES
    from router_model.embedded import EmbeddedEngine
    from router_model.engine import Route

    routes = [Route(name, description) for _, name, description in ROUTES]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        engine = EmbeddedEngine()
        engine.index_for(routes)

        async def run() -> list[float]:
            times = []
            for i in range(TAIL_DECISIONS):
                start = time.perf_counter()
                await engine.choose(routes, [{"role": "user", "content": f"write a python function that merges two sorted lists ({i})"}])
                times.append((time.perf_counter() - start) * 1000)
            await engine.aclose()
            return times

        times = asyncio.run(run())
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return {"busy": busy, "n": len(times), "p50_ms": statistics.median(times), "p99_ms": percentile(times, 99),
            "max_ms": max(times)}


def checks(rows_by: dict, paced_by: dict, router_ms: dict, rss_loaded: dict, tails: list[dict]) -> list[tuple[str, str, bool | None]]:
    """The embedded engine's targets: (target, measured, pass)."""
    out: list[tuple[str, str, bool | None]] = []
    alias, pref = rows_by["alias"], rows_by["pref_uncached"]
    ratio = pref["rps"] / alias["rps"]
    out.append(("preference-path throughput ≥ 0.5× the alias path (filter path, 16 connections, every prompt new)",
                f"{ratio:.2f}× ({pref['rps']:.0f} vs {alias['rps']:.0f} req/s)", ratio >= 0.5))
    if rows_by.get("litellm"):
        out.append(("… and against the LiteLLM proxy", f"{pref['rps'] / rows_by['litellm']['rps']:.1f}×", None))
    paced_pref, paced_alias = paced_by.get(("pref_uncached", "pref_uncached")), paced_by.get(("pref_uncached", "alias"))
    paced_ms = router_ms.get("paced")
    if paced_pref and paced_alias:
        added = paced_pref["p50_ms"] - paced_alias["p50_ms"]
        decision = percentile(paced_ms, 50) if paced_ms else None
        shown = f"{decision:.2f} ms decision p50; {added:+.2f} ms end to end vs alias at {paced_pref['rate']:.0f} req/s" if decision is not None \
            else f"{added:+.2f} ms end to end"
        out.append(("added decision latency p50 ≤ 5 ms at 25 % of the preference path's maximum", shown,
                    (decision if decision is not None else added) <= 5.0))
    loaded = router_ms.get("pref_uncached")
    if loaded:
        p50 = percentile(loaded, 50)
        out.append(("decision latency p50 ≤ 15 ms at 16 connections", f"{p50:.2f} ms (p99 {percentile(loaded, 99):.2f} ms)",
                    p50 <= 15.0))
    worker_cpu = lambda row: sum(v for k, v in row["cpu_per_1k"].items() if k.startswith("worker"))  # noqa: E731
    per_decision = worker_cpu(pref) - worker_cpu(alias)
    out.append(("worker CPU per decision ≤ 2 ms", f"{per_decision:.2f} ms (worker per request {worker_cpu(pref):.2f} vs "
                f"{worker_cpu(alias):.2f} ms on the alias path)", per_decision <= 2.0))
    emb = [v for k, v in rss_loaded.get("syemb", {}).items() if k.startswith("worker") and v]
    none = [v for k, v in rss_loaded.get("sy1", {}).items() if k.startswith("worker") and v]
    if emb and none:
        extra = max(emb) - max(none)
        out.append(("extra resident memory ≤ 200 MB per worker", f"+{extra:.0f} MB ({max(emb):.0f} vs {max(none):.0f} MB)", extra <= 200))
    for tail in tails:
        if not tail["busy"]:
            out.append(("(reference) sequential decisions with the other core idle",
                        f"p50 {tail['p50_ms']:.2f}, p99 {tail['p99_ms']:.2f}, max {tail['max_ms']:.2f} ms", None))
        else:
            r = tail["p99_ms"] / tail["p50_ms"]
            out.append(("decision p99 ≤ 3× p50 with the other core busy",
                        f"{r:.1f}× (p50 {tail['p50_ms']:.2f}, p99 {tail['p99_ms']:.2f}, max {tail['max_ms']:.2f} ms; "
                        f"{tail['n']} sequential decisions)", r <= 3.0))
    if "pref_uncached2" in rows_by:
        two = rows_by["pref_uncached2"]["rps"]
        out.append(("preference-path throughput grows with gateway.workers: 2",
                    f"{two / pref['rps']:.2f}× ({pref['rps']:.0f} → {two:.0f} req/s)", two > pref["rps"]))
    return out


def render(res: dict) -> list[str]:
    lines = [
        "",
        "## Embedded engine: the preference path (`auto`, every prompt new)",
        "",
        "Side by side with the alias path through the filter (`gateway.fast_path: false`) in the same run. Decision "
        "times are the filter's `router_ms` from the access log (batching wait, queue, encoder, scoring); "
        "worker CPU per decision is the worker CPU per preference request minus that per alias request.",
        "",
        "| target | measured | result |",
        "| --- | --- | --- |",
    ]
    for target, measured, ok in res.get("embedded_checks", []):
        lines.append(f"| {target} | {measured} | {'–' if ok is None else ('pass' if ok else '**fail**')} |")
    lines.append("")
    return lines

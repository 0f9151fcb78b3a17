"""`make soak`: a bounded mixed load against a real gateway, loopback only, then a report.

Mix: non-streaming and streaming chat completions, preference-routed requests (embedded engine,
varied prompts), Anthropic clients translated to an OpenAI-style model, requests whose provider
fails (503) and fails over, and requests to a provider that is down with no fallback (a 503 is
the expected answer). Reports requests sent, errors that should not have happened, resident
memory of each process at start and end, and latency p50/p99. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.readme_block import replace_block  # noqa: E402
from tests.gateway import Gateway  # noqa: E402
from tests.standins import StandIn, anthropic_reply, json_reply, openai_reply  # noqa: E402

TOPICS = ["a python function to merge two sorted lists", "a haiku about the sea", "why my rust code panics on unwrap",
          "a sql query for the ten largest orders", "a short story about a lighthouse", "what this stack trace means"]


@dataclass
class Kind:
    name: str
    path: str
    expect: int
    body: callable
    stream: bool = False


def kinds() -> list[Kind]:
    counter = itertools.count()
    hello = [{"role": "user", "content": "hello"}]
    return [
        Kind("chat", "/v1/chat/completions", 200, lambda: {"model": "openai/gpt-4o", "messages": hello}),
        Kind("chat", "/v1/chat/completions", 200, lambda: {"model": "fast", "messages": hello}),
        Kind("stream", "/v1/chat/completions", 200,
             lambda: {"model": "openai/gpt-4o", "messages": hello, "stream": True}, stream=True),
        Kind("routed", "/v1/chat/completions", 200, lambda: {"model": "auto", "messages": [
            {"role": "user", "content": f"please write {TOPICS[next(counter) % len(TOPICS)]} (#{next(counter)})"}]}),
        Kind("anthropic", "/v1/messages", 200,
             lambda: {"model": "openai/gpt-4o", "max_tokens": 50, "messages": hello}),
        Kind("failover", "/v1/chat/completions", 200, lambda: {"model": "local/flaky", "messages": hello}),
        Kind("down", "/v1/chat/completions", 503, lambda: {"model": "local/down", "messages": hello}),
    ]


@dataclass
class Tally:
    sent: int = 0
    unexpected: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)


async def worker(client: httpx.AsyncClient, base: str, mix: list[Kind], deadline: float, tally: Tally, offset: int):
    for i in itertools.count(offset):
        if time.monotonic() >= deadline:
            return
        kind = mix[i % len(mix)]
        start = time.perf_counter()
        try:
            if kind.stream:
                async with client.stream("POST", base + kind.path, json=kind.body()) as response:
                    body = await response.aread()
                    ok = response.status_code == kind.expect and body.rstrip().endswith(b"[DONE]")
            else:
                response = await client.post(base + kind.path, json=kind.body())
                ok = response.status_code == kind.expect
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            ok, status = False, type(exc).__name__
        tally.latencies.append(time.perf_counter() - start)
        tally.sent += 1
        tally.by_kind[kind.name] = tally.by_kind.get(kind.name, 0) + 1
        if not ok:
            key = f"{kind.name}:{status}"
            tally.unexpected[key] = tally.unexpected.get(key, 0) + 1


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def processes(gateway: Gateway) -> dict[str, int]:
    named = {"supervisor": gateway.process.pid}
    for pid, cmd in sorted(gateway.children().items()):
        name = "envoy" if Path(cmd.split()[0]).name == "envoy" else f"worker-{len([n for n in named if n.startswith('worker')]) + 1}"
        named[name] = pid
    return named


async def run(seconds: float, concurrency: int, gateway: Gateway) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        mix = kinds()
        await asyncio.gather(*(worker(client, gateway.url, mix, deadline, tally, n) for n in range(concurrency)))
    return tally


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()

    flaky = lambda request: json_reply(503, {"error": {"message": "overloaded"}})  # noqa: E731
    provider = lambda request: (anthropic_reply if request.path.endswith("/messages") else openai_reply)(request)  # noqa: E731
    with StandIn(provider) as upstream, StandIn(flaky) as broken, tempfile.TemporaryDirectory() as tmp:
        config = {
            "llm_providers": [
                {"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True},
                {"model": "openai/gpt-4o-mini", "access_key": "k", "base_url": f"{upstream.url}/v1",
                 "routing_preferences": [{"name": "code", "description": "code: writing, explaining and debugging programs, functions, queries"}]},
                {"model": "anthropic/claude", "access_key": "k", "base_url": f"{upstream.url}/v1",
                 "routing_preferences": [{"name": "writing", "description": "creative writing: stories, poems, haiku"}]},
                {"model": "local/flaky", "base_url": f"{broken.url}/v1", "fallbacks": ["openai/gpt-4o"]},
                {"model": "local/down", "base_url": f"{broken.url}/v1"},
            ],
            "model_aliases": {"fast": {"target": "gpt-4o-mini"}},
            "routing": {"engine": "embedded", "timeout": "1s"},
            # The flaky provider must stay in the chain: no cool-down during the soak.
            "failover": {"retries": 0, "failures_before_cooldown": 1000000},
            "gateway": {"log_level": "warning"},
        }
        with Gateway(config, Path(tmp), workers=2) as gateway:
            asyncio.run(run(min(10.0, args.seconds / 6), args.concurrency, gateway))  # warm-up, not counted
            pids = processes(gateway)
            before = {name: rss_mb(pid) for name, pid in pids.items()}
            started = time.monotonic()
            tally = asyncio.run(run(args.seconds, args.concurrency, gateway))
            elapsed = time.monotonic() - started
            after = {name: rss_mb(pid) for name, pid in pids.items()}

    latencies = sorted(tally.latencies)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    unexpected = sum(tally.unexpected.values())
    lines = [
        "| requests sent | unexpected errors | rate | latency p50 | p99 | duration | concurrency |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {tally.sent} | {unexpected} | {tally.sent / elapsed:.0f}/s | {p50:.1f} ms | {p99:.1f} ms | "
        f"{elapsed:.0f} s | {args.concurrency} |",
        "",
        "| process | RSS at start | RSS at end | growth |",
        "| --- | --- | --- | --- |",
    ]
    worst = 0.0
    for name in pids:
        growth = (after[name] - before[name]) / before[name] * 100 if before[name] else 0.0
        worst = max(worst, growth)
        lines.append(f"| {name} | {before[name]:.1f} MB | {after[name]:.1f} MB | {growth:+.1f} % |")
    mix = ", ".join(f"{k} {v}" for k, v in sorted(tally.by_kind.items()))
    lines += ["", f"Mix: {mix}. Unexpected: {tally.unexpected or 'none'}. Measured by `make soak` on "
              f"{time.strftime('%Y-%m-%d')}; targets: 0 unexpected errors, RSS growth < 10 % "
              f"({'met' if unexpected == 0 and worst < 10 else 'NOT met'})."]
    report = "\n".join(lines)
    print(report)
    if not args.no_readme:
        replace_block("soak", report)
    return 0 if unexpected == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

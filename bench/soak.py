"""`make soak`: a bounded mixed load against a real gateway, loopback only, then a report.

Mix: non-streaming and streaming chat completions, preference-routed requests (embedded engine,
varied prompts), Anthropic clients translated to an OpenAI-style model, requests whose provider
fails (503) and fails over, and requests to a provider that is down with no fallback (a 503 is
the expected answer). Reports requests sent, errors that should not have happened, resident
memory of each process at start and end, and latency p50/p99. Stops by itself.

`--flood` (`make soak SOAK_ARGS=--flood`) holds, beside the same mix, a flood of idle connections
(connected, never a byte) and slowloris ones (request headers a byte at a time, never finished,
reopened when the gateway cuts them at `gateway.request_headers_timeout`), in alternating rounds
with and without it, and reports the normal requests' latency in each (medians of the rounds'
p50 and p99, and their ratio), how many flood connections were held and cut, and whether any
process died or restarted. Loopback only; the flood is bounded in count (`--idle`, `--slow`) and
in time (the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
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


def run(seconds: float, concurrency: int, gateway: Gateway) -> Tally:
    return asyncio.run(run_async(seconds, concurrency, gateway))


async def run_async(seconds: float, concurrency: int, gateway: Gateway) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        mix = kinds()
        await asyncio.gather(*(worker(client, gateway.url, mix, deadline, tally, n) for n in range(concurrency)))
    return tally


MAX_CONNECTIONS = 4096  # gateway.max_connections of the flood variant (the default)


@dataclass
class Flood:
    """Idle and slowloris connections held open against the listener until `stop` is set."""

    port: int
    idle: int
    slow: int
    byte_every_s: float = 1.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    open_now: int = 0
    most_open: int = 0
    opened: int = 0
    cut: int = 0  # closed by the gateway
    refused: int = 0
    cut_after_s: list[float] = field(default_factory=list)  # how long a slowloris connection lasted

    async def _hold(self, slow: bool) -> None:
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.refused += 1
                await asyncio.sleep(0.5)
                continue
            self.opened += 1
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
            started = time.monotonic()
            closed = asyncio.ensure_future(reader.read(1))  # b"" (or Envoy's 408) when the gateway closes it
            stopped = asyncio.ensure_future(self.stop.wait())
            try:
                if slow:
                    for byte in b"POST /v1/chat/completions HTTP/1.1\r\nhost: soak\r\nx-slow: " + b"a" * 10_000:
                        writer.write(bytes([byte]))
                        await asyncio.wait([closed, stopped], timeout=self.byte_every_s,
                                           return_when=asyncio.FIRST_COMPLETED)
                        if closed.done() or stopped.done():
                            break
                else:
                    await asyncio.wait([closed, stopped], return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    self.cut += 1
                    if slow:
                        self.cut_after_s.append(time.monotonic() - started)
            except (ConnectionError, OSError):
                self.cut += 1
            finally:
                if closed.done() and not closed.cancelled():
                    closed.exception()  # a reset is a way of closing too: retrieved, not reported
                closed.cancel()
                stopped.cancel()
                self.open_now -= 1
                writer.close()

    async def up(self, count: int, timeout: float) -> None:
        """Until `count` flood connections are open at once (or `timeout`: then the report says so)."""
        deadline = time.monotonic() + timeout
        while self.open_now < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        await asyncio.gather(*(self._hold(False) for _ in range(self.idle)),
                             *(self._hold(True) for _ in range(self.slow)))


async def rounds(gateway: Gateway, count: int, seconds: float, concurrency: int, idle: int, slow: int):
    """Alternating rounds of the normal mix, without and with the flood: (without, with, flood)."""
    plain, flooded = [], []
    flood = Flood(gateway.port, idle, slow)
    for i in range(count):
        with_flood = i % 2 == 1
        task = None
        if with_flood:
            flood.stop.clear()
            task = asyncio.ensure_future(flood.run())
            await flood.up(idle + slow, timeout=30.0)  # the flood is held before the round starts
        tally = await run_async(seconds, concurrency, gateway)
        if task is not None:
            flood.stop.set()
            await task
        (flooded if with_flood else plain).append(tally)
    return plain, flooded, flood


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)] * 1000


def flood_report(plain: list[Tally], flooded: list[Tally], flood: Flood, restarts: list[str], alive: bool,
                 args) -> tuple[str, bool]:
    def row(name, tallies):
        p50 = statistics.median(_percentile(t.latencies, 0.5) for t in tallies)
        p99 = statistics.median(_percentile(t.latencies, 0.99) for t in tallies)
        unexpected = sum(sum(t.unexpected.values()) for t in tallies)
        return p50, p99, unexpected, f"| {name} | {sum(t.sent for t in tallies)} | {p50:.1f} ms | {p99:.1f} ms | {unexpected} |"

    b50, b99, b_bad, base_row = row("normal mix alone", plain)
    f50, f99, f_bad, flood_row = row(f"normal mix beside the flood ({args.idle} idle + {args.slow} slowloris)", flooded)
    cut_after = statistics.median(flood.cut_after_s) if flood.cut_after_s else float("nan")
    ok = b_bad == 0 and f_bad == 0 and alive and not restarts and f50 / b50 <= 1.5
    lines = [
        f"| rounds of {args.flood_round:.0f} s, alternating | requests | latency p50 (median of rounds) | p99 | unexpected |",
        "| --- | --- | --- | --- | --- |", base_row, flood_row, "",
        f"Ratio beside the flood / alone: p50 {f50 / b50:.2f}×, p99 {f99 / b99:.2f}×. Flood: {flood.opened} connections "
        f"opened, at most {flood.most_open} open at once, {flood.cut} closed by the gateway (slowloris ones after a "
        f"median {cut_after:.1f} s; `request_headers_timeout: {args.headers_timeout}`), {flood.refused} refused. "
        f"Processes alive at the end: {'all' if alive else 'NOT all'}; restarts: {', '.join(restarts) or 'none'}. "
        f"Measured by `make soak SOAK_ARGS=--flood` on {time.strftime('%Y-%m-%d')}; targets: 0 unexpected errors, "
        f"p50 beside the flood ≤ 1.5× alone, nothing dies ({'met' if ok else 'NOT met'}).",
    ]
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--flood", action="store_true", help="alternate rounds with a flood of idle and slow connections")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections of the flood")
    parser.add_argument("--slow", type=int, default=200, help="slowloris connections of the flood")
    parser.add_argument("--flood-round", type=float, default=20.0, help="seconds per round with --flood")
    parser.add_argument("--headers-timeout", default="5s", help="gateway.request_headers_timeout with --flood")
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
        if args.flood:
            return flood_main(config, Path(tmp), args)
        with Gateway(config, Path(tmp), workers=2) as gateway:
            run(min(10.0, args.seconds / 6), args.concurrency, gateway)  # warm-up, not counted
            pids = processes(gateway)
            before = {name: rss_mb(pid) for name, pid in pids.items()}
            started = time.monotonic()
            tally = run(args.seconds, args.concurrency, gateway)
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


def flood_main(config: dict, tmp: Path, args) -> int:
    """The flood variant: the same gateway and mix, in alternating rounds with and without it."""
    wanted = args.idle + args.slow + args.concurrency + 256
    if args.idle + args.slow + args.concurrency >= MAX_CONNECTIONS:  # bounded: never past the gateway's limit
        raise SystemExit(f"soak --flood: --idle + --slow + --concurrency must stay under {MAX_CONNECTIONS}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise SystemExit(f"soak --flood: needs {wanted} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    config["gateway"] = {**config["gateway"], "request_headers_timeout": args.headers_timeout,
                         "max_connections": MAX_CONNECTIONS}
    count = max(2, int(args.seconds // args.flood_round) // 2 * 2)  # pairs of rounds
    with Gateway(config, tmp, workers=2) as gateway:
        run(min(10.0, args.flood_round / 2), args.concurrency, gateway)  # warm-up, not counted
        pids = processes(gateway)
        plain, flooded, flood = asyncio.run(rounds(gateway, count, args.flood_round, args.concurrency,
                                                   args.idle, args.slow))
        alive = all(Path(f"/proc/{pid}").exists() and pid in {*gateway.children(), gateway.process.pid}
                    for pid in pids.values())
        restarts = [line.strip() for line in gateway.output().splitlines() if "exited" in line or "restarting" in line]
    report, ok = flood_report(plain, flooded, flood, restarts, alive, args)
    print(report)
    if not args.no_readme:
        replace_block("soak-flood", report)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

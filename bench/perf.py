"""`make bench`: Switchyard's request-path cost, side by side with the upstream alone, bare Envoy
and the LiteLLM proxy, in one run on one machine against one stand-in upstream.

    .venv/bin/python -m bench.perf            # full run (~11 min on 2 cores)
    .venv/bin/python -m bench.perf --quick    # ~3 min
    .venv/bin/python -m bench.perf --profile  # py-spy flame graph of a filter worker under load
    .venv/bin/python -m bench.perf --fast-path-costs  # what each part of the fast path costs

Every target gets the same wrk load (fixed connections and threads) in interleaved rounds: round 1
runs each target once, then round 2 does, and so on (the order rotates), so that drift on a shared
machine spreads over all targets; the figures are the medians of the rounds. See bench/README.md
for what each target is and how the figures are taken. Writes bench/results.md (printed too),
bench/results.json and bench/results.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import fast_path_costs, perf_routing
from bench.agent_load import MARKER, agent_loop_script, loop_bodies
from bench.perf_load import StreamClient, WrkResult, lua_script, run_wrk
from bench.perf_procs import BENCH_VENV, BUILD, REPO, Fleet, System, chat_body, http, rss_mb

HERE = Path(__file__).resolve().parent
CHAT = "/v1/chat/completions"
PREFERENCE_PROMPT = "write a python function that merges two sorted lists (request __COUNTER__)"
PREFERENCE_FIXED = "write a python function that merges two sorted lists"
AGENT_STEPS = 5  # tool steps per user turn in the agent-loop load (bench/agent_load.py)


# Bare Envoy plus a Python ext_proc filter that does nothing (bench/noop_filter.py): the best any
# Python filter on the request path can do here, whatever its logic.
NOOP_LABEL = "bare Envoy + no-op Python ext_proc (floor of any Python filter)"

# Envoy alone routing on the body's model (bench/perf_procs.py `native_routing_bootstrap`): a
# design study of taking static decisions out of Python, not something Switchyard runs.
NATIVE_LABEL = "design study: Envoy alone routes on the body's model (no filter, no request checks)"


LOADS: list[float] = []  # the 1-minute load average before each round: other work on the machine


@dataclass
class Target:
    key: str
    label: str
    system: str  # System name
    body: dict
    vary: bool = False
    expect_model: str | None = None  # x-switchyard-model the answer must carry
    agent_steps: int | None = None  # an agent-loop load: one wrk connection per thread, loops of steps
    rounds: list[WrkResult] = field(default_factory=list)
    router_ms: list[float] = field(default_factory=list)  # decision times (preference targets)
    cpu: list[dict[str, float]] = field(default_factory=list)  # per round: label → CPU s per 1,000 req

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.rounds)

    def cpu_median(self) -> dict[str, float]:
        labels = sorted({k for c in self.cpu for k in c}, key=_process_order)
        return {k: statistics.median(c.get(k, 0.0) for c in self.cpu) for k in labels}


def _process_order(label: str) -> tuple[int, str]:
    order = ["envoy", "noop", "worker", "supervisor", "litellm", "upstream"]
    return next((i for i, p in enumerate(order) if label.startswith(p)), 99), label


def targets(include_litellm: bool) -> list[Target]:
    found = [
        Target("direct", "upstream alone (direct)", "upstream", chat_body("gpt-4o-mini")),
        Target("envoy", "bare Envoy → upstream", "envoy", chat_body("gpt-4o-mini")),
        Target("noop", NOOP_LABEL, "noop", chat_body("gpt-4o-mini")),
        Target("native", NATIVE_LABEL, "native", chat_body("fast")),
        Target("fast_alias", "Switchyard default (fast path, JSON access log, metrics), alias `fast`", "syfast",
               chat_body("fast"), expect_model="openai/gpt-4o-mini"),
        Target("fast_literal", "Switchyard default (fast path, JSON access log, metrics), literal `openai/gpt-4o`",
               "syfast", chat_body("openai/gpt-4o"), expect_model="openai/gpt-4o"),
        Target("fast_keys", "Switchyard default + the load's key a client key (Envoy checks it), alias `fast`",
               "sykeys", chat_body("fast"), expect_model="openai/gpt-4o-mini"),
        Target("fast_limits", "Switchyard default + client key with rpm, tpm and a budget, rpm and tpm per model "
               "(far above the load), alias `fast`", "sylimits", chat_body("fast"), expect_model="openai/gpt-4o-mini"),
        Target("fast_traced", "Switchyard default + tracing (spans via the gRPC access log), alias `fast`", "syfasttr",
               chat_body("fast"), expect_model="openai/gpt-4o-mini"),
        Target("alias", "Switchyard 1 worker, alias `fast`", "sy1", chat_body("fast"), expect_model="openai/gpt-4o-mini"),
        Target("literal", "Switchyard 1 worker, literal `openai/gpt-4o`", "sy1", chat_body("openai/gpt-4o"),
               expect_model="openai/gpt-4o"),
        Target("alias2", "Switchyard 2 workers, alias `fast`", "sy2", chat_body("fast"), expect_model="openai/gpt-4o-mini"),
        Target("alias_nometrics", "Switchyard 1 worker, alias, usage_metrics off", "sy1nm", chat_body("fast"),
               expect_model="openai/gpt-4o-mini"),
        Target("pref_uncached", "Switchyard 1 worker, `auto` embedded engine, every prompt new", "syemb",
               chat_body("auto", PREFERENCE_PROMPT), vary=True, expect_model="openai/gpt-4o-mini"),
        Target("pref_uncached2", "Switchyard 2 workers, `auto` embedded engine, every prompt new", "syemb2",
               chat_body("auto", PREFERENCE_PROMPT), vary=True, expect_model="openai/gpt-4o-mini"),
        Target("pref_cached", "Switchyard 1 worker, `auto` embedded engine, one prompt (cache hits)", "syemb",
               chat_body("auto", PREFERENCE_FIXED), expect_model="openai/gpt-4o-mini"),
        Target("agent_pinned", f"Switchyard 1 worker, embedded engine, agent loop (user turn + {AGENT_STEPS} tool steps), "
               "turn pinning on (default)", "syemb", loop_bodies("auto", AGENT_STEPS)[0], agent_steps=AGENT_STEPS,
               expect_model="openai/gpt-4o-mini"),
        Target("agent_unpinned", f"Switchyard 1 worker, embedded engine, agent loop (user turn + {AGENT_STEPS} tool steps), "
               "`routing.turn_pinning: false`", "syembnp", loop_bodies("auto", AGENT_STEPS)[0], agent_steps=AGENT_STEPS,
               expect_model="openai/gpt-4o-mini"),
    ]
    if include_litellm:
        found.append(Target("litellm", "LiteLLM proxy, 2 workers", "litellm", chat_body("fast")))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description="Switchyard performance benchmark (make bench)")
    parser.add_argument("--quick", action="store_true", help="one short round per target (~3 min)")
    parser.add_argument("--rounds", type=int, help="rounds per target (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per round (default 10, quick 5)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ttfb-requests", type=int, help="sequential streaming requests per target (default 300, quick 100)")
    parser.add_argument("--no-litellm", action="store_true", help="leave the LiteLLM proxy out")
    parser.add_argument("--only", help="comma-separated target keys to run (development; the README's figures come "
                                       "from a full run). The embedded-engine checks need alias and pref_uncached")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the benchmark: py-spy record a filter worker under wrk load → bench/profile.svg")
    parser.add_argument("--profile-seconds", type=float, default=15)
    parser.add_argument("--fast-path-costs", action="store_true",
                        help="instead of the benchmark: what each part of the fast path costs → bench/fast_path_costs.md")
    parser.add_argument("--variants", help="with --fast-path-costs: comma-separated parts of the variant names to run "
                                           "(development; as shipped always runs)")
    parser.add_argument("--rate", type=float, help="with --fast-path-costs: pace every variant at this req/s")
    parser.add_argument("--lua", action="append", default=[],
                        help="with --fast-path-costs: one more variant, the fast-path Lua from this file (repeatable)")
    parser.add_argument("--lua-alone", action="append", default=[],
                        help="with --fast-path-costs: one more variant, the Lua-alone variant with the Lua from this file")
    parser.add_argument("--flat-lua", action="append", default=[],
                        help="with --fast-path-costs: two more variants (as shipped, Lua alone) with a fast-path Lua of "
                             "before the routes' one `fast` table, e.g. `git show 8087783:envoy/fast_path.lua`")
    parser.add_argument("--wasm", action="append", default=[],
                        help="with --fast-path-costs: one more variant, the governance's Wasm module from this file (repeatable)")
    parser.add_argument("--governance", choices=("keys", "limits"),
                        help="with --fast-path-costs: every variant with the bench's client key, or with its limits too")
    parser.add_argument("--out", default=str(HERE), help="where results.md/.json/.png go (default bench/)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    ttfb_n = args.ttfb_requests or (100 if args.quick else 300)
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (make bench installs it: apt-get install -y wrk)")

    workdir = BUILD / "bench-run"
    shutil.rmtree(workdir, ignore_errors=True)
    fleet = Fleet(workdir)
    running: list[subprocess.Popen] = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = time.monotonic()
    try:
        if args.profile:
            return profile(fleet, workdir, args, running)
        if args.fast_path_costs:
            return fast_path_costs.measure(fleet, workdir, rounds=rounds, seconds=seconds, connections=args.connections,
                                           threads=args.threads, out=Path(args.out), running=running,
                                           only=args.variants, rate=args.rate, lua=args.lua, lua_alone=args.lua_alone, wasm=args.wasm,
                                           flat_lua=args.flat_lua, governance=args.governance)
        return benchmark(fleet, workdir, args, rounds, seconds, ttfb_n, running, started)
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        for proc in list(running):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        fleet.stop_all()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def benchmark(fleet: Fleet, workdir: Path, args, rounds: int, seconds: float, ttfb_n: int,
              running: list, started: float) -> int:
    conns, threads = args.connections, args.threads
    plan = targets(not args.no_litellm)
    if args.only:
        keep = set(args.only.split(",")) | {"envoy"}
        plan = [t for t in plan if t.key in keep]
    needed = {t.system for t in plan} | {"upstream"}
    log(f"starting {', '.join(sorted(needed))}")
    systems: dict[str, System] = {}
    systems["upstream"] = fleet.upstream()
    up = systems["upstream"]
    starters = {
        "envoy": lambda: fleet.bare_envoy(up),
        "noop": lambda: fleet.noop_filter_envoy(up),
        "native": lambda: fleet.native_routing_envoy(up),
        "syfast": lambda: fleet.switchyard("syfast", up, workers=1, engine="none"),  # the default configuration
        "sykeys": lambda: fleet.switchyard("sykeys", up, workers=1, engine="none", governance="keys"),
        "sylimits": lambda: fleet.switchyard("sylimits", up, workers=1, engine="none", governance="limits"),
        "syfasttr": lambda: fleet.switchyard("syfasttr", up, workers=1, engine="none", tracing=True),
        "sy1": lambda: fleet.switchyard("sy1", up, workers=1, engine="none", fast_path=False),
        "sy2": lambda: fleet.switchyard("sy2", up, workers=2, engine="none", fast_path=False),
        "sy1nm": lambda: fleet.switchyard("sy1nm", up, workers=1, engine="none", usage_metrics=False, fast_path=False),
        "syemb": lambda: fleet.switchyard("syemb", up, workers=1, engine="embedded"),
        "syemb2": lambda: fleet.switchyard("syemb2", up, workers=2, engine="embedded"),
        "syembnp": lambda: fleet.switchyard("syembnp", up, workers=1, engine="embedded", turn_pinning=False),
        "litellm": lambda: fleet.litellm(up, workers=2),
    }
    for name, start in starters.items():
        if name in needed:
            systems[name] = start()
    log(f"all up in {time.monotonic() - started:.0f}s")

    for target in plan:  # each path answers correctly before it is timed
        check = {**target.body, "messages": [
            {"role": "user", "content": target.body["messages"][0]["content"].replace("__COUNTER__", "check")}]}
        if target.agent_steps:
            check = json.loads(json.dumps(target.body).replace(MARKER, "check"))
        status, headers, body = http(systems[target.system].url + CHAT, check)
        if status != 200:
            raise RuntimeError(f"{target.key}: status {status}: {body[:300]!r}")
        if target.expect_model and headers.get("x-switchyard-model") != target.expect_model:
            raise RuntimeError(f"{target.key}: served by {headers.get('x-switchyard-model')}, expected {target.expect_model}")

    rss_idle = {name: {label: rss_mb(pid) for label, pid in s.processes.items() if label.startswith("worker")}
                for name, s in systems.items() if name.startswith("sy")}

    log(f"warm-up: {len(plan)} targets × 2s")
    for target in plan:
        run_wrk(systems[target.system].url + CHAT, _script(target), workdir, seconds=2, connections=conns,
                threads=_threads(target, threads, conns), procs=running)

    for r in range(rounds):
        order = plan[r % len(plan):] + plan[:r % len(plan)]
        for target in order:
            LOADS.append(os.getloadavg()[0])
            system = systems[target.system]
            decisions = perf_routing.LogTail(system.log_path)
            decisions.mark()
            before = system.cpu()
            result = run_wrk(system.url + CHAT, _script(target), workdir, seconds=seconds, connections=conns,
                             threads=_threads(target, threads, conns), procs=running)
            after = system.cpu()
            target.rounds.append(result)
            if target.vary:
                target.router_ms += decisions.router_ms()
            per_k = {label: (after[label] - before[label]) / max(result.requests, 1) * 1000
                     for label in after if label in before}
            per_k["wrk (load generator)"] = result.wrk_cpu_s / max(result.requests, 1) * 1000
            target.cpu.append(per_k)
            log(f"round {r + 1}/{rounds} {target.key:16s} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors}")

    by_key = {t.key: t for t in plan}
    # Latency at a quarter of each Switchyard path's own maximum, paced with wrk's delay(); the
    # references (upstream alone, bare Envoy, ...) are paced at the same rate in the same group.
    paced_groups = {
        "fast_alias": ("direct", "envoy", "native", "fast_alias", "fast_keys", "fast_limits"),
        "alias": ("direct", "envoy", "noop", "alias"),
        "pref_uncached": ("alias", "pref_uncached"),  # the decision's cost at a quarter of its path's maximum
    }
    paced_groups = {g: keys for g, keys in paced_groups.items() if g in by_key and all(k in by_key for k in keys)}
    paced_router_ms: list[float] = []
    paced: dict[str, dict[str, list[WrkResult]]] = {g: {k: [] for k in keys} for g, keys in paced_groups.items()}
    rates = {g: 0.25 * by_key[g].median("rps") for g in paced_groups}
    for group, keys in paced_groups.items():
        rate = rates[group]
        log(f"paced ({group}): {rate:.0f} req/s (25 % of {by_key[group].median('rps'):.0f}) over {conns} connections")
        for r in range(rounds):
            for key in keys:
                target = by_key[key]
                decisions = perf_routing.LogTail(systems[target.system].log_path)
                decisions.mark()
                result = run_wrk(systems[target.system].url + CHAT, _script(target, delay_ms=conns / rate * 1000),
                                 workdir, seconds=seconds, connections=conns, threads=threads, procs=running)
                paced[group][key].append(result)
                if target.vary:
                    paced_router_ms += decisions.router_ms()
                log(f"paced {r + 1}/{rounds} {key:10s} {result.rps:7.0f} req/s  p50 {result.p50_ms:.3f} ms"
                    f"  p99 {result.p99_ms:.3f} ms")

    tails = []
    if "pref_uncached" in by_key:
        log(f"decision tail: {perf_routing.TAIL_DECISIONS} sequential decisions in this process, the other core idle, then busy")
        tails = [perf_routing.decision_tail(busy=False), perf_routing.decision_tail(busy=True)]
    router_ms = {t.key: t.router_ms for t in plan if t.router_ms}
    router_ms["paced"] = paced_router_ms
    rss_routing = {name: {label: rss_mb(pid) for label, pid in s.processes.items() if label.startswith("worker")}
                   for name, s in systems.items() if name in ("sy1", "syemb")}
    if args.only:  # a development run: the embedded engine's targets only
        for t in plan:
            log(f"{t.key:16s} {t.median('rps'):9.0f} req/s  p50 {t.median('p50_ms'):.3f} ms"
                f"  gateway CPU {_gateway_cpu(t.cpu_median()):.3f} s per 1k requests")
        for g, by in paced.items():
            for k, results in by.items():
                log(f"paced {g}/{k:14s} p50 {statistics.median(r.p50_ms for r in results):.3f} ms")
        rows_by = {t.key: {"rps": t.median("rps"), "cpu_per_1k": t.cpu_median()} for t in plan}
        paced_by = {(g, k): {"rate": rates[g], "p50_ms": statistics.median(r.p50_ms for r in results)}
                    for g, by in paced.items() for k, results in by.items()}
        if "alias" in rows_by and "pref_uncached" in rows_by:
            res = {"embedded_checks": perf_routing.checks(rows_by, paced_by, router_ms, rss_routing, tails)}
            print("\n".join(perf_routing.render(res)))
        rows = [{"key": t.key, "rps": t.median("rps"), "p50_ms": t.median("p50_ms"), "p99_ms": t.median("p99_ms"),
                 "gateway_cpu_per_1k": _gateway_cpu(t.cpu_median())} for t in plan]
        print("\n".join(_agent_summary({"rows": rows, "connections": conns})))
        log(f"done in {time.monotonic() - started:.0f}s")
        return 0

    # Streaming time to first byte: sequential requests, the targets interleaved request by request.
    ttfb_targets = {"direct": ("upstream", "gpt-4o-mini"), "envoy": ("envoy", "gpt-4o-mini"),
                    "noop": ("noop", "gpt-4o-mini"), "native": ("native", "fast"),
                    "fast_alias": ("syfast", "fast"), "alias": ("sy1", "fast")}
    if "litellm" in systems:
        ttfb_targets["litellm"] = ("litellm", "fast")
    clients = {k: StreamClient(systems[s].url, CHAT, chat_body(m, stream=True)) for k, (s, m) in ttfb_targets.items()}
    ttfb: dict[str, list[float]] = {k: [] for k in clients}
    ttfb_errors = {k: 0 for k in clients}
    log(f"streaming TTFB: {ttfb_n} sequential requests per target")
    for k, client in clients.items():  # warm the connections
        for _ in range(5):
            client.ttfb()
    for _ in range(ttfb_n):
        for k, client in clients.items():
            try:
                ttfb[k].append(client.ttfb() * 1000)
            except (OSError, RuntimeError):
                ttfb_errors[k] += 1
                client.close()
    for client in clients.values():
        client.close()

    rss_loaded = {name: {label: rss_mb(pid) for label, pid in s.processes.items()
                         if label.startswith(("worker", "envoy", "litellm"))}
                  for name, s in systems.items() if name.startswith("sy") or name == "litellm" or name == "envoy"}

    results = collect(plan, paced, rates, ttfb, ttfb_errors, rss_idle, rss_loaded, args, rounds,
                      seconds, ttfb_n, time.monotonic() - started)
    rows_by = {r["key"]: r for r in results["rows"]}
    paced_by = {(r["group"], r["key"]): r for r in results["paced"]}
    results["decision_tails"] = tails
    results["router_ms"] = {k: {"n": len(v), "p50": perf_routing.percentile(v, 50), "p99": perf_routing.percentile(v, 99)}
                            for k, v in router_ms.items()}
    results["embedded_checks"] = perf_routing.checks(rows_by, paced_by, router_ms, rss_loaded, tails)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    markdown = render_markdown(results)
    (out / "results.md").write_text(markdown)
    print(markdown)
    plot(out)
    log(f"done in {time.monotonic() - started:.0f}s: {out / 'results.md'}, {out / 'results.png'}")
    return 0


def _script(target: Target, delay_ms: float | None = None) -> str:
    if target.agent_steps:
        return agent_loop_script(CHAT, target.body["model"], target.agent_steps)
    return lua_script(CHAT, target.body, vary=target.vary, delay_ms=delay_ms)


def _threads(target: Target, threads: int, connections: int) -> int:
    # An agent's steps are sequential: one connection per wrk thread keeps each loop in order.
    return connections if target.agent_steps else threads


# --------------------------------------------------------------------------- results


def collect(plan, paced, rates, ttfb, ttfb_errors, rss_idle, rss_loaded, args, rounds, seconds, ttfb_n,
            elapsed) -> dict:
    by_key = {t.key: t for t in plan}
    envoy_rps = by_key["envoy"].median("rps")
    litellm_rps = by_key["litellm"].median("rps") if "litellm" in by_key else None
    rows = []
    for t in plan:
        rps = t.median("rps")
        cpu = t.cpu_median()
        gateway_cpu = _gateway_cpu(cpu)
        rows.append({
            "key": t.key, "label": t.label, "rps": rps, "p50_ms": t.median("p50_ms"), "p99_ms": t.median("p99_ms"),
            "errors": sum(r.errors for r in t.rounds), "non2xx": sum(r.non2xx for r in t.rounds),
            "socket_errors": sum(r.socket_errors for r in t.rounds), "requests": sum(r.requests for r in t.rounds),
            "rps_rounds": [r.rps for r in t.rounds],
            "vs_envoy": rps / envoy_rps, "vs_litellm": rps / litellm_rps if litellm_rps else None,
            "cpu_per_1k": cpu, "gateway_cpu_per_1k": gateway_cpu,
        })
    paced_rows = []
    for group, by_target in paced.items():
        for key, results in by_target.items():
            paced_rows.append({"group": group, "rate": rates[group], "key": key, "label": by_key[key].label,
                               "rps": statistics.median(r.rps for r in results),
                               "p50_ms": statistics.median(r.p50_ms for r in results),
                               "p90_ms": statistics.median(r.p90_ms for r in results),
                               "p99_ms": statistics.median(r.p99_ms for r in results),
                               "errors": sum(r.errors for r in results)})
    paced_by = {(r["group"], r["key"]): r for r in paced_rows}
    ttfb_rows = []
    for key, values in ttfb.items():
        values = sorted(values)
        label = {"direct": "upstream alone (direct)", "envoy": "bare Envoy", "noop": NOOP_LABEL, "native": NATIVE_LABEL,
                 "fast_alias": "Switchyard default (fast path), alias", "alias": "Switchyard filter path, 1 worker, alias",
                 "litellm": "LiteLLM proxy, 2 workers"}[key]
        ttfb_rows.append({"key": key, "label": label, "n": len(values),
                          "p50_ms": statistics.median(values) if values else None,
                          "p90_ms": values[int(0.9 * (len(values) - 1))] if values else None,
                          "p99_ms": values[int(0.99 * (len(values) - 1))] if values else None,
                          "errors": ttfb_errors[key]})
    ttfb_by = {r["key"]: r for r in ttfb_rows}
    rows_by = {r["key"]: r for r in rows}
    rss_none = [v for k, v in rss_loaded.get("sy1", {}).items() if k.startswith("worker") and v] + \
               [v for k, v in rss_loaded.get("sy2", {}).items() if k.startswith("worker") and v]

    # Each target: its figures as (measured, passes) for Switchyard's fast path, its filter path,
    # then where they apply the no-op Python filter's and the Envoy-alone design study's.
    def paced_added(key: str) -> float:
        group = "fast_alias" if key in paced["fast_alias"] else "alias"
        return paced_by[group, key]["p50_ms"] - paced_by[group, "envoy"]["p50_ms"]

    def ttfb_added(key: str) -> float:
        return ttfb_by[key]["p50_ms"] - ttfb_by["envoy"]["p50_ms"]

    def pct(v: float) -> str:
        return f"{100 * v:.0f} %"

    def cmp(keys, value, fmt, ok):
        return [(fmt(value(k)), ok(value(k))) for k in keys]

    alt = ("noop", "native")
    na = ("n/a", None)
    checks = [
        ("alias throughput ≥ 0.5× bare Envoy's (16 connections)",
         cmp(("fast_alias", "alias", *alt), lambda k: rows_by[k]["vs_envoy"], pct, lambda v: v >= 0.5)),
        ("literal throughput ≥ 0.5× bare Envoy's (16 connections)",
         cmp(("fast_literal", "literal", *alt), lambda k: rows_by[k]["vs_envoy"], pct, lambda v: v >= 0.5)),
        ("added p50 over bare Envoy ≤ 0.3 ms at 25 % of that path's max",
         cmp(("fast_alias", "alias", *alt), paced_added, lambda v: f"{v:+.3f} ms", lambda v: v <= 0.3)),
    ]
    if litellm_rps:
        for key, filtered in (("fast_alias", "alias"), ("fast_literal", "literal")):
            checks.append((f"{filtered} throughput ≥ 60× LiteLLM's",
                           cmp((key, filtered, *alt), lambda k: rows_by[k]["vs_litellm"], lambda v: f"{v:.1f}×",
                               lambda v: v >= 60)))
    checks += [
        # The fast path runs in Envoy's own threads: filter workers are not on it.
        ("filter throughput grows from 1 to 2 workers (alias, filter path)",
         [na, (f"{rows_by['alias2']['rps'] / rows_by['alias']['rps']:.2f}× ({rows_by['alias']['rps']:.0f} → {rows_by['alias2']['rps']:.0f})",
               rows_by["alias2"]["rps"] > rows_by["alias"]["rps"])]),
        ("filter RSS ≤ 80 MB per worker without the embedded engine",
         [na, (f"max {max(rss_none):.0f} MB" if rss_none else "n/a", bool(rss_none) and max(rss_none) <= 80)]),
        ("streaming TTFB within 0.3 ms of bare Envoy's (p50)",
         cmp(("fast_alias", "alias", *alt), ttfb_added, lambda v: f"{v:+.3f} ms", lambda v: abs(v) <= 0.3)),
    ]
    governance = []
    if all(k in rows_by for k in ("fast_alias", "fast_keys", "fast_limits")):
        fast = ("fast_alias", "fast_keys", "fast_limits")
        governance = [
            ("throughput, × the default fast path's",
             cmp(fast, lambda k: rows_by[k]["rps"] / rows_by["fast_alias"]["rps"], lambda v: f"{v:.2f}×", lambda v: None)),
            ("gateway CPU s per 1k requests",
             cmp(fast, lambda k: rows_by[k]["gateway_cpu_per_1k"], lambda v: f"{v:.3f}", lambda v: None)),
            ("added p50 over bare Envoy ≤ 0.3 ms at 25 % of the fast path's max",
             cmp(fast, paced_added, lambda v: f"{v:+.3f} ms", lambda v: v <= 0.3)),
            ("p50 over the same with one change less, at that rate",
             [na, (f"{paced_added('fast_keys') - paced_added('fast_alias'):+.3f} ms (the key check)", None),
              (f"{paced_added('fast_limits') - paced_added('fast_keys'):+.3f} ms (the limits)", None)]),
        ]
    return {
        "governance": [{"check": c, "figures": [{"measured": m, "pass": p} for m, p in figures]}
                       for c, figures in governance],
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": "make bench" + (" BENCH_ARGS=--quick" if args.quick else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_mem_gib():.0f} GiB, {platform.python_implementation()} {platform.python_version()}",
        "envoy": _envoy_version(),
        "rounds": rounds, "seconds": seconds, "connections": args.connections, "threads": args.threads,
        "elapsed_s": elapsed, "rows": rows, "paced": paced_rows,
        "ttfb_n": ttfb_n, "ttfb": ttfb_rows, "rss_idle_mb": rss_idle, "rss_loaded_mb": rss_loaded,
        # figures: Switchyard's fast path, its filter path, the no-op Python filter, the Envoy-alone study
        "checks": [{"check": c, "figures": [{"measured": m, "pass": p} for m, p in figures]} for c, figures in checks],
        "load": [min(LOADS), max(LOADS)] if LOADS else list(os.getloadavg()[:1]) * 2,
    }


def _mem_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _envoy_version() -> str:
    from filter.runtime.supervisor import envoy_binary

    try:
        out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    for token in out.split():
        if token.count("/") >= 2 and token[0].isalnum():
            return token.split("/")[1]
    return out.strip().splitlines()[-1] if out.strip() else "?"


def _gateway_cpu(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if not k.startswith(("upstream", "wrk")))


def _agent_summary(res: dict) -> list[str]:
    rows = {r["key"]: r for r in res["rows"]}
    if "agent_pinned" not in rows or "agent_unpinned" not in rows:
        return []
    on, off = rows["agent_pinned"], rows["agent_unpinned"]
    return [f"Agent loop (bench/agent_load.py: {res['connections']} wrk threads × 1 connection, each running "
            f"loops of one new user turn and {AGENT_STEPS} tool steps): with turn pinning {on['rps']:.0f} req/s, "
            f"p50 {on['p50_ms']:.2f} ms, p99 {on['p99_ms']:.1f} ms, {on['gateway_cpu_per_1k']:.3f} gateway CPU s per 1k "
            f"requests; with `turn_pinning: false` {off['rps']:.0f} req/s, p50 {off['p50_ms']:.2f} ms, p99 "
            f"{off['p99_ms']:.1f} ms, "
            f"{off['gateway_cpu_per_1k']:.3f} CPU s per 1k: **{on['rps'] / off['rps']:.2f}×** the throughput "
            f"(tool steps pay no router call).", ""]


def render_markdown(res: dict) -> str:
    def ms(v):
        return "–" if v is None else f"{v:.2f}"

    lines = [
        "# Switchyard performance: `make bench`",
        "",
        f"Measured {res['date']} by `{res['command']}` on {res['machine']}; Envoy {res['envoy']} (the same binary for "
        f"bare Envoy and Switchyard, `--concurrency {os.cpu_count()}`). wrk {res['threads']} threads × "
        f"{res['connections']} connections, {res['rounds']} interleaved round(s) of {res['seconds']:g} s per target; "
        f"figures are medians of the rounds. Load generator, upstream, Envoy, filter workers and LiteLLM share "
        f"the same {os.cpu_count()} cores, so every figure includes contention (and any other work on the machine: "
        f"the 1-minute load average before the rounds ranged {res['load'][0]:.1f}–{res['load'][1]:.1f}). Whole run {res['elapsed_s'] / 60:.1f} min.",
        "",
        "## Throughput at fixed concurrency",
        "",
        "| target | req/s | p50 ms | p99 ms | errors | × bare Envoy | × LiteLLM | gateway CPU s / 1k req | CPU s / 1k req by process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in res["rows"]:
        cpu = " · ".join(f"{k} {v:.3f}" for k, v in r["cpu_per_1k"].items())
        lit = "–" if r["vs_litellm"] is None else f"{r['vs_litellm']:.1f}×"
        gw = "–" if r["key"] == "direct" else f"{r['gateway_cpu_per_1k']:.3f}"
        lines.append(f"| {r['label']} | {r['rps']:.0f} | {ms(r['p50_ms'])} | {ms(r['p99_ms'])} | {r['errors']} | "
                     f"{r['vs_envoy']:.2f}× | {lit} | {gw} | {cpu} |")
    lines += [
        "",
        "Errors are non-2xx answers plus socket errors (connect, read, write, timeout) summed over all rounds. "
        "CPU is utime + stime from `/proc/<pid>/stat` over each round divided by its requests; \"gateway CPU\" "
        "adds every process of the gateway (Envoy, filter workers, supervisor; LiteLLM's processes), not the "
        "upstream or wrk. Round-by-round req/s are in `results.json`. On the uncached preference path a "
        "decision that misses `routing.timeout` (1 s) is served by the default model, still a 200.",
        "",
        *_agent_summary(res),
        "## Latency at 25 % of each Switchyard path's maximum",
        "",
        "Paced with wrk's `delay()` (each connection waits a random 0.5–1.5× the mean gap before each request); "
        "latency counts from the request's send, not the wait. Each group paces its references at the same rate "
        "as its Switchyard path: a quarter of that path's median req/s above.",
        "",
        "| paced at | target | achieved req/s | p50 ms | p90 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["paced"]:
        lines.append(f"| {r['rate']:.0f} req/s | {r['label']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
                     f"{r['p99_ms']:.3f} | {r['errors']} |")
    lines += [
        "",
        f"## Streaming: time to first byte ({res['ttfb_n']} sequential requests per target, interleaved)",
        "",
        "From the end of the request's send to the arrival of the first SSE event's bytes (headers alone do not "
        "count), one keep-alive connection per target. The upstream sends the first event at once and the rest "
        "20 ms later, so a gateway that buffered the stream would show ≥ 20 ms here.",
        "",
        "| target | p50 ms | p90 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in res["ttfb"]:
        lines.append(f"| {r['label']} | {ms(r['p50_ms'])} | {ms(r['p90_ms'])} | {ms(r['p99_ms'])} | {r['errors']} |")
    lines += [
        "",
        "## Resident memory (VmRSS, MB)",
        "",
        "| process | after start-up | after the load |",
        "| --- | ---: | ---: |",
    ]
    names = {"syfast": "Switchyard fast path, 1 worker", "sykeys": "Switchyard fast path + client key",
             "sylimits": "Switchyard fast path + client key, limits and budget", "sy1": "Switchyard 1 worker, engine none", "sy2": "Switchyard 2 workers, engine none",
             "sy1nm": "Switchyard 1 worker, engine none, usage_metrics off",
             "syemb": "Switchyard 1 worker, embedded engine", "syemb2": "Switchyard 2 workers, embedded engine",
             "syembnp": "Switchyard 1 worker, embedded engine, turn pinning off",
             "envoy": "bare Envoy", "litellm": "LiteLLM proxy"}
    for system, procs in res["rss_loaded_mb"].items():
        for label, value in procs.items():
            idle = res["rss_idle_mb"].get(system, {}).get(label)
            lines.append(f"| {names.get(system, system)}: {label} | {ms(idle) if idle else '–'} | {ms(value)} |")
    lines += perf_routing.render(res)
    lines += [
        "",
        "## Targets",
        "",
        "Switchyard's two paths side by side: the default configuration (the fast path: Envoy alone serves literal "
        "and alias requests, with the JSON access log and the metrics on) and the filter path (`gateway.fast_path: "
        "false`: every request through the Python filter). The "
        "other columns hold the same measure, from the same run, for bare Envoy + the no-op Python ext_proc "
        "filter (where it fails too, no Python filter on the request path meets the target on this machine, "
        "whatever it does per request) and for a design study where Envoy alone routes on the body's model "
        "with no checks at all (a ceiling for any fast path).",
        "",
        "| target | Switchyard fast path | result | Switchyard filter path | result | no-op Python filter | result | Envoy alone (study) | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in res["checks"]:
        cells = []
        for f in c["figures"] + [None] * (4 - len(c["figures"])):
            if f is None or f["pass"] is None:
                cells += [f["measured"] if f else "–", "–"]
            else:
                cells += [f["measured"], "pass" if f["pass"] else "**fail**"]
        lines.append(f"| {c['check']} | " + " | ".join(cells) + " |")
    if res.get("governance"):
        lines += [
            "",
            "## Governance on the fast path",
            "",
            "The default configuration, then the same with the load's key configured as a client key (the fast path's "
            "native module checks it), then that key with rpm, tpm and a daily budget and rpm and tpm on each model, all far above "
            "the load (envoy/switchyard_governance.c admits each request from counts in Envoy's memory; the workers "
            "see one call per Envoy every 0.2 s). Latency paced in the fast path's group above.",
            "",
            "| measure | default | result | + client key | result | + limits and budget | result |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in res["governance"]:
            cells = []
            for f in c["figures"]:
                cells += [f["measured"], "–" if f["pass"] is None else ("pass" if f["pass"] else "**fail**")]
            lines.append(f"| {c['check']} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def plot(out: Path) -> None:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print(f"bench: {python} missing; no plot (make bench installs matplotlib there)", file=sys.stderr)
        return
    subprocess.run([str(python), str(HERE / "perf_plot.py"), str(out / "results.json"), str(out / "results.png")],
                   check=True, cwd=REPO)


# --------------------------------------------------------------------------- profiling


def profile(fleet: Fleet, workdir: Path, args, running: list) -> int:
    """py-spy records the single filter worker while wrk drives the alias path."""
    py_spy = BENCH_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        raise SystemExit(f"bench: {py_spy} missing (make bench installs it)")
    up = fleet.upstream()
    system = fleet.switchyard("sy1", up, workers=1, engine="none")
    worker = system.processes["worker1"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = args.profile_seconds
    script = lua_script(CHAT, chat_body("fast"), vary=False, delay_ms=None)
    wrk = subprocess.Popen(["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{2 * seconds + 3:g}s",
                            "-s", str(_write(workdir / "profile.lua", script)), system.url + CHAT],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    running.append(wrk)
    time.sleep(1.5)
    log(f"py-spy: recording worker pid {worker} for {seconds:g}s (flame graph), then {seconds:g}s (folded stacks, native frames too)")
    common = [str(py_spy), "record", "--pid", str(worker), "--duration", str(int(seconds)), "--rate", "250"]
    subprocess.run([*common, "--nonblocking", "--output", str(out / "profile.svg")], check=True)
    folded = workdir / "profile.folded"
    # The second pass also samples native frames: much of a worker's time is in grpc's C core.
    subprocess.run([*common, "--native", "--format", "raw", "--output", str(folded)], check=True)
    print(wrk.communicate()[0].split("Requests/sec:")[-1].strip().splitlines()[0], "req/s under the profiler")
    summarize(folded)
    log(f"flame graph: {out / 'profile.svg'}; folded stacks: {folded}")
    return 0


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def summarize(folded: Path, top: int = 25) -> None:
    """Own and inclusive shares of the sampled frames (py-spy's folded format: `a;b;c count`)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        print("no samples")
        return
    print(f"\n{total} samples; own time:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / total:5.1f} %  {frame}")
    print("inclusive time (filter and grpc frames):")
    shown = 0
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        if any(word in frame for word in ("filter/", "grpc", "protobuf", "json", "cygrpc", "asyncio")):
            print(f"  {100 * n / total:5.1f} %  {frame}")
            shown += 1
            if shown >= top:
                break


if __name__ == "__main__":
    sys.exit(main())

"""`make bench BENCH_ARGS=--fast-path-costs`: what each part of the fast path costs.

Starts a Switchyard gateway in its default configuration (the fast path, the JSON access log, the
metrics extension), then Envoy again from the same bootstrap with one part taken out, added or
swapped per variant — the same routes, clusters and key files, the same worker — and drives the
alias path of each with wrk in interleaved rounds. The difference between a variant and "as
shipped" is what that part costs.
Writes bench/fast_path_costs.md (printed too). Variants are measurements only: none of them is a
configuration Switchyard offers.
"""

from __future__ import annotations

import copy
import datetime
import os
import statistics
from pathlib import Path

import yaml

from bench.perf_load import lua_script, run_wrk
from bench.perf_procs import Fleet, chat_body, cpu_seconds, free_port, wait_http
from filter.render.governance import FILTER_NAME as GOVERNANCE_FILTER
from filter.render.metrics import METRICS_FILTER, span_access_log
from filter.runtime.supervisor import envoy_binary


def _manager(bootstrap: dict) -> dict:
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def _without_filters(*names: str):
    def mutate(bootstrap: dict) -> None:
        manager = _manager(bootstrap)
        manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] not in names]
    return mutate


def _without_logs(*kinds: str):
    def mutate(bootstrap: dict) -> None:
        manager = _manager(bootstrap)
        manager["access_log"] = [a for a in manager["access_log"] if a["name"] not in kinds]
    return mutate


def _with_logs(*logs):
    def mutate(bootstrap: dict) -> None:
        _manager(bootstrap)["access_log"].extend(copy.deepcopy(list(logs)))
    return mutate


def _then(*mutations):
    def mutate(bootstrap: dict) -> None:
        for m in mutations:
            m(bootstrap)
    return mutate


STDOUT_LOG, GRPC_LOG = "envoy.access_loggers.stdout", "envoy.access_loggers.http_grpc"
TOKEN_FILTERS = ("envoy.filters.http.json_to_metadata", "envoy.filters.http.lua")
# The built-in alternative for the request counter: Envoy's stats access logger, its labels filled
# from the same metadata (it cannot write `2xx` nor relabel a fallback: status is the code here).
STATS_LOGGER = {
    "name": "envoy.access_loggers.stats",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config",
        "stat_prefix": "switchyard_builtin",
        "counters": [{"stat": {"name": "requests", "tags": [
            {"name": name, "value_format": fmt} for name, fmt in (
                ("client_api", "%DYNAMIC_METADATA(switchyard:api)%"), ("provider", "%DYNAMIC_METADATA(switchyard:provider)%"),
                ("model", "%DYNAMIC_METADATA(switchyard:model)%"), ("decision", "%DYNAMIC_METADATA(switchyard:decision)%"),
                ("route", "%DYNAMIC_METADATA(switchyard:route)%"), ("status", "%RESPONSE_CODE%"),
                ("client", "%DYNAMIC_METADATA(switchyard:client)%"))]}, "value_fixed": 1}],
    },
}
VARIANTS = {
    "as shipped (the default configuration)": lambda b: None,
    "without the JSON access log (stdout)": _without_logs(STDOUT_LOG),
    "without the metrics extension": _without_filters(METRICS_FILTER),
    "without the metrics extension, requests counted by the stats access logger": _then(
        _without_filters(METRICS_FILTER), _with_logs(STATS_LOGGER)),
    "without the token-count filters": _without_filters(*TOKEN_FILTERS),
    "without the governance extension (cost counted, no limits configured)": _without_filters(GOVERNANCE_FILTER),
    "without the (per-route disabled) ext_proc filter": _without_filters("envoy.filters.http.ext_proc"),
    "with tracing's gRPC access log (spans)": _with_logs(span_access_log()),
    "before this round: gRPC access log for the metrics, no extension": _then(
        _without_filters(METRICS_FILTER), _with_logs(span_access_log())),
    "the fast path's Lua alone (no logs, no metrics, no token filters, no ext_proc)": _then(
        _without_logs(STDOUT_LOG), _without_filters(METRICS_FILTER, GOVERNANCE_FILTER, *TOKEN_FILTERS,
                                                    "envoy.filters.http.ext_proc")),
}


def measure(fleet: Fleet, workdir: Path, *, rounds: int, seconds: float, connections: int, threads: int,
            out: Path, running: list) -> int:
    upstream = fleet.upstream()
    gateway = fleet.switchyard("syfast", upstream, workers=1, engine="none")
    argv = Path(f"/proc/{gateway.processes['envoy']}/cmdline").read_bytes().split(b"\0")
    shipped = yaml.safe_load(Path(argv[argv.index(b"-c") + 1].decode()).read_text())

    envoys: dict[str, tuple[str, int]] = {}
    for name, mutate in VARIANTS.items():
        bootstrap = copy.deepcopy(shipped)
        mutate(bootstrap)
        port, admin = free_port(), free_port()
        bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = port
        bootstrap["admin"]["address"]["socket_address"]["port_value"] = admin
        path = workdir / f"fast-path-variant-{port}.yaml"
        path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        proc, log = fleet.spawn(f"variant-{port}", [envoy_binary(), "-c", str(path), "--log-level", "error",
                                                    "--disable-hot-restart", "--base-id", str(port),
                                                    "--concurrency", str(max(1, os.cpu_count() or 1))])
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        wait_http(url, 30, body=chat_body("fast"), proc=proc, log=log)
        envoys[name] = (url, proc.pid)

    script = lua_script("/v1/chat/completions", chat_body("fast"), vary=False, delay_ms=None)
    worker = gateway.processes["worker1"]
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in envoys}
    for _ in range(rounds):
        for name, (url, pid) in envoys.items():
            before = cpu_seconds(pid), cpu_seconds(worker)
            result = run_wrk(url, script, workdir, seconds=seconds, connections=connections, threads=threads,
                             procs=running)
            after = cpu_seconds(pid), cpu_seconds(worker)
            per_k = [(a - b) / max(result.requests, 1) * 1000 for a, b in zip(after, before)]
            figures[name].append((result.rps, *per_k))
            print(f"{name:50s} {result.rps:7.0f} req/s  Envoy {per_k[0]:.3f}  worker {per_k[1]:.3f} CPU ms/req", flush=True)

    shipped_rps = statistics.median(f[0] for f in figures[next(iter(VARIANTS))])
    lines = [
        "# What each part of the fast path costs: `make bench BENCH_ARGS=--fast-path-costs`",
        "",
        f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {os.cpu_count()} cores. "
        f"Alias path, wrk {threads} threads × {connections} connections, {rounds} interleaved rounds of {seconds:g} s, "
        "medians. Each variant is Switchyard's fast-path Envoy with one part removed (same routes, clusters, keys "
        "and filter worker); none is a configuration Switchyard offers.",
        "",
        "| variant | req/s | × as shipped | Envoy CPU ms / req | worker CPU ms / req |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, rows in figures.items():
        rps = statistics.median(r[0] for r in rows)
        lines.append(f"| {name} | {rps:.0f} | {rps / shipped_rps:.2f}× | {statistics.median(r[1] for r in rows):.3f} | "
                     f"{statistics.median(r[2] for r in rows):.3f} |")
    lines.append("")
    markdown = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fast_path_costs.md").write_text(markdown)
    print(markdown)
    return 0

"""`make bench BENCH_ARGS=--fast-path-costs`: what each part of the fast path costs.

Starts a Switchyard gateway in its default configuration (the fast path as a native module, the
JSON access log, the request metrics as a native module; no limits, so the governance's Wasm filter is off), then Envoy again from the same bootstrap with one part taken out, added or
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
import re
import statistics
import subprocess
from pathlib import Path

import yaml

from bench.perf_load import lua_script, run_wrk
from bench.perf_procs import Fleet, chat_body, cpu_seconds, free_port, wait_http
from filter.metrics import extension_config
from filter.render import governance, request_metrics, usage
from filter.render.bootstrap import envoy_file
from filter.render.fast_path import (FLAG_HEADER, GUARD_ACTION, LUA_FILTER, STREAM_HEADER, TOKEN_SCAN_FILTER,
                                     TOKEN_SCAN_OFF, ext_proc_config, lua_filter)
from filter.render.metrics import span_access_log
from filter.render.dynamic_modules import SEARCH_PATH_ENV
from filter.render.stream_guard import MODULE_FILE
from filter.render.wasm import EXTENSION_FILE, extension_code, extension_filter, wasm_filter
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
def _one_wasm_module(bootstrap: dict) -> None:
    """Before the metrics were native code: the metrics and the governance in one Wasm module,
    one filter built for every request, where the two filters are (what `switchyard render` still
    ships)."""
    _governance_everywhere(bootstrap)
    filters = _manager(bootstrap)["http_filters"]
    at = next(i for i, f in enumerate(filters) if f["name"] == governance.FILTER_NAME)
    code = extension_code(Path(str(envoy_file(EXTENSION_FILE))), inline=False)
    filters[at:at + 2] = [extension_filter(code)]


def _metrics_in_wasm(bootstrap: dict) -> None:
    """The metrics as a Wasm filter of their own (envoy/switchyard_metrics.c) in the native
    module's place, the governance's Wasm filter kept: the metrics' own cost in each form."""
    filters = _manager(bootstrap)["http_filters"]
    at = next(i for i, f in enumerate(filters) if f["name"] == request_metrics.FILTER_NAME)
    code = extension_code(Path(str(envoy_file("switchyard_metrics.wasm"))), inline=False)
    filters[at] = wasm_filter("switchyard.metrics", "switchyard_metrics", code, extension_config())


def _edit_route_config(bootstrap: dict, tag: str, edit) -> None:
    """`edit(route_config)` on the variant's routes; `switchyard up` reads its routes from a file:
    the variant then gets its own copy."""
    manager = _manager(bootstrap)
    source = manager["rds"]["config_source"]["path_config_source"] if "rds" in manager else None
    if source is not None:
        shared = Path(source["path"])
        resources = yaml.safe_load(shared.read_text())
        route_config = resources["resources"][0]
    else:
        route_config = manager["route_config"]
    edit(route_config)
    if source is not None:
        copy_path = shared.with_name(f"routes-{tag}-{id(bootstrap)}.yaml")
        copy_path.write_text(yaml.safe_dump(resources, sort_keys=False))
        source["path"], source["watched_directory"] = str(copy_path), {"path": str(copy_path.parent)}


def _edit_routes(bootstrap: dict, tag: str, edit) -> None:
    """`edit(route)` on every route of the variant."""
    def each(route_config: dict) -> None:
        for host in route_config["virtual_hosts"]:
            for route in host.get("routes", []):
                edit(route)
    _edit_route_config(bootstrap, tag, each)


def _governance_everywhere(bootstrap: dict) -> None:
    """Before the governance was turned off where it has nothing to enforce: its Wasm filter built
    for every request (and counting the cost), the request metrics given no prices."""
    def on(route_config: dict) -> None:
        for host in route_config["virtual_hosts"]:
            for name in (governance.FILTER_NAME, request_metrics.FILTER_NAME):
                host.get("typed_per_filter_config", {}).pop(name, None)
    _edit_route_config(bootstrap, "governance-on", on)


def _token_filters_before(bootstrap: dict) -> None:
    """Token counts as before the usage module: the bootstrap template's token-scan Lua and
    json_to_metadata in its place, the scan skipped on the fast routes that skipped it then (JSON
    answers of OpenAI-compatible providers; the streams, whose guard read the counts)."""
    template = yaml.safe_load(re.sub(r"\$\{\w+\}", "0", envoy_file("bootstrap.template.yaml").read_text()))
    before = [f for f in _manager(template)["http_filters"] if f["name"] in usage.REPLACED]
    filters = _manager(bootstrap)["http_filters"]
    at = next(i for i, f in enumerate(filters) if f["name"] == usage.FILTER_NAME)
    filters[at:at + 1] = before

    def skip_scan(route: dict) -> None:
        fast = route.get("metadata", {}).get("filter_metadata", {}).get(LUA_FILTER, {}).get("fast")
        if fast is not None and ("anthropic_version" not in fast or route["name"].endswith(":stream")):
            route["typed_per_filter_config"][TOKEN_SCAN_FILTER] = TOKEN_SCAN_OFF
    _edit_routes(bootstrap, "token-filters", skip_scan)


def _ext_proc_everywhere(bootstrap: dict) -> None:
    filters = _manager(bootstrap)["http_filters"]
    at = next(i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.ext_proc")
    filters[at] = {"name": filters[at]["name"], "typed_config": ext_proc_config(filters[at])}


def _without_guard(bootstrap: dict) -> None:
    composite = next(f for f in _manager(bootstrap)["http_filters"] if f["name"] == "envoy.filters.http.ext_proc")
    matchers = composite["typed_config"]["xds_matcher"]["matcher_list"]["matchers"]
    matchers[:] = [m for m in matchers if m["on_match"]["action"]["name"] != GUARD_ACTION]


CHECK_ALONE = "the fast path's check alone (no logs, no metrics, no governance, no usage module, no ext_proc)"
EXTENSIONS = (request_metrics.FILTER_NAME, governance.FILTER_NAME)
VARIANTS = {
    "as shipped (the default configuration)": lambda b: None,
    "without the JSON access log (stdout)": _without_logs(STDOUT_LOG),
    "the fast path's Lua in place of its native module (before)": lambda b: _with_lua(
        envoy_file("fast_path.lua").read_text())(b),
    "without the request metrics (native module)": _without_filters(request_metrics.FILTER_NAME),
    "the governance's Wasm filter built for every request (before: no limits to enforce, but the cost)":
        _governance_everywhere,
    "without metrics and governance": _without_filters(*EXTENSIONS),
    "without metrics and governance, requests counted by the stats access logger": _then(
        _without_filters(*EXTENSIONS), _with_logs(STATS_LOGGER)),
    "before native metrics: metrics and governance in one Wasm module": _one_wasm_module,
    "the metrics as a Wasm filter of their own, the governance's built for every request": _then(
        _governance_everywhere, _metrics_in_wasm),
    "without the usage module (token counts)": _without_filters(usage.FILTER_NAME),
    "token counts by the Lua and json_to_metadata (before the usage module)": _token_filters_before,
    "without the ext_proc filter (built only for requests that may use it)": _without_filters("envoy.filters.http.ext_proc"),
    "ext_proc built for every request, turned off per route (before)": _ext_proc_everywhere,
    "without the stream guard (built for fast streams only, by ext_proc's composite)": _without_guard,
    "with tracing's gRPC access log (spans)": _with_logs(span_access_log()),
    "before this round: gRPC access log for the metrics, no extension": _then(
        _without_filters(*EXTENSIONS), _with_logs(span_access_log())),
    CHECK_ALONE: _then(
        _without_logs(STDOUT_LOG), _without_filters(*EXTENSIONS, usage.FILTER_NAME, "envoy.filters.http.ext_proc")),
    "the fast path's Lua alone (before)": lambda b: _then(VARIANTS[CHECK_ALONE], _with_lua(
        envoy_file("fast_path.lua").read_text()))(b),
}


# References started apart from the gateway, on the same stand-in upstream.
REFERENCES = {
    "bare Envoy (listener, router, one cluster)": "bare_envoy",
    "no-checks ceiling: Envoy alone routes on the body's model (design study)": "native_routing_envoy",
}


def _with_lua(source: str):
    """The fast path's Lua (`source`) in place of its native module (or of the Lua shipped): the
    routes still carry the tables the Lua reads."""
    def mutate(bootstrap: dict) -> None:
        filters = _manager(bootstrap)["http_filters"]
        for i, f in enumerate(filters):
            if f["name"] == LUA_FILTER:
                filters[i] = lua_filter(source)
    return mutate


def _with_flat_lua(script: str):
    """A script of before the fast routes carried one `fast` table (envoy/fast_path.lua up to
    commit 8087783): the routes' metadata back in its flat form, the credentials removed by the
    script again (the route removes only the flags)."""
    def flatten(route: dict) -> None:
        metadata = route.get("metadata", {}).get("filter_metadata", {}).get(LUA_FILTER, {})
        if "fast" not in metadata:
            return
        fast = metadata.pop("fast")
        decision = dict(zip(fast["metadata"][::2], fast["metadata"][1::2]))
        flags = (FLAG_HEADER, STREAM_HEADER)
        removed = [h for h in route["request_headers_to_remove"] if h not in flags]
        route["request_headers_to_remove"] = [h for h in route["request_headers_to_remove"] if h in flags]
        metadata.update({key: decision[key] for key in ("model", "decision", "provider", "api", "upstream_api")})
        metadata.update(model_json=fast["model_json"], upstream_path=fast["upstream_path"],
                        keep_query="anthropic_version" in fast, remove_headers=",".join(removed))
        metadata.update({key: fast[key] for key in ("anthropic_version", "spans", "clients") if key in fast})

    def mutate(bootstrap: dict) -> None:
        _with_lua(script)(bootstrap)
        _edit_routes(bootstrap, "flat", flatten)
    return mutate


def _with_wasm(path: Path):
    def mutate(bootstrap: dict) -> None:
        for f in _manager(bootstrap)["http_filters"]:
            if f["name"] == governance.FILTER_NAME:
                f["typed_config"]["config"]["vm_config"]["code"] = {"local": {"filename": str(path)}}
    return mutate


# bench/governance_floor.c, built by the Makefile's Wasm rule: what the governance's Wasm filter
# costs before it does anything, and with only the host calls its work makes.
GOVERNANCE_PROBES = {
    "governance's Wasm filter doing nothing (probe)": "build/bench/governance_floor.wasm",
    "governance's Wasm filter making only its host calls (probe)": "build/bench/governance_floor_host_calls.wasm",
}
ROOT = Path(__file__).resolve().parent.parent


def _governance_probes() -> dict[str, Path]:
    subprocess.run(["make", "-s", *GOVERNANCE_PROBES.values()], cwd=ROOT, check=True)
    return {name: ROOT / path for name, path in GOVERNANCE_PROBES.items()}


def measure(fleet: Fleet, workdir: Path, *, rounds: int, seconds: float, connections: int, threads: int,
            out: Path, running: list, only: str | None = None, rate: float | None = None,
            lua: list[str] = (), lua_alone: list[str] = (), wasm: list[str] = (), flat_lua: list[str] = (),
            governance: str | None = None) -> int:
    """`only`: comma-separated parts of variant names to run (development); `rate`: pace every
    variant at this many req/s instead of driving it flat out (CPU per request at equal load);
    `lua` / `wasm`: more variants, the shipped bootstrap with another fast-path script or governance
    module (A/B of a change, side by side in one run); `lua_alone`: another script in the "Lua
    alone" variant (what a script costs by itself); `flat_lua`: both variants with a script of before
    the routes' one `fast` table (the routes given their older metadata); `governance`: "keys" or
    "limits", the gateway (so every variant) with the bench's client key, or with its limits too."""
    upstream = fleet.upstream()
    gateway = fleet.switchyard("sy" + (governance or "fast"), upstream, workers=1, engine="none", governance=governance)
    argv = Path(f"/proc/{gateway.processes['envoy']}/cmdline").read_bytes().split(b"\0")
    shipped = yaml.safe_load(Path(argv[argv.index(b"-c") + 1].decode()).read_text())

    variants = dict(VARIANTS)
    for path in lua:
        variants[f"as shipped, fast-path Lua from {path}"] = _with_lua(Path(path).read_text())
    for path in lua_alone:
        variants[f"Lua alone, from {path}"] = _then(VARIANTS[CHECK_ALONE], _with_lua(Path(path).read_text()))
    for path in flat_lua:
        variants[f"as shipped, flat-metadata Lua from {path}"] = _with_flat_lua(Path(path).read_text())
        variants[f"Lua alone, flat-metadata Lua from {path}"] = _then(VARIANTS[CHECK_ALONE],
                                                                      _with_flat_lua(Path(path).read_text()))
    for path in wasm:
        variants[f"as shipped, governance module from {path}"] = _with_wasm(Path(path).resolve())
    if governance == "limits":
        for name, path in _governance_probes().items():
            variants[name] = _with_wasm(path)
    chosen = [name for name in [*REFERENCES, *variants]
              if only is None or name == next(iter(VARIANTS)) or any(part in name for part in only.split(","))]

    envoys: dict[str, tuple[str, int]] = {}
    for name in chosen:
        if name in REFERENCES:
            system = getattr(fleet, REFERENCES[name])(upstream)
            envoys[name] = (system.url + "/v1/chat/completions", system.processes["envoy"])
            continue
        bootstrap = copy.deepcopy(shipped)
        variants[name](bootstrap)
        port, admin = free_port(), free_port()
        bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = port
        bootstrap["admin"]["address"]["socket_address"]["port_value"] = admin
        path = workdir / f"fast-path-variant-{port}.yaml"
        path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        proc, log = fleet.spawn(f"variant-{port}", [envoy_binary(), "-c", str(path), "--log-level", "error",
                                                    "--disable-hot-restart", "--base-id", str(port),
                                                    "--file-flush-interval-msec", "500",
                                                    "--concurrency", str(max(1, os.cpu_count() or 1))],
                                env={SEARCH_PATH_ENV: str(Path(str(envoy_file(MODULE_FILE))).parent)})
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        wait_http(url, 30, body=chat_body("fast"), proc=proc, log=log)
        envoys[name] = (url, proc.pid)

    delay_ms = None if rate is None else connections / rate * 1000
    script = lua_script("/v1/chat/completions", chat_body("fast"), vary=False, delay_ms=delay_ms)
    worker, upstream_pid = gateway.processes["worker1"], upstream.processes["upstream"]
    # Per round: req/s, then CPU ms per request of Envoy, the filter worker, the upstream and wrk, then p50 ms.
    figures: dict[str, list[tuple[float, ...]]] = {name: [] for name in envoys}
    names = list(envoys)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # the order rotates
            url, pid = envoys[name]
            before = cpu_seconds(pid), cpu_seconds(worker), cpu_seconds(upstream_pid)
            result = run_wrk(url, script, workdir, seconds=seconds, connections=connections, threads=threads,
                             procs=running)
            after = cpu_seconds(pid), cpu_seconds(worker), cpu_seconds(upstream_pid)
            n = max(result.requests, 1)
            per_req = [(a - b) / n * 1000 for a, b in zip(after, before)] + [result.wrk_cpu_s / n * 1000]
            figures[name].append((result.rps, *per_req, result.p50_ms))
            print(f"{name[:60]:60s} {result.rps:7.0f} req/s  p50 {result.p50_ms:.3f} ms  Envoy {per_req[0]:.3f}  worker {per_req[1]:.3f}  "
                  f"upstream {per_req[2]:.3f}  wrk {per_req[3]:.3f} CPU ms/req  (load {os.getloadavg()[0]:.1f})",
                  flush=True)

    def med(name: str, i: int) -> float:
        return statistics.median(row[i] for row in figures[name])

    shipped_name = next(iter(VARIANTS))
    bare_name = next(iter(REFERENCES))
    load = "flat out" if rate is None else f"paced at {rate:g} req/s (wrk delay())"
    lines = [
        "# What each part of the fast path costs: `make bench BENCH_ARGS=--fast-path-costs`",
        "",
        f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {os.cpu_count()} cores (1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end). Alias path, wrk {threads} threads × {connections} connections, {load}, "
        f"{rounds} interleaved rounds of {seconds:g} s, medians. Gateway: {governance or 'default'} configuration. Each variant is Switchyard's fast-path Envoy with one "
        "part removed, added or swapped (same routes, clusters, keys and filter worker); none is a configuration "
        "Switchyard offers. The references are separate Envoys on the same upstream. CPU is utime + stime per "
        "request; \"Envoy − bare\" is what the variant's Envoy spends per request beyond bare Envoy's.",
        "",
        "| variant | req/s | × as shipped | × bare Envoy | p50 ms | Envoy CPU ms / req | Envoy − bare | worker | upstream | wrk |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    shipped_rps = med(shipped_name, 0)
    bare_rps = med(bare_name, 0) if bare_name in figures else None
    bare_cpu = med(bare_name, 1) if bare_name in figures else None
    for name in figures:
        rps = med(name, 0)
        vs_bare = f"{rps / bare_rps:.2f}×" if bare_rps else "–"
        extra = f"{med(name, 1) - bare_cpu:+.3f}" if bare_cpu is not None else "–"
        lines.append(f"| {name} | {rps:.0f} | {rps / shipped_rps:.2f}× | {vs_bare} | {med(name, 5):.3f} | {med(name, 1):.3f} | {extra} | "
                     f"{med(name, 2):.3f} | {med(name, 3):.3f} | {med(name, 4):.3f} |")
    lines.append("")
    markdown = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fast_path_costs.md").write_text(markdown)
    print(markdown)
    return 0

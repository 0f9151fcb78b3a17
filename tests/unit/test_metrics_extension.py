"""The compiled metrics extension (envoy/switchyard_metrics.c) and /metrics' reading of its
counters (filter/envoy_stats.py), on inputs chosen to sit on bucket bounds and to carry odd
label values: the families served must equal what prometheus_client's own Counter and Histogram
make of the same requests under the rules the README states (the old Python observer's rules).
The extension runs in wasmtime under tests/proxy_wasm_host.py; end-to-end tests run it in Envoy.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from filter import envoy_stats
from filter.metrics import TOKEN_BUCKETS, UPSTREAM_BUCKETS, extension_config
from tests.proxy_wasm_host import ProxyWasmHost, serialize_metadata

SENT, FIRST = "x-switchyard-t-sent", "x-switchyard-t-first"
BOUNDS_NS = [round(float(b) * 1e9) for b in UPSTREAM_BUCKETS]
NANOSECONDS = (st.sampled_from(BOUNDS_NS).flatmap(lambda b: st.sampled_from([b - 1, b, b + 1]))
               | st.integers(0, 400 * 10**9))
TOKENS = st.sampled_from([int(b) for b in TOKEN_BUCKETS]).flatmap(lambda b: st.sampled_from([b - 1, b, b + 1])) \
    | st.integers(0, 3_000_000)
MODELS = ["openai/gpt-4o", "anthropic/claude-sonnet-4-5", "local/qwen 2.5;x=.=y%", ""]


@st.composite
def requests(draw):
    model = draw(st.sampled_from(MODELS))
    request = {
        "status": draw(st.sampled_from([200, 201, 404, 429, 500, 503, 0])),
        "api": draw(st.sampled_from(["openai", "anthropic", ""])),
        "model": model,
        "provider": model.partition("/")[0],
        "decision": draw(st.sampled_from(["literal", "alias", "preference", ""])),
        "route": draw(st.sampled_from(["", "code_generation", "ünïcode route"])),
        "client": draw(st.sampled_from(["", "team-a", "key-2"])),
        "served": draw(st.sampled_from([None, model, "groq/llama-3.3-70b"])),
        "model_label": draw(st.sampled_from(["", "openai/*"])),
        "upstream_api": draw(st.sampled_from(["openai", "anthropic"])),
        "sent": draw(st.none() | NANOSECONDS),
        "first": draw(st.none() | NANOSECONDS),
        "latency": draw(st.none() | NANOSECONDS),
        "duration": draw(NANOSECONDS),
        "usage": draw(st.none() | st.fixed_dictionaries({}, optional={
            "input_tokens": TOKENS, "output_tokens": TOKENS, "cached_tokens": TOKENS, "cache_write_tokens": TOKENS})),
    }
    return request


def run_in_extension(host: ProxyWasmHost, r: dict) -> dict[str, str] | None:
    decision = {key: r[key] for key in ("api", "provider", "model", "model_label", "decision", "route", "client",
                                        "upstream_api") if r[key]}
    namespaces: dict[str, dict] = {"switchyard": {**decision, "router_ms": 1.5}}  # numbers in it too
    if r["usage"] is not None:
        namespaces["switchyard.usage"] = {k: float(v) for k, v in r["usage"].items()}
    properties = {b"response\0code": struct.pack("<q", r["status"]), b"request\0duration": struct.pack("<q", r["duration"]),
                  b"metadata": serialize_metadata(namespaces)}
    if r["latency"] is not None:
        properties[b"response\0backend_latency"] = struct.pack("<q", r["latency"])
    headers = {"content-type": "application/json"}
    if r["served"] is not None:
        headers["x-switchyard-model"] = r["served"]
    if r["sent"] is not None:
        headers[SENT] = str(r["sent"])
    if r["first"] is not None:
        headers[FIRST] = str(r["first"])
    return host.request(properties, headers)


def reference(registry: CollectorRegistry):
    """The rules, restated on prometheus_client's own collectors."""
    upstream = [float(b) for b in UPSTREAM_BUCKETS]
    # The governance extension's counters are served from the same stats; this extension counts
    # none of them, and the one without labels is exported at zero.
    Counter("switchyard_limits_unchecked", "", registry=registry)
    return (
        Counter("switchyard_requests", "", ["client_api", "provider", "model", "decision", "route", "status_class", "client"],
                registry=registry),
        Histogram("gen_ai_client_operation_duration_seconds", "", ["gen_ai_provider_name", "gen_ai_request_model", "error_type"],
                  buckets=upstream, registry=registry),
        Histogram("gen_ai_server_time_to_first_token_seconds", "", ["gen_ai_provider_name", "gen_ai_request_model"],
                  buckets=upstream, registry=registry),
        Histogram("gen_ai_client_token_usage", "", ["gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
                  buckets=[float(b) for b in TOKEN_BUCKETS], registry=registry),
    )


def count_in_reference(collectors, r: dict) -> None:
    requests_total, operation, first_token, tokens = collectors
    model, provider, kind = r["model"], r["provider"], r["decision"]
    if model and r["served"] and r["served"] != model:  # a fallback answered
        model, provider, kind = r["served"], r["served"].partition("/")[0], "fallback"
    elif r["model_label"]:  # a wildcard entry: counted under its name
        model = r["model_label"]
    requests_total.labels(r["api"], provider, model, kind, r["route"], f"{r['status'] // 100}xx", r["client"]).inc()
    if r["sent"] is None or not model:
        return
    finished = r["latency"] is not None
    seconds = (r["latency"] if finished else max(0, r["duration"] - r["sent"])) / 1e9
    error = str(r["status"]) if r["status"] >= 400 else ("" if finished else "incomplete")
    operation.labels(provider, model, error).observe(seconds)
    if r["status"] < 400 and r["first"] is not None:
        first_token.labels(provider, model).observe(r["first"] / 1e9)
    if r["status"] < 400 and r["usage"]:
        u = {k: r["usage"].get(k, 0) for k in ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens")}
        prompt = u["input_tokens"] + (u["cached_tokens"] + u["cache_write_tokens"] if r["upstream_api"] == "anthropic" else 0)
        for kind_name, count in (("input", prompt), ("output", u["output_tokens"]), ("cached_input", u["cached_tokens"])):
            tokens.labels(provider, model, kind_name).observe(count)


class FromEnvoy:
    def __init__(self, stats):
        self.stats = stats

    def collect(self):
        return envoy_stats.families(self.stats)


def assert_served_equal(collector, expected_registry: CollectorRegistry) -> None:
    """What `collector` serves equals the reference's samples, series for series."""
    served = CollectorRegistry()
    served.register(collector)
    got, expected = samples(served), samples(expected_registry)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert math.isclose(got[name], value, rel_tol=1e-12, abs_tol=1e-9), name


def samples(registry: CollectorRegistry) -> dict[str, float]:
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#") and "_created" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@pytest.fixture(scope="module")
def fresh_host():
    return lambda: ProxyWasmHost(configuration=extension_config())


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(requests(), max_size=30))
def test_served_families_equal_prometheus_clients_on_the_same_requests(fresh_host, batch):
    host = fresh_host()
    assert host.configured
    expected_registry = CollectorRegistry()
    collectors = reference(expected_registry)
    for r in batch:
        client_headers = run_in_extension(host, r)
        # Envoy's timing headers never reach the client.
        assert SENT not in client_headers and FIRST not in client_headers
        count_in_reference(collectors, r)
    assert_served_equal(FromEnvoy(host.stats()), expected_registry)


def test_a_bucket_bound_is_inside_its_bucket_to_the_nanosecond(fresh_host):
    host = fresh_host()
    base = {"status": 200, "api": "openai", "model": "openai/gpt-4o", "provider": "openai", "decision": "literal",
            "route": "", "client": "", "served": None, "model_label": "", "upstream_api": "openai", "first": None, "duration": 0,
            "usage": None, "sent": 1000}
    for latency in (10_000_000, 10_000_001):  # exactly 10 ms, then 1 ns more
        run_in_extension(host, {**base, "latency": latency})
    registry = CollectorRegistry()
    registry.register(FromEnvoy(host.stats()))
    got = samples(registry)
    labels = 'error_type="",gen_ai_provider_name="openai",gen_ai_request_model="openai/gpt-4o"'
    assert got[f'gen_ai_client_operation_duration_seconds_bucket{{{labels},le="0.01"}}'] == 1
    assert got[f'gen_ai_client_operation_duration_seconds_bucket{{{labels},le="0.025"}}'] == 2
    assert got[f"gen_ai_client_operation_duration_seconds_sum{{{labels}}}"] == 0.020000001


def test_a_bad_configuration_is_refused_and_said():
    host = ProxyWasmHost(configuration="duration_seconds 0.5 0.1\ntokens 1 2\n")  # bounds must ascend
    assert not host.configured
    assert any("bad configuration" in message for _, message in host.logs)


def test_label_sets_past_the_bound_are_counted_as_dropped_not_grown(fresh_host):
    host = fresh_host()
    base = {"status": 404, "api": "openai", "provider": "", "decision": "", "route": "", "client": "", "served": None,
            "model_label": "",
            "upstream_api": "openai", "sent": None, "first": None, "latency": None, "duration": 0, "usage": None}
    for i in range(12_300):  # one label set each: the table holds 12,288
        run_in_extension(host, {**base, "model": f"m{i}"})
    registry = CollectorRegistry()
    registry.register(FromEnvoy(host.stats()))
    got = samples(registry)
    assert got["switchyard_metrics_dropped_total"] == 12_300 - 12_288
    assert sum(v for k, v in got.items() if k.startswith("switchyard_requests_total")) == 12_288

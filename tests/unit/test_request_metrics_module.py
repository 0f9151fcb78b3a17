"""The request metrics as native code (envoy/switchyard_request_metrics.c): under `switchyard up` it
counts every request in place of the Wasm extension's metrics part, and /metrics must serve the
same families from it. Its C is driven here through a stand-in for Envoy's side of the ABI
(tests/unit/native/request_metrics_host.c), its counters rendered as Envoy's /stats/prometheus
renders labelled counters and read back by filter/envoy_stats.py; the families served must equal
what prometheus_client's own collectors make of the same requests under the README's rules — the
reference the Wasm extension is held to (tests/unit/test_metrics_extension.py). Through the real
Envoy, the metrics are checked end to end (tests/e2e/test_observability.py, test_fast_path.py)."""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from filter import envoy_stats
from filter.governance.protocol import encode_name
from filter.metrics import extension_config
from filter.render import governance, request_metrics, usage
from filter.render.bootstrap import render_bootstrap
from filter.render.governance import FILTER_NAME as GOVERNANCE_FILTER
from filter.render.wasm import EXTENSION_FILTER
from tests.unit.test_metrics_extension import (FIRST, SENT, assert_served_equal, count_in_reference, reference,
                                               requests)
from tests.unit.test_usage_module import _config, _filter_names

ROOT = Path(__file__).resolve().parents[2]
LOG = 1 << 20


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    clang = shutil.which("clang")
    assert clang, "clang is installed by `make install` (the modules are built with it)"
    library = tmp_path_factory.mktemp("request_metrics") / "librequest_metrics_host.so"
    subprocess.run([clang, "-O1", "-g", "-Wall", "-Werror", "-fPIC", "-shared", "-fsanitize=undefined",
                    "-fsanitize-trap=undefined", "-o", str(library), str(ROOT / "envoy/switchyard_request_metrics.c"),
                    str(ROOT / "tests/unit/native/request_metrics_host.c")], check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    lib.set_route_configuration.argtypes = [ctypes.c_char_p]
    lib.configure.restype = ctypes.c_bool
    lib.configure.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    strings = ctypes.POINTER(ctypes.c_char_p)
    lib.request.restype = ctypes.c_size_t
    lib.request.argtypes = [ctypes.c_uint64, strings, ctypes.c_size_t, strings, ctypes.POINTER(ctypes.c_double),
                            ctypes.c_size_t, strings, ctypes.c_size_t, ctypes.c_bool, ctypes.c_int64, ctypes.c_int64,
                            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return lib


class Envoy:
    """The stand-in's counters, as Envoy keeps them: by name and label values."""

    def __init__(self, lib, configuration: str = extension_config(), prices: str | None = None):
        """`prices`: the virtual host's per-filter configuration (None: none, the governance counts cost)."""
        self.lib = lib
        lib.set_route_configuration(prices.encode() if prices is not None else None)
        out = ctypes.create_string_buffer(LOG)
        self.configured = lib.configure(configuration.encode(), out, LOG)
        self.names: dict[str, tuple[str, list[str]]] = {}
        self.values: dict[tuple[str, tuple[str, ...]], int] = defaultdict(int)
        self._read(out.value)

    def _read(self, log: bytes) -> None:
        for line in log.decode().splitlines():
            kind, counter, value, *labels = line.split("\x1f")
            if kind.startswith("define "):
                self.names[counter] = (kind.removeprefix("define "), labels)
            else:
                name, label_names = self.names[counter]
                assert len(labels) == len(label_names), f"{name}: as many values as labels, or Envoy refuses"
                self.values[(counter, tuple(labels))] += int(value)

    def request(self, r: dict) -> list[str]:
        """One finished request; the response headers the client sees."""
        decision = [x for key in ("api", "provider", "model", "model_label", "decision", "route", "client",
                                  "upstream_api", "stream_end") if r.get(key) for x in (key, r[key])]
        usage_counts = r["usage"] or {}
        answer = {"content-type": "application/json"}
        if r["served"] is not None:
            answer["x-switchyard-model"] = r["served"]
        if r["sent"] is not None:
            answer[SENT] = str(r["sent"])
        if r["first"] is not None:
            answer[FIRST] = str(r["first"])
        first = r["first"] or 0
        finished = r["latency"] is not None
        # The module's clock, set so that its upstream duration is the one Envoy's timings give.
        end_after = (r["latency"] - first) if finished else 0
        complete_after = end_after + 1000 if finished else r["duration"] - (r["sent"] or 0) - first

        def strings(items):
            return (ctypes.c_char_p * max(len(items), 1))(*(s.encode() for s in items))

        out, seen = ctypes.create_string_buffer(LOG), ctypes.create_string_buffer(4096)
        pairs = [x for k, v in answer.items() for x in (k, v)]
        self.lib.request(r["status"], strings(decision), len(decision) // 2, strings(list(usage_counts)),
                         (ctypes.c_double * max(len(usage_counts), 1))(*(float(v) for v in usage_counts.values())),
                         len(usage_counts), strings(pairs), len(answer), finished, end_after, complete_after,
                         out, LOG, seen, 4096)
        self._read(out.value)
        return seen.value.decode().splitlines()

    def prometheus(self) -> str:
        """What Envoy's /stats/prometheus?usedonly shows of them."""
        def escape(value: str) -> str:
            return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        lines = []
        for counter, (name, label_names) in self.names.items():
            series = [(labels, v) for (c, labels), v in self.values.items() if c == counter]
            if not series:
                continue
            lines.append(f"# TYPE envoy_dynamicmodulescustom_{name} counter")
            for labels, value in series:
                text = ",".join(f'{k}="{escape(v)}"' for k, v in zip(label_names, labels))
                lines.append(f"envoy_dynamicmodulescustom_{name}{{{text}}} {value}")
        return "\n".join(lines) + "\n"


class FromEnvoy:
    def __init__(self, text: str):
        self.text = text

    def collect(self):
        return envoy_stats.families({"stats": []}, envoy_stats.native_counters(self.text))


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(requests(), max_size=30))
def test_served_families_equal_prometheus_clients_on_the_same_requests(host, batch):
    envoy = Envoy(host)
    assert envoy.configured
    expected_registry = CollectorRegistry()
    collectors = reference(expected_registry)
    for r in batch:
        seen = envoy.request(r)
        # Envoy's timing headers never reach the client; the others do.
        assert SENT not in seen and FIRST not in seen and "content-type" in seen
        count_in_reference(collectors, r)
    assert_served_equal(FromEnvoy(envoy.prometheus()), expected_registry)


def test_a_stream_the_gateway_cut_is_counted_as_cut_and_incomplete(host):
    envoy = Envoy(host)
    r = {"status": 200, "api": "openai", "model": "openai/gpt-4o", "provider": "openai", "decision": "alias",
         "route": "", "client": "", "served": None, "model_label": "", "upstream_api": "openai", "sent": 10,
         "first": 1000, "latency": None, "duration": 5_000_000_010, "usage": None}
    envoy.request(r)  # a reset: incomplete, not cut
    envoy.request({**r, "stream_end": "cut_timeout"})
    families = {f.name: f for f in envoy_stats.families({"stats": []}, envoy_stats.native_counters(envoy.prometheus()))}
    cut = [(s.labels, s.value) for s in families["switchyard_streams_cut"].samples if s.name.endswith("_total")]
    assert cut == [({"client_api": "openai", "model": "openai/gpt-4o"}, 1)]
    durations = {s.labels.get("le"): s.value for s in families["gen_ai_client_operation_duration_seconds"].samples
                 if s.name.endswith("_bucket") and s.labels["error_type"] == "incomplete"}
    assert durations["+Inf"] == 2 and durations["2.5"] == 0  # 5 s from the first byte sent until it ended


PRICED = {"openai/gpt-4o": (2.5e-06, 1e-05, 1.25e-06), "anthropic/claude-sonnet-4-5": (3e-06, 1.5e-05, 3e-07),
          "local/qwen 2.5;x=.=y%": (1e-07, 2e-07, 1e-07), "openai/*": (1e-06, 4e-06, 5e-07)}


def expected_cost(r: dict) -> tuple[tuple[str, str, str], int] | None:
    """The governance's rule (envoy/switchyard_governance.c, proxy_on_log): nano-USD by client,
    provider and model, for a request whose answer's tokens were read."""
    if not r["usage"]:
        return None
    model = r["model_label"] or r["model"]
    if r["served"] and r["model"] and r["served"] != r["model"]:
        model = r["served"]
    if model not in PRICED:
        return None
    u = {k: r["usage"].get(k, 0) for k in ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens")}
    prompt = float(u["input_tokens"] + (u["cached_tokens"] + u["cache_write_tokens"] if r["upstream_api"] == "anthropic" else 0))
    cached = float(min(u["cached_tokens"], prompt))
    i, o, c = PRICED[model]
    usd = (prompt - cached) * i + cached * c + float(u["output_tokens"]) * o
    if usd <= 0:
        return None
    return (r["client"], model.partition("/")[0], model), math.floor(usd * 1e9 + 0.5)


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(requests(), max_size=30))
def test_with_the_prices_on_its_route_it_counts_the_cost_as_the_governance_does(host, batch):
    table = "".join(f"price {encode_name(m)} {i!r} {o!r} {c!r}\n" for m, (i, o, c) in PRICED.items())
    envoy = Envoy(host, prices="fail_closed 0\nprice bad-line\nprice x/y -1 1 1\n" + table)
    expected: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in batch:
        envoy.request(r)
        cost = expected_cost(r)
        if cost is not None:
            expected[cost[0]] += cost[1]
    got = {labels: v for (c, labels), v in envoy.values.items() if envoy.names[c][0] == "switchyard_cost_usd_total"}
    assert got == dict(expected)
    served = {(s.labels["client"], s.labels["provider"], s.labels["model"]): s.value
              for f in envoy_stats.families({"stats": []}, envoy_stats.native_counters(envoy.prometheus()))
              if f.name == "switchyard_cost_usd" for s in f.samples}
    assert served.keys() == expected.keys()
    for labels, nano in expected.items():
        assert math.isclose(served[labels], nano / 1e9, rel_tol=1e-12)  # /metrics shows USD


def test_without_prices_on_its_route_it_counts_no_cost(host):
    envoy = Envoy(host)
    r = {"status": 200, "api": "openai", "model": "openai/gpt-4o", "provider": "openai", "decision": "alias",
         "route": "", "client": "team-a", "served": None, "model_label": "", "upstream_api": "openai", "sent": 10,
         "first": 1000, "latency": 2000, "duration": 3000, "usage": {"input_tokens": 1000, "output_tokens": 50}}
    envoy.request(r)
    assert not any(envoy.names[c][0] == "switchyard_cost_usd_total" for c, _ in envoy.values)


@pytest.mark.parametrize("configuration", ["", "duration_seconds 0.5\n", "tokens 1 2\n",
                                           "duration_seconds 0.5 0.1\ntokens 1 2\n", "duration_seconds 0.5\ntokens 2 1\n",
                                           "duration_seconds x\ntokens 1\n", "duration_seconds 0.5\ntokens " + "1" * 19 + "\n"])
def test_a_bad_configuration_is_refused(host, configuration):
    assert not Envoy(host, configuration).configured


@pytest.mark.parametrize("gateway", [{}, {"fast_path": False}])
def test_switchyard_up_counts_requests_natively_and_keeps_the_governance_in_wasm(tmp_path, gateway):
    names = _filter_names(render_bootstrap(_config(**gateway), tmp_path))
    assert EXTENSION_FILTER not in names
    # Last before the router: the metrics see the answer first, and complete after the usage filter.
    assert names[-3:] == [GOVERNANCE_FILTER, request_metrics.FILTER_NAME, "envoy.filters.http.router"]
    assert names.index(usage.FILTER_NAME) < names.index(request_metrics.FILTER_NAME)


def test_switchyard_render_keeps_the_wasm_extension_and_usage_metrics_off_has_no_metrics(tmp_path):
    rendered = _filter_names(render_bootstrap(_config(), keys_dir=tmp_path))
    assert EXTENSION_FILTER in rendered and request_metrics.FILTER_NAME not in rendered
    off = _filter_names(render_bootstrap(_config(usage_metrics=False), tmp_path))
    assert request_metrics.FILTER_NAME not in off and EXTENSION_FILTER not in off and GOVERNANCE_FILTER in off


def test_the_modules_buckets_are_the_families_buckets(tmp_path):
    manager = render_bootstrap(_config(), tmp_path)["static_resources"]["listeners"][0]
    metrics = next(f for f in manager["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
                   if f["name"] == request_metrics.FILTER_NAME)
    assert metrics["typed_config"]["filter_config"]["value"] == extension_config()


def test_a_missing_module_says_how_to_build_it(tmp_path):
    with pytest.raises(request_metrics.dynamic_modules.ModuleMissing, match="make install.*switchyard_request_metrics.c"):
        request_metrics.metrics_filter(tmp_path / request_metrics.MODULE_FILE)


def _virtual_host(tmp_path, config):
    from filter.render.bootstrap import write_reloadable
    import yaml
    write_reloadable([config], tmp_path, 1)
    routes = yaml.safe_load((tmp_path / "routes.yaml").read_text())
    return routes["resources"][0]["virtual_hosts"][0]


def test_without_limits_or_budgets_the_governance_is_off_and_the_metrics_count_the_cost(tmp_path):
    config = _config(client_keys=[{"name": "team-a", "key": "sk-switchyard-aaaaaaaaaaaaaaaaaaaaaaaa"}])
    per_filter = _virtual_host(tmp_path, config)["typed_per_filter_config"]
    assert per_filter[GOVERNANCE_FILTER] == {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                                             "disabled": True}
    prices = per_filter[request_metrics.FILTER_NAME]["filter_config"]["value"]
    assert prices.splitlines() == governance.price_lines(config) and prices.startswith("price openai/gpt-4o ")


def test_with_a_limit_or_a_budget_the_governance_counts_the_cost(tmp_path):
    for gateway in ({"client_keys": [{"name": "team-a", "key": "sk-switchyard-aaaaaaaaaaaaaaaaaaaaaaaa",
                                      "budget": {"usd": 5}}]},
                    {"limits": {"default": {"rpm": 60}},
                     "client_keys": [{"name": "team-a", "key": "sk-switchyard-aaaaaaaaaaaaaaaaaaaaaaaa"}]}):
        per_filter = _virtual_host(tmp_path, _config(**gateway)).get("typed_per_filter_config", {})
        assert GOVERNANCE_FILTER not in per_filter and request_metrics.FILTER_NAME not in per_filter

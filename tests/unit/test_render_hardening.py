"""What the rendered bootstrap does against floods, stuck workers, the admin port and provider
headers (the behaviour itself is shown end to end in tests/e2e/test_hardening.py)."""

from __future__ import annotations

import dataclasses
import re

from filter.config import parse_config
from filter.render.bootstrap import render_bootstrap
from filter.render.fast_path import ext_proc_config


def _config(**gateway):
    return parse_config({
        "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 18080, "timeout": "45s"}},
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "k", "default": True,
             "fallbacks": ["anthropic/claude-sonnet-4-5"]},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "k"},
            {"model": "local/m", "base_url": "http://127.0.0.1:9999/v1"},
        ],
        "routing": {"engine": "none"},
        "gateway": gateway,
    }, "t.yaml", {})


def _manager(bootstrap):
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def test_connections_are_limited_and_slow_or_idle_clients_time_out_by_default():
    bootstrap = render_bootstrap(_config())
    monitor = bootstrap["overload_manager"]["resource_monitors"][0]
    assert monitor["name"] == "envoy.resource_monitors.global_downstream_max_connections"
    assert monitor["typed_config"]["max_active_downstream_connections"] == 4096
    manager = _manager(bootstrap)
    assert manager["request_headers_timeout"] == "10.000s"
    assert manager["common_http_protocol_options"]["idle_timeout"] == "300.000s"
    assert manager["request_timeout"] == "300.000s"
    assert manager["http2_protocol_options"]["max_concurrent_streams"] == 128


def test_a_lowered_connection_limit_reaches_envoy_and_every_cluster():
    bootstrap = render_bootstrap(_config(), max_connections=384)
    assert bootstrap["overload_manager"]["resource_monitors"][0]["typed_config"]["max_active_downstream_connections"] == 384
    filter_cluster = bootstrap["static_resources"]["clusters"][0]
    assert filter_cluster["circuit_breakers"]["thresholds"][0]["max_requests"] == 384
    for cluster in bootstrap["static_resources"]["clusters"][1:]:
        assert cluster["circuit_breakers"]["thresholds"][0]["max_requests"] == 4096, cluster["name"]


def test_a_tiny_timeout_never_renders_as_envoys_no_timeout():
    config = _config()
    tiny = dataclasses.replace(config, listener=dataclasses.replace(config.listener, timeout_s=1e-7),
                               routing=dataclasses.replace(config.routing, timeout_s=1e-7))
    bootstrap = render_bootstrap(tiny)
    manager = _manager(bootstrap)
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert {r["route"]["timeout"] for r in routes if "route" in r} == {"0.001s"}
    ext_proc = next(f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.ext_proc")
    assert ext_proc_config(ext_proc)["message_timeout"] == "1.001s"
    assert _config().listener.timeout_s == 45.0
    assert routes[0]["route"]["timeout"] != "0.000s"


def test_workers_are_health_checked_over_grpc_not_tcp():
    cluster = render_bootstrap(_config())["static_resources"]["clusters"][0]
    assert cluster["name"] == "switchyard_filter"
    (check,) = cluster["health_checks"]
    assert "grpc_health_check" in check and "tcp_health_check" not in check


def test_provider_clusters_strip_the_gateways_namespace_both_ways_before_the_gateway_sets_its_own():
    clusters = {c["name"]: c for c in render_bootstrap(_config())["static_resources"]["clusters"]}
    for name in ("provider_openai_gpt-4o", "provider_anthropic_claude-sonnet-4-5", "provider_local_m"):
        filters = _upstream_filter_names(clusters[name])
        assert filters[0] == "switchyard.upstream_headers", name
    chain = next(c for n, c in clusters.items() if n.startswith("failover_"))
    # Responses pass upstream filters last to first: the rules strip the provider's headers, then the
    # attempt rewriter sets x-switchyard-model for the model that served.
    assert _upstream_filter_names(chain) == ["switchyard.attempt_rewriter", "switchyard.upstream_headers",
                                             "envoy.filters.http.upstream_codec"]
    rules = _upstream_filters(chain)[1]["typed_config"]["mutations"]
    prefix = {"remove_on_match": {"key_matcher": {"prefix": "x-switchyard-"}}}
    assert prefix in rules["request_mutations"] and prefix in rules["response_mutations"]
    removed = {m["remove"] for m in rules["request_mutations"] if "remove" in m}
    assert {"cookie", "proxy-authorization", "x-forwarded-for"} <= removed


def _upstream_filters(cluster):
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    return options["http_filters"]


def _upstream_filter_names(cluster):
    return [f["name"] for f in _upstream_filters(cluster)]


def test_the_admin_port_serves_what_operators_read_and_never_the_log_level():
    (allowed,) = render_bootstrap(_config())["admin"]["allow_paths"]
    pattern = re.compile(allowed["safe_regex"]["regex"])
    for path in ("/stats/prometheus", "/stats?format=json&filter=x", "/drain_listeners", "/listeners?format=json",
                 "/clusters", "/ready", "/config_dump"):
        assert pattern.fullmatch(path), path
    for path in ("/logging", "/logging?level=debug", "/quitquitquit", "/runtime_modify?a=b", "/stats/../logging",
                 "/tap", "/cpuprofiler", "/heapprofiler", "/reset_counters"):
        assert not pattern.fullmatch(path), path

"""Who guards the fast path's streams, as the bootstrap says it: Envoy's own filter where Envoy
loads this checkout's files (`switchyard up`), the filter's relay where it cannot (`switchyard
render`) or where nothing would count a cut (gateway.usage_metrics off). What the guard does is
shown end to end in tests/e2e/test_stream_cut.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson
import pytest
import yaml

from filter.config import parse_config
from filter.render import dynamic_modules, fast_path, stream_guard
from filter.render.bootstrap import envoy_file, fast_routes, render_bootstrap, write_reloadable
from filter.runtime.supervisor import envoy_binary
from filter.stream_guard import cut_message, deadline_margin


def _config(**gateway):
    return parse_config({
        "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 18080, "timeout": "45s"}},
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "$OPENAI_API_KEY", "default": True},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "$ANTHROPIC_API_KEY"},
        ],
        "gateway": gateway,
    }, "t.yaml", {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"})


def _filters(bootstrap):
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return {f["name"]: f for f in manager["http_filters"]}, [f["name"] for f in manager["http_filters"]]


def _choices(http_filter):
    """The composite's (predicate, action name, filter) in order: the first that matches wins."""
    matchers = http_filter["typed_config"]["xds_matcher"]["matcher_list"]["matchers"]
    return [(m["predicate"], m["on_match"]["action"]["name"], m["on_match"]["action"]["typed_config"]["typed_config"])
            for m in matchers]


def _header(predicate):
    return predicate["single_predicate"]["input"]["typed_config"]["header_name"]


def _twins(routes):
    return [r for r in routes if r["name"].endswith(":stream")]


def test_switchyard_up_guards_fast_streams_in_envoy_and_sends_their_answers_nowhere_else(tmp_path):
    config = _config()
    by_name, order = _filters(render_bootstrap(config, tmp_path))
    # One composite after the fast path's Lua (its flags and metadata): ext_proc for what is not
    # fast, the guard for the fast path's streams, nothing for the fast path's other requests.
    assert order.index("envoy.filters.http.ext_proc") == order.index(fast_path.LUA_FILTER) + 1
    (not_fast, first, ext_proc), (stream, second, guard) = _choices(by_name["envoy.filters.http.ext_proc"])
    assert (first, second) == ("ext_proc", fast_path.GUARD_ACTION)
    assert list(not_fast) == ["not_matcher"] and _header(not_fast["not_matcher"]) == fast_path.FLAG_HEADER
    assert _header(stream) == fast_path.STREAM_HEADER
    assert guard["name"] == stream_guard.FILTER_NAME
    assert guard["typed_config"]["dynamic_module_config"] == {"name": stream_guard.MODULE}
    assert ext_proc["typed_config"]["@type"].endswith("ExternalProcessor")
    twins = _twins(fast_routes(config))
    assert {t["match"]["path"] for t in twins} == {"/v1/chat/completions", "/v1/messages"}
    for twin in twins:
        per_filter = twin["typed_per_filter_config"]
        assert per_filter["envoy.filters.http.ext_proc"] == {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute", "disabled": True}
        assert fast_path.TOKEN_SCAN_FILTER not in per_filter  # no token scan: the usage module reads them


def test_switchyard_render_and_usage_metrics_off_leave_fast_streams_to_the_filters_relay(tmp_path):
    for bootstrap, routes in ((render_bootstrap(_config(), keys_dir=tmp_path), None),
                              (render_bootstrap(_config(usage_metrics=False), tmp_path), fast_routes(_config(usage_metrics=False)))):
        by_name, _ = _filters(bootstrap)
        ((either, action, _),) = _choices(by_name["envoy.filters.http.ext_proc"])
        assert action == "ext_proc"  # no guard: ext_proc is built for the fast path's streams too
        needed = either["or_matcher"]["predicate"]
        assert [_header(p.get("not_matcher", p)) for p in needed] == [fast_path.FLAG_HEADER, fast_path.STREAM_HEADER]
        if routes is None:
            manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            routes = manager["route_config"]["virtual_hosts"][0]["routes"]
        twins = _twins(routes)
        assert twins
        for twin in twins:
            overrides = twin["typed_per_filter_config"]["envoy.filters.http.ext_proc"]["overrides"]
            assert overrides["processing_mode"]["response_header_mode"] == "SEND"
            assert overrides["failure_mode_allow"] is True
            assert fast_path.TOKEN_SCAN_FILTER not in twin["typed_per_filter_config"]


@pytest.mark.parametrize("timeout, seconds", [("45s", 45.0), ("2.5s", 2.5), ("10m", 600.0)])
def test_the_modules_settings_are_the_filters_deadline_and_message(timeout, seconds):
    config = parse_config({
        "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 18080, "timeout": timeout}},
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "default": True}],
        "gateway": {"max_response_bytes": 12345678},
    }, "t.yaml", {})
    numbers, message, rest = stream_guard.configuration(config).split("\n")
    assert rest == ""
    timeout_s, margin_s, hold = numbers.split(" ")
    assert (float(timeout_s), float(margin_s), int(hold)) == (seconds, deadline_margin(seconds), 12345678)
    assert orjson.loads(message) == cut_message(seconds)


def test_a_missing_module_says_how_to_build_it(tmp_path):
    with pytest.raises(dynamic_modules.ModuleMissing, match="make install"):
        stream_guard.guard_filter(_config(), tmp_path / stream_guard.MODULE_FILE)


def test_envoy_loads_the_module_and_accepts_switchyard_ups_bootstrap(tmp_path):
    """`envoy --mode validate` builds every filter factory: the module is loaded, its settings
    parsed (a bad one is refused), as `switchyard up` runs it."""
    config = _config()
    bootstrap = render_bootstrap(config, tmp_path)
    write_reloadable([config], tmp_path, 1)  # the routes and clusters it reads from files
    module_dir = str(Path(str(envoy_file(stream_guard.MODULE_FILE))).parent)
    env = {**os.environ, dynamic_modules.SEARCH_PATH_ENV: module_dir}

    def validate(document) -> subprocess.CompletedProcess:
        path = tmp_path / "envoy.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                               "--log-level", "error"], capture_output=True, text=True, timeout=60, env=env)

    checked = validate(bootstrap)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    by_name, _ = _filters(bootstrap)
    (_, _, _), (_, _, guard) = _choices(by_name["envoy.filters.http.ext_proc"])
    guard["typed_config"]["filter_config"]["value"] = "soon\nnot a message\n"
    refused = validate(bootstrap)
    assert refused.returncode != 0
    assert "Failed to initialize dynamic module" in refused.stdout + refused.stderr  # refused, not crashed

"""The fast path's native module (envoy/switchyard_fast_path.c, what `switchyard up` runs) beyond its
body check (tests/unit/test_fast_path_parity.py holds that to the filter's parser): client keys, a
key restricted to some models, flags a client sends, the request limit, streams, traces and its
configuration — driven through the stand-in for Envoy (tests/unit/native/fast_path_host.c) with
the routes and the virtual host `switchyard up` renders. Through the real Envoy, the same is
checked end to end (tests/e2e/test_fast_path.py, test_governance.py, test_tracing.py)."""

from __future__ import annotations

import orjson
import pytest

from filter.config import parse_config
from filter.errors import ClientApi, error_body, unauthorized
from filter.render import fast_path, fast_path_module
from filter.render.bootstrap import _connection_manager, _template, fast_routes
from tests.unit.native import fast_path_host as native_host

ENV = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "TEAM_KEY": "team-secret"}
RAW = {
    "llm_providers": [
        {"model": "openai/gpt-4o", "access_key": "$OPENAI_API_KEY", "default": True},
        {"model": "openai/gpt-4o-mini", "access_key": "$OPENAI_API_KEY"},
        {"model": "anthropic/claude-sonnet-4-5", "access_key": "$ANTHROPIC_API_KEY"},
    ],
    "model_aliases": {"fast": {"target": "gpt-4o-mini"}},
    "gateway": {"client_keys": ["plain-key", {"name": "team a", "key": "$TEAM_KEY", "models": ["gpt-4o"]}]},
}
CHAT = orjson.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
MESSAGES = orjson.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})


def _load(host, raw=RAW) -> None:
    config = parse_config(raw, "module.yaml", ENV)
    host.reset_routes()
    virtual_host = _connection_manager(_template(config, native=True))["route_config"]["virtual_hosts"][0]
    assert host.set_virtual_host(
        virtual_host["typed_per_filter_config"][fast_path_module.FILTER_NAME]["filter_config"]["value"].encode())
    for route in fast_routes(config):
        matches = route["match"]["headers"]
        text = route["typed_per_filter_config"][fast_path_module.FILTER_NAME]["filter_config"]["value"]
        assert host.add_route(route["name"].encode(), route["match"]["path"].encode(),
                              native_host.strings([h["name"] for h in matches]),
                              native_host.strings([h["string_match"]["exact"] for h in matches]), len(matches),
                              text.encode())


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    lib = native_host.build(tmp_path_factory.mktemp("fast_path_module"))
    _load(lib)
    yield lib
    lib.reset_routes()


def send(host, path="/v1/chat/completions", body=CHAT, chunk=0, **headers):
    return native_host.request(host, {":method": "POST", ":path": path, "content-type": "application/json",
                                      **{k.replace("_", "-"): v for k, v in headers.items()}}, body, chunk)


@pytest.mark.parametrize("path, api", [("/v1/chat/completions", ClientApi.CHAT), ("/v1/messages", ClientApi.MESSAGES),
                                       ("/v1/models", ClientApi.CHAT)])
@pytest.mark.parametrize("credentials", [{}, {"x_api_key": "wrong"}, {"authorization": "Bearer wrong"},
                                         {"authorization": "Basic plain-key"}, {"authorization": "Bearerplain-key"}])
def test_a_missing_or_wrong_key_gets_the_filters_own_401_in_the_clients_shape(host, path, api, credentials):
    out = send(host, path, MESSAGES if api is ClientApi.MESSAGES else CHAT, **credentials)
    assert out.status == 401
    assert out.body == error_body(api, unauthorized())
    assert out.route == b"" and out.client == b""


@pytest.mark.parametrize("credentials", [{"x_api_key": "plain-key"}, {"authorization": "Bearer plain-key"},
                                         {"authorization": "  bEaReR   plain-key  "},
                                         {"x_api_key": "wrong", "authorization": "Bearer plain-key"}])
def test_a_configured_key_names_its_client_and_takes_the_fast_path(host, credentials):
    out = send(host, **credentials)
    assert out.status == 0 and out.client == b"key-1"
    assert out.route == b"fast:openai:fast" and out.model == b"openai/gpt-4o-mini"
    assert orjson.loads(out.body)["model"] == "gpt-4o-mini"


def test_a_header_given_twice_is_read_as_envoys_lua_reads_it_joined(host):
    base = [(":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json")]
    for keys in (["plain-key", "junk"], ["junk", "plain-key"], ["plain-key", "plain-key"]):
        out = native_host.request(host, base + [("x-api-key", k) for k in keys], CHAT)
        assert out.status == 401 and out.client == b""  # "plain-key,junk" is no configured key
    twice = [(":method", "POST"), (":path", "/v1/chat/completions"), ("x-api-key", "plain-key"),
             ("content-type", "application/json"), ("content-type", "application/json")]
    out = native_host.request(host, twice, CHAT)  # "application/json,application/json": the filter's to judge
    assert out.status == 0 and out.client == b"key-1" and out.route == b"" and out.body == CHAT


@pytest.mark.parametrize("chunk", [0, 1, 7, 1000])
def test_a_body_followed_by_trailers_takes_the_fast_path_rewritten(host, chunk):
    out = native_host.request(host, {":method": "POST", ":path": "/v1/chat/completions",
                                     "content-type": "application/json", "x-api-key": "plain-key"}, CHAT, chunk,
                              trailers=True)
    assert out.route == b"fast:openai:fast" and orjson.loads(out.body)["model"] == "gpt-4o-mini"
    assert out.body == CHAT.replace(b'"fast"', b'"gpt-4o-mini"')


def test_a_key_restricted_to_some_models_takes_the_fast_path_only_to_those(host):
    allowed = send(host, body=CHAT.replace(b'"fast"', b'"gpt-4o"'), x_api_key="team-secret")
    assert allowed.client == b"team a" and allowed.route == b"fast:openai:gpt-4o"
    refused = send(host, x_api_key="team-secret")  # `fast` is not its model: the filter answers the 403
    assert refused.status == 0 and refused.client == b"team a"
    assert refused.route == b"" and refused.body == CHAT and refused.path == b"/v1/chat/completions"


def test_flags_a_client_sends_never_choose_a_route(host):
    body = orjson.dumps({"model": "fast", "messages": []})  # not fast: the filter's 400
    out = send(host, body=body, x_api_key="plain-key", x_switchyard_fast_model="fast")
    assert out.route == b"" and out.body == body


def test_a_body_over_the_request_limit_goes_to_the_filter_whole(host):
    raw = {**RAW, "gateway": {**RAW["gateway"], "max_request_bytes": 1024}}
    _load(host, raw)
    try:
        big = orjson.dumps({"model": "fast", "messages": [{"role": "user", "content": "x" * 2000}]})
        for chunk in (0, 100, 1000):
            out = send(host, body=big, chunk=chunk, x_api_key="plain-key")
            assert out.route == b"" and out.body == big  # the filter answers its 413
        assert send(host, x_api_key="plain-key").route == b"fast:openai:fast"
    finally:
        _load(host)


def test_a_stream_takes_its_twin_and_carries_its_start(host):
    body = orjson.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    out = send(host, body=body, chunk=9, x_api_key="plain-key")
    assert out.route == b"fast:openai:fast:stream" and out.started_ms > 1.7e12


def test_the_clients_trace_is_continued_and_a_bad_one_replaced(host):
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    out = send(host, x_api_key="plain-key", traceparent=given)
    version, trace, span, flags = out.traceparent.decode().split("-")
    assert (version, trace, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01") and span != "b7ad6b7169203331"
    for bad in ("00-" + "0" * 32 + "-b7ad6b7169203331-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "junk"):
        fresh = send(host, x_api_key="plain-key", traceparent=bad).traceparent.decode().split("-")
        assert fresh[0] == "00" and len(fresh[1]) == 32 and fresh[1] != "0" * 32 and fresh[3] == "01"
        assert fresh[1] != "0af7651916cd43dd8448eb211c80319c"


def test_an_anthropic_route_keeps_only_the_query_parameters_anthropic_knows(host):
    out = send(host, "/v1/messages?beta=true&key=leak", MESSAGES, x_api_key="plain-key")
    assert out.route == b"fast:anthropic:claude-sonnet-4-5" and out.path == b"/v1/messages?beta=true"


@pytest.mark.parametrize("text", [b"nonsense", b"max_request_bytes 12x\n", b"model_json \"m\"\n",
                                  b"max_request_bytes 1\nmax_request_bytes 2\n", b"salt a\nsalt b\n",
                                  b'model_json "m"\nupstream_path /p\nspans 0\n',
                                  b'model_json "m"\nmodel_json "n"\nupstream_path /p\n',
                                  b"key 0123 bad\n", b"salt s\nkey " + b"a" * 64 + b" 6b\n",
                                  b'model_json "m"\nupstream_path /' + b"x" * 3000 + b"\n"])
def test_configuration_the_module_cannot_run_is_refused(host, text):
    try:
        assert not host.add_route(b"bad", b"/v1/chat/completions", native_host.strings([]), native_host.strings([]),
                                  0, text)
        assert not host.set_virtual_host(text)
    finally:
        _load(host)


def test_the_module_and_the_lua_read_the_same_tables():
    config = parse_config(RAW, "module.yaml", ENV)
    for route in fast_routes(config):
        fast = route["metadata"]["filter_metadata"][fast_path.LUA_FILTER]["fast"]
        text = route["typed_per_filter_config"][fast_path_module.FILTER_NAME]["filter_config"]["value"]
        assert text == fast_path_module.route_text(fast) and f'model_json {fast["model_json"]}\n' in text
        assert ("restricted 1\n" in text) == ("clients" in fast)


def test_switchyard_up_runs_the_module_and_render_keeps_the_lua(tmp_path):
    from filter.render.bootstrap import render_bootstrap

    config = parse_config(RAW, "module.yaml", ENV)

    def fast_filter(bootstrap):
        filters = _connection_manager(bootstrap)["http_filters"]
        names = [f["name"] for f in filters]
        assert names.index(fast_path_module.FILTER_NAME) + 1 == names.index("envoy.filters.http.ext_proc")
        return filters[names.index(fast_path_module.FILTER_NAME)]["typed_config"]["@type"].rsplit(".", 1)[-1]

    assert fast_filter(render_bootstrap(config, reload_dir=tmp_path)) == "DynamicModuleFilter"  # switchyard up
    assert fast_filter(render_bootstrap(config)) == "Lua"  # switchyard render: a foreign Envoy loads no file of ours
    no_metrics = parse_config({**RAW, "gateway": {**RAW["gateway"], "usage_metrics": False}}, "module.yaml", ENV)
    assert fast_filter(render_bootstrap(no_metrics, reload_dir=tmp_path)) == "Lua"

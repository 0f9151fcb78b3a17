"""The fast path without Envoy: its body check — the Lua (run in LuaJIT, Envoy's Lua runtime) and
the native module's (envoy/switchyard_fast_path.c, through ctypes) — against the filter's own
parser, and which model names it serves."""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lupa import luajit21

from filter.render import fast_path
from filter.config import parse_config
from filter.render.bootstrap import envoy_file
from filter.errors import ClientApi, GatewayError
from filter.inbound import parse_client_request
from filter.resolve import resolve
from tests.unit.native import fast_path_host as native_host


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    return native_host.build(tmp_path_factory.mktemp("fast_path"))


@pytest.fixture(scope="module", params=["lua", "native"])
def impl(request, native):
    """The check as a function of the body: the model, and its JSON string's first and last byte
    (from 1, as Lua counts), or None."""
    if request.param == "lua":
        runtime = luajit21.LuaRuntime(encoding=None)
        runtime.execute(envoy_file("fast_path.lua").read_bytes())
        return runtime.globals().fast_model

    def fast_model(body: bytes):
        found = native_host.fast_model(native, body)
        return None if found is None else (body[found[0] + 1:found[1] - 1], found[0] + 1, found[1])
    return fast_model


def check(impl, body: bytes):
    """(model, rewritten body) when the check lets the body skip the filter, else None."""
    found = impl(body)
    if found is None or found[0] is None:
        return None
    model, first, last = found[:3]
    return model.decode(), body[: first - 1] + b'"REWRITTEN"' + body[last:]


def filter_view(body: bytes):
    """What the filter makes of the body: its parsed request, or its error."""
    try:
        return parse_client_request(ClientApi.CHAT, body)
    except GatewayError as exc:
        return exc


def assert_agrees_with_filter(impl, body: bytes) -> bool:
    """Whenever Lua says "fast", the filter accepts the same body, reads the same model, finds no
    per-request preferences, and the rewritten body is its request with only `model` changed."""
    fast = check(impl, body)
    if fast is None:
        return False
    model, rewritten = fast
    request = filter_view(body)
    assert not isinstance(request, GatewayError), (body, request)
    assert request.model == model and request.preferences is None
    assert orjson.loads(rewritten) == {**request.body, "model": "REWRITTEN"}
    return True


MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("body", [
    {"model": "gpt-4o", "messages": MESSAGES},
    {"model": "openai/gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
    {"messages": MESSAGES, "model": "fast-model", "temperature": 0.2, "max_tokens": 1024, "stream": None},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "system": [{"type": "text", "text": "be brief"}],
     "messages": [{"role": "user", "content": [{"type": "text", "text": "héllo ✓ 🚀 \"quoted\" \\ \n"}]}]},
    {"model": "gpt-4o", "messages": MESSAGES, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -1e10}}}}}]},
    {"model": "gpt-4o", "messages": MESSAGES, "metadata": {"user": "u-1"}},
])
@pytest.mark.parametrize("dumps", [
    lambda b: json.dumps(b).encode(),  # the SDKs' shape: \\u escapes for non-ASCII
    lambda b: json.dumps(b, ensure_ascii=False, indent=2).encode(),
    orjson.dumps,
])
def test_what_clients_send_takes_the_fast_path_and_only_model_changes(impl, body, dumps):
    assert assert_agrees_with_filter(impl, dumps(body))


@pytest.mark.parametrize("body", [
    b"",
    b"[]",
    b'{"model": "gpt-4o"}',
    b'{"model": "gpt-4o", "messages": []}',
    b'{"model": "gpt-4o", "messages": ["hi"]}',
    b'{"model": "gpt-4o", "messages": {}}',
    b'{"model": "gpt-4o", "messages": [{}], "stream": "yes"}',
    b'{"model": "gpt-4o", "messages": [{}], "stream": 1}',
    b'{"model": 4, "messages": [{}]}',
    b'{"model": null, "messages": [{}]}',
    b'{"model": "", "messages": [{}]}',
    b'{"messages": [{}]}',
    b'{"model": "gpt-4o", "messages": [{}]} x',
    b'{"model": "gpt-4o", "messages": [{}]',
    b'{"model": "gpt-4o", "messages": [{}],}',
    b'{"model": "gpt-4o", "messages": [{"a": tru}]}',
    b'{"model": "gpt-4o", "messages": [{"a": 01}]}',
    b'{"model": "gpt-4o", "messages": [{"a": 1e999}]}',
    b'{"model": "gpt-4o", "messages": [{"a": 123456789012345678901}]}',
    b'{"model": "gpt-4o", "messages": [{"a": NaN}]}',
    b'{"model": "gpt-4o", "messages": [{"a": "\\ud800"}]}',
    b'{"model": "gpt-4o", "messages": [{"a": "\\x"}]}',
    b'{"model": "gpt-4o", "messages": [{"a": "tab\there"}]}',
    b'{"model": "gpt-4o", "messages": [{"a": "\xff"}]}',
    b'{"model": "gpt-4o", "messages": [{"a": "\xed\xa0\x80"}]}',  # a surrogate in UTF-8
    b'{"model": "gpt-4o", "messages": [{"a": "\xc3"}]}',  # cut mid-character
    b'\xef\xbb\xbf{"model": "gpt-4o", "messages": [{}]}',  # a byte-order mark
    b'{"model": "gpt-4o", "model": "other", "messages": [{}]}',
    b'{"model": "gpt-4o", "messages": [{}], "messages": [{}]}',
    b'{"mod\\u0065l": "gpt-4o", "messages": [{}]}',
    b'{"model": "gpt\\u002d4o", "messages": [{}]}',
    b'{"model": "gpt 4o", "messages": [{}]}',
    b'{"model": "gpt-4o", "messages": [{}], "routing_preferences": []}',
    b'{"model": "gpt-4o", "messages": [{}], "metadata": {"archgw_preference_config": []}}',
    b'{"model": "gpt-4o", "messages": [{}], "metadata": {"plano_preference_config": []}}',
    b'{"model": "gpt-4o", "messages": [{}], "metadata": {"archgw_\\u0070reference_config": []}}',
    b'{"model": "gpt-4o", "messages": [' + b"[" * 300 + b"]" * 300 + b"]}",
])
def test_anything_doubtful_goes_to_the_filter(impl, body):
    assert check(impl, body) is None


JSON_LEAVES = st.none() | st.booleans() | st.integers(-(10**14), 10**14) | st.floats(allow_nan=False, allow_infinity=False, width=32) | st.text()
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-4o", "openai/gpt-4o", "a.b:c@d+e", ""]) | JSON_LEAVES,
        "messages": st.lists(st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3), max_size=3) | JSON_VALUES,
        "stream": st.booleans() | st.none() | JSON_LEAVES,
        "metadata": JSON_VALUES,
        "temperature": JSON_VALUES,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_generated_bodies_never_disagree_with_the_filter(impl, body, ascii_only, indent):
    assert_agrees_with_filter(impl, json.dumps(body, ensure_ascii=ascii_only, indent=indent).encode())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, cut=st.integers(0, 400), byte=st.integers(0, 255))
def test_damaged_bodies_never_disagree_with_the_filter(impl, body, cut, byte):
    raw = bytearray(json.dumps(body, ensure_ascii=False).encode())
    if raw:
        raw[cut % len(raw)] = byte
    assert_agrees_with_filter(impl, bytes(raw))


PLAIN_LEAVES = st.none() | st.booleans() | st.integers(-(10**13), 10**13) | st.text()
PLAIN_VALUES = st.recursive(PLAIN_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)
VALID_BODIES = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o", "openai/gpt-4o", "a.b:c@d+e"]),
     "messages": st.lists(st.dictionaries(st.text(max_size=5), PLAIN_VALUES, max_size=3), min_size=1, max_size=3)},
    optional={"stream": st.booleans() | st.none(), "max_tokens": st.integers(1, 10**6), "tools": PLAIN_VALUES},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=VALID_BODIES, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_valid_bodies_with_a_plain_model_all_take_the_fast_path(impl, body, ascii_only, indent):
    assert assert_agrees_with_filter(impl, json.dumps(body, ensure_ascii=ascii_only, indent=indent).encode())


# ---------------------------------------------------------------- which names are fast


def _config(gateway=None, **extra):
    raw = {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "k1", "default": True},
            {"model": "groq/gpt-4o", "access_key": "k2"},  # the bare id gpt-4o is now ambiguous
            {"model": "anthropic/claude-x", "access_key": "k3"},
            {"model": "azure_openai/prod", "access_key": "k4", "base_url": "https://x.openai.azure.com"},
            {"model": "local/m", "base_url": "http://127.0.0.1:9/v1"},
            {"model": "openai/gpt-4o-mini", "access_key": "k1"},
            {"model": "echo/e"},
        ],
        "model_aliases": {"fast": {"target": "gpt-4o-mini"}, "claude": {"target": "claude-x"},
                          "safe": {"target": "openai/gpt-4o", "fallbacks": ["groq/gpt-4o"]}},
        "gateway": {"fast_path": True, **(gateway or {})},
        **extra,
    }
    return parse_config(raw, "t.yaml", {})


def test_fast_names_are_literal_and_alias_names_the_client_api_speaks_natively():
    names = {(r.api, r.name): r.decision.provider.slug for r in fast_path.fast_routes(_config())}
    chat = {name: slug for (api, name), slug in names.items() if api is ClientApi.CHAT}
    messages = {name: slug for (api, name), slug in names.items() if api is ClientApi.MESSAGES}
    assert chat == {"openai/gpt-4o": "openai/gpt-4o", "groq/gpt-4o": "groq/gpt-4o", "local/m": "local/m", "m": "local/m",
                    "openai/gpt-4o-mini": "openai/gpt-4o-mini", "gpt-4o-mini": "openai/gpt-4o-mini",
                    "fast": "openai/gpt-4o-mini"}
    assert messages == {"anthropic/claude-x": "anthropic/claude-x", "claude-x": "anthropic/claude-x",
                        "claude": "anthropic/claude-x"}
    # Not fast: an ambiguous bare id, Azure (its own path), echo, a model with fallbacks, and
    # anything that would be translated between API families.


def test_each_fast_name_is_served_by_the_model_the_filter_would_pick():
    config = _config(routing={"engine": "none", "routed_models": ["fast", "auto"]})
    routes = fast_path.fast_routes(config)
    assert routes and "auto" not in {r.name for r in routes}
    for route in routes:
        assert resolve(config, route.name, None) == route.decision
    assert fast_path.fast_routes(_config(gateway={"fast_path": False})) == []


# ---------------------------------------------------------------- one nesting limit for both paths


def _nested(levels: int, where: str) -> bytes:
    """A body whose deepest container is at `levels` (the top-level object is level 1)."""
    if where == "messages":  # top (1), messages (2), a message (3), then arrays
        inner = b"[" * (levels - 3) + b"]" * (levels - 3)
        return b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi", "x": ' + (inner or b"0") + b"}]}"
    inner = b"[" * (levels - 1) + b"]" * (levels - 1)  # top (1), then arrays from level 2
    return b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": ' + inner + b"}"


@pytest.mark.parametrize("where", ["messages", "tools"])
def test_the_filter_and_the_fast_path_share_one_nesting_limit(impl, where):
    from filter.inbound import MAX_JSON_DEPTH

    at_limit, over = _nested(MAX_JSON_DEPTH, where), _nested(MAX_JSON_DEPTH + 1, where)
    assert assert_agrees_with_filter(impl, at_limit)  # fast, and the filter accepts it unchanged
    assert check(impl, over) is None
    refused = filter_view(over)
    assert isinstance(refused, GatewayError) and refused.status == 400
    assert refused.message == f"request body is nested more than {MAX_JSON_DEPTH} levels deep"
    assert MAX_JSON_DEPTH == 254


@pytest.mark.parametrize("levels", [255, 300, 1024, 1025, 5000])
def test_any_depth_over_the_limit_is_the_same_clear_400(levels):
    refused = filter_view(_nested(levels, "tools"))
    assert isinstance(refused, GatewayError) and refused.status == 400
    assert "nested more than 254 levels deep" in refused.message


# ---------------------------------------------------------------- client keys


@settings(max_examples=200, deadline=None)
@given(message=st.binary(max_size=300))
def test_the_lua_sha256_is_sha256(message):
    runtime = luajit21.LuaRuntime(encoding=None)
    runtime.execute(envoy_file("fast_path.lua").read_bytes())
    assert runtime.globals().sha256_hex(message) == hashlib.sha256(message).hexdigest().encode()


@settings(max_examples=300, deadline=None)
@given(salt=st.binary(max_size=80), key=st.binary(max_size=300))
def test_the_native_sha256_is_sha256(native, salt, key):
    assert native_host.sha256_hex(native, salt, key) == hashlib.sha256(salt + key).hexdigest().encode()


def test_envoy_gets_salted_digests_and_names_of_client_keys_never_the_keys():
    config = _config(gateway={"client_keys": ["c1", {"name": "team-a", "key": "secret-of-team-a"}]})
    salt = bytes(range(16))
    metadata = fast_path.client_key_metadata(config, salt)
    assert metadata["client_key_salt"] == salt.hex()
    assert metadata["client_keys"] == [
        {"name": "key-1", "sha256": hashlib.sha256((salt.hex() + "c1").encode()).hexdigest()},
        {"name": "team-a", "sha256": hashlib.sha256((salt.hex() + "secret-of-team-a").encode()).hexdigest()},
    ]
    assert "secret-of-team-a" not in json.dumps(metadata)
    # A new render salts anew; a changed key set changes the version the Lua filter watches.
    assert fast_path.client_key_metadata(config)["client_key_salt"] != salt.hex()
    other = fast_path.client_key_metadata(_config(gateway={"client_keys": ["c2"]}), salt)
    assert other["client_keys_version"] != metadata["client_keys_version"]
    # Without the fast path the filter checks the keys: Envoy gets nothing.
    assert fast_path.client_key_metadata(_config(gateway={"fast_path": False, "client_keys": ["c1"]}), salt) == {}

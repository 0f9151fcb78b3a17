"""Both request parsers, body for body: Envoy's Lua filter (envoy/fast_path.lua, run whole in LuaJIT
— Envoy's Lua runtime — behind a stand-in for the handle Envoy gives it, with the routes the
gateway renders) and the filter's own parser (filter/inbound.py), on generated and damaged
chat-completions and messages bodies.

The property, on every body: when the Lua filter sends a request on by itself, the filter accepts
that body on that path, finds no per-request preferences, would send it to the same provider at
the same path, and the body sent is the one the filter would send (the same JSON, no key given
twice at any level: a provider may read the first of two). When the filter refuses a body, the
Lua filter never sends it on. One nesting limit for both.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from lupa import luajit21

from filter.config import parse_config
from filter.errors import ClientApi, GatewayError
from filter.inbound import MAX_JSON_DEPTH, parse_client_request
from filter.render import fast_path, fast_path_module
from filter.render.bootstrap import envoy_file
from filter.resolve import resolve
from filter.upstream import build_upstream_request
from tests.unit.native import fast_path_host as native_host

CONFIG = parse_config({
    "llm_providers": [
        {"model": "openai/gpt-4o", "access_key": "$OPENAI_API_KEY", "default": True},
        {"model": "openai/gpt-4o-mini", "access_key": "$OPENAI_API_KEY"},
        {"model": "anthropic/claude-sonnet-4-5", "access_key": "$ANTHROPIC_API_KEY"},
    ],
    "model_aliases": {"fast": {"target": "gpt-4o-mini"}, "claude": {"target": "claude-sonnet-4-5"}},
    "gateway": {"fast_path": True},
}, "parity.yaml", {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"})
# As the bootstrap renders them: each fast route preceded by its twin for `"stream": true`.
ROUTES = [twin for r in fast_path.fast_routes(CONFIG)
          for twin in fast_path.with_stream_twin(fast_path.envoy_route(r, "30s", "upstream"), r, guard_in_envoy=True)]
PATHS = {ClientApi.CHAT: "/v1/chat/completions", ClientApi.MESSAGES: "/v1/messages"}
CHAT_MODELS = ["gpt-4o", "openai/gpt-4o", "gpt-4o-mini", "fast"]
MESSAGES_MODELS = ["claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", "claude"]
assert {r["match"]["headers"][0]["string_match"]["exact"] for r in ROUTES} >= {*CHAT_MODELS, *MESSAGES_MODELS}

# What Envoy gives the script: headers, the buffered body, the virtual host's and the matched
# route's metadata (the route matched again after clearRouteCache, by path and the flag header,
# as the rendered fast routes match), dynamic metadata, respond.
STAND_IN = rb"""
function make_handle(path, content_type, body, routes)
  local hs = { [":method"] = "POST", [":path"] = path, ["content-type"] = content_type,
               ["authorization"] = "Bearer client-key" }
  local state = { body = body, forwarded = false, responded = false, metadata = {} }
  local headers = {}
  function headers:get(name) return hs[name] end
  function headers:add(name, value) hs[name] = value end
  function headers:replace(name, value) hs[name] = value end
  function headers:remove(name) hs[name] = nil end
  local buffer = {}
  function buffer:length() return #state.body end
  function buffer:getBytes(i, n) return state.body:sub(i + 1, i + n) end
  function buffer:setBytes(bytes) state.body = bytes; state.forwarded = true end
  local function meta(t) local m = {}; function m:get(k) return t[k] end; return m end
  local matched = {}
  local handle = {}
  function handle:headers() return headers end
  function handle:body() return buffer end
  function handle:clearRouteCache() -- Envoy's match: the first route whose path and headers all match
    matched = {}
    for _, route in ipairs(routes) do
      local ok = hs[":path"] == route.path
      for name, value in pairs(route.headers) do ok = ok and hs[name] == value end
      if ok then matched = route.metadata; state.route = route.name; return end
    end
  end
  function handle:timestamp() return 1700000000000 end
  function handle:metadata() return meta(matched) end
  function handle:virtualHost() return { metadata = function() return meta({}) end } end
  local dynamic = {}
  function dynamic:set(ns, k, v) state.metadata[k] = v end
  function handle:streamInfo() return { dynamicMetadata = function() return dynamic end } end
  function handle:respond() state.responded = true end
  return handle, state, hs
end

function run(path, content_type, body, routes)
  local handle, state, hs = make_handle(path, content_type, body, routes)
  envoy_on_request(handle)
  return state.forwarded, state.body, hs[":path"], state.metadata["model"], state.responded, state.route
end
"""


def _lua_value(runtime, value):
    """A route metadata value as Envoy's Lua filter hands it over: strings as bytes, maps and
    lists as tables (lists from 1)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):
        return runtime.table_from({k.encode(): _lua_value(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from({i: _lua_value(runtime, v) for i, v in enumerate(value, 1)})
    return value


def _lua():
    runtime = luajit21.LuaRuntime(encoding=None)
    runtime.execute(envoy_file("fast_path.lua").read_bytes())
    runtime.execute(STAND_IN)
    routes = runtime.table()
    for i, route in enumerate(ROUTES, 1):
        metadata = route["metadata"]["filter_metadata"][fast_path.LUA_FILTER]
        routes[i] = runtime.table_from({
            b"name": route["name"].encode(),
            b"path": route["match"]["path"].encode(),
            b"headers": runtime.table_from({h["name"].encode(): h["string_match"]["exact"].encode()
                                            for h in route["match"]["headers"]}),
            b"metadata": _lua_value(runtime, metadata),
        })
    run = runtime.globals().run
    return lambda api, body, content_type=b"application/json": run(PATHS[api].encode(), content_type, body, routes)


def _native(host):
    """The module behind the host stand-in, given the same routes with its per-route configuration
    (as `switchyard up` renders them); each body arrives in chunks of a size it picks from its
    length (one piece for a fifth of them), so the module reads bodies Envoy buffered, and a third
    of them are followed by trailers."""
    assert host.set_virtual_host(fast_path_module.virtual_host_text({"max_request_bytes": 1 << 24}).encode())
    for route in ROUTES:
        rendered = fast_path_module.with_route_config(route)
        matches = route["match"]["headers"]
        assert host.add_route(route["name"].encode(), route["match"]["path"].encode(),
                              native_host.strings([h["name"] for h in matches]),
                              native_host.strings([h["string_match"]["exact"] for h in matches]), len(matches),
                              rendered["typed_per_filter_config"][fast_path_module.FILTER_NAME]["filter_config"]["value"].encode())

    def run(api, body, content_type=b"application/json"):
        headers = {":method": "POST", ":path": PATHS[api], "content-type": content_type.decode(),
                   "authorization": "Bearer client-key"}
        out = native_host.request(host, headers, body, chunk=(len(body) % 5) * 7, trailers=len(body) % 3 == 1)
        return (out.route.startswith(b"fast:"), out.body, out.path, out.model or None, out.status != 0, out.route)
    return run


@pytest.fixture(scope="module", params=["lua", "native"])
def impl(request, tmp_path_factory):
    """The fast path's check as Envoy runs it: the Lua (`switchyard render`) or the native module
    (`switchyard up`). Each returns (sent on by a fast route, the body sent, its :path, the model
    metadata, answered by itself, the route)."""
    if request.param == "lua":
        yield _lua()
        return
    host = native_host.build(tmp_path_factory.mktemp("fast_path"))
    yield _native(host)
    host.reset_routes()


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key given twice in a body sent on: {keys}"
    return dict(pairs)


def verdicts(impl, api: ClientApi, body: bytes) -> bool:
    """Both parsers on one body; asserts they agree. True when the Lua filter sent it on."""
    forwarded, sent, upstream_path, served, responded, route = impl(api, body)
    assert not responded  # no client keys configured: the script never answers by itself
    try:
        request = parse_client_request(api, body)
    except GatewayError as refused:
        assert not forwarded, f"the fast path sent on a body the filter refuses ({refused.message}): {body!r}"
        return False
    if not forwarded:
        return False
    assert request.preferences is None, body
    decision = resolve(CONFIG, request.model, None)
    assert served.decode() == decision.provider.slug
    assert route.decode().endswith(":stream") == request.stream  # a stream's answer goes through the filter
    upstream = build_upstream_request(request, decision.provider, {}, "")
    assert upstream_path.decode() == upstream.path
    # The same JSON the filter sends, and read the same way by any parser (no key twice).
    assert json.loads(sent, object_pairs_hook=_unique_keys) == orjson.loads(upstream.body), body
    return True


# ----------------------------------------------------------------- generated bodies


TEXT = st.text(max_size=12) | st.sampled_from(["", "héllo", "🚀", "\u2028", "\x00", "\x7f", '"', "\\", "\ud7ff",
                                               "\ue000", "\uffff", "a\nb", "\t"])
# Numbers of 15 characters or fewer the fast path takes as written; longer ones go to the filter.
PLAIN_NUMBERS = st.integers(-(10**12), 10**12) | st.sampled_from([0.5, -2.25, 1e-3, 1e21, 3.14159, 1.0])
ODD_NUMBERS = (st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False)
               | st.sampled_from([-0.0, 1e-7, 2**53, 2**53 + 1, 2**63, 10**15 - 1, 10**15]))
LEAVES = st.none() | st.booleans() | PLAIN_NUMBERS | TEXT
ODD_LEAVES = LEAVES | ODD_NUMBERS
KEYS = TEXT | st.sampled_from(["model", "messages", "stream", "metadata", "role", "content"])
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=15)
ODD_VALUES = st.recursive(ODD_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                          max_leaves=15)
# Every spelling of the per-request preference keys, and near misses that are plain metadata.
PREFERENCE_KEYS = ["archgw_preference_config", "plano_preference_config", "ARCHGW_PREFERENCE_CONFIG",
                   "archgw_preference_config ", "archgw-preference-config", "x_preference_config", "user_id", "user"]
METADATA = st.dictionaries(st.sampled_from(PREFERENCE_KEYS) | KEYS, VALUES, max_size=3) | ODD_VALUES
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"])},
                                optional={"content": TEXT | VALUES, "name": VALUES})
ODD_MESSAGE = st.fixed_dictionaries({}, optional={"role": ODD_LEAVES, "content": ODD_VALUES})


def body_fields(api: ClientApi):
    """Half of them bodies a client would send, the others with one field changed to anything."""
    fast = st.sampled_from(CHAT_MODELS if api is ClientApi.CHAT else MESSAGES_MODELS)
    valid = st.fixed_dictionaries(
        {"model": fast, "messages": st.lists(MESSAGE, min_size=1, max_size=3)},
        optional={"stream": st.booleans() | st.none(), "stream_options": VALUES, "max_tokens": st.integers(1, 10**6),
                  "temperature": PLAIN_NUMBERS, "metadata": METADATA, "tools": VALUES, "system": VALUES},
    )
    odd = {
        "model": st.sampled_from(["nope", "", " gpt-4o", "GPT-4O", "claude/", "gpt-4o\n"]) | ODD_LEAVES,
        "messages": st.lists(ODD_MESSAGE, max_size=2) | ODD_VALUES,
        "stream": ODD_LEAVES, "stream_options": ODD_VALUES, "max_tokens": ODD_LEAVES, "temperature": ODD_NUMBERS,
        "metadata": METADATA, "routing_preferences": ODD_VALUES, "tools": ODD_VALUES, "system": ODD_VALUES,
    }

    @st.composite
    def bodies(draw):
        body = draw(valid)
        if draw(st.booleans()):
            field = draw(st.sampled_from(sorted(odd)))
            body[field] = draw(odd[field])
        return body

    return bodies()


def chat_or_messages():
    return st.sampled_from([ClientApi.CHAT, ClientApi.MESSAGES]).flatmap(
        lambda api: st.tuples(st.just(api), body_fields(api)))


def encode(body: dict, how: str) -> bytes:
    if how == "ascii":
        return json.dumps(body).encode()
    if how == "indent":
        return json.dumps(body, ensure_ascii=False, indent=2).encode()
    try:
        return orjson.dumps(body)
    except TypeError:  # an integer past 64 bits: orjson writes none
        return json.dumps(body).encode()


PROFILE = settings(max_examples=600, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROFILE
@given(case=chat_or_messages(), how=st.sampled_from(["ascii", "indent", "orjson"]))
def test_generated_bodies_get_one_verdict_from_both_parsers(impl, case, how):
    api, body = case
    event("fast path" if verdicts(impl, api, encode(body, how)) else "filter")


@PROFILE
@given(case=chat_or_messages(), cuts=st.lists(st.tuples(st.integers(0, 10**4), st.binary(min_size=0, max_size=3)),
                                               min_size=1, max_size=3))
def test_damaged_bodies_get_one_verdict_from_both_parsers(impl, case, cuts):
    api, body = case
    raw = bytearray(json.dumps(body, ensure_ascii=False).encode())
    for at, replacement in cuts:  # bytes replaced, inserted or removed anywhere
        at %= len(raw) + 1
        raw[at:at + len(replacement) % 2 + 1] = replacement
    event("fast path" if verdicts(impl, api, bytes(raw)) else "filter")


# Text spliced into a valid body: what encoders and hand-written clients send that the generated
# bodies rarely reach (escapes, keys given twice, number spellings, odd stream values).
SPLICES = [
    b'"\\ud83d\\ude80"', b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\\u0000"', b'"\\/"', b'"\\x41"',
    b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"', b'"\xc0\xaf"', b'"\xe0\x80\xaf"', b'"\xf0\x9f\x9a"', b'"\xef\xbf\xbf"',
    b"1", b"-0", b"-0.0", b"1.5e300", b"1e309", b"1E+2", b"1e-400", b"0.1e1", b"123456789012345", b"1234567890123456",
    b"01", b"1.", b".5", b"+1", b"-", b"NaN", b"Infinity", b"true", b"null", b"tru", b"[]", b"{}", b"[1,]", b"{,}",
    b'{"a": 1, "a": 2}', b'{"a": 1, "\\u0061": 2}', b'[{"role": "user", "role": "system"}]',
    b'{"archgw_preference_config": []}', b'{"archgw_\\u0070reference_config": "x"}', b'{"plano_preference_config": 1}',
]
FIELDS = [b'"model"', b'"messages"', b'"stream"', b'"metadata"', b'"mod\\u0065l"', b'"model" ', b'"x"', b'"routing_preferences"']


@st.composite
def spliced(draw):
    api = draw(st.sampled_from([ClientApi.CHAT, ClientApi.MESSAGES]))
    model = draw(st.sampled_from(CHAT_MODELS if api is ClientApi.CHAT else MESSAGES_MODELS))
    parts = [b'"model": "' + model.encode() + b'"', b'"messages": [{"role": "user", "content": "hi"}]']
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["field", "message", "content"]))
        value = draw(st.sampled_from(SPLICES))
        if where == "field":
            parts.insert(draw(st.integers(0, len(parts))), draw(st.sampled_from(FIELDS)) + b": " + value)
        elif where == "message":
            parts.append(b'"messages": [{"role": "user", "content": "hi", "x": ' + value + b"}]")
            del parts[1]
        else:
            parts.append(b'"messages": [{"role": "user", "content": ' + value + b"}]")
            del parts[1]
    separator = draw(st.sampled_from([b", ", b",", b",\n  ", b" ,\t"]))
    return api, b"{" + separator.join(parts) + b"}"


@settings(PROFILE, max_examples=800)
@given(case=spliced())
@example(case=(ClientApi.CHAT, b'{"model": "gpt-4o", "messages": [{"role": "user", "role": "system", "content": "hi"}]}'))
@example(case=(ClientApi.MESSAGES, b'{"model": "claude", "messages": [{"role": "user", "content": "hi"}],'
                                   b' "metadata": {"user_id": "a", "user_id": "b"}}'))
def test_spliced_bodies_get_one_verdict_from_both_parsers(impl, case):
    event("fast path" if verdicts(impl, *case) else "filter")


# ----------------------------------------------------------------- what must take the fast path


@pytest.mark.parametrize("api, body", [
    (ClientApi.CHAT, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                      "stream_options": {"include_usage": True}, "metadata": {"user": "u"}}),
    (ClientApi.CHAT, {"model": "fast", "messages": [{"role": "user", "content": "héllo 🚀"}], "stream": None}),
    (ClientApi.MESSAGES, {"model": "claude", "max_tokens": 64, "system": [{"type": "text", "text": "brief"}],
                          "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                          "metadata": {"user_id": "u"}}),
    (ClientApi.MESSAGES, {"model": "anthropic/claude-sonnet-4-5", "max_tokens": 1,
                          "messages": [{"role": "user", "content": "hi"}], "stream": False}),
])
@pytest.mark.parametrize("how", ["ascii", "indent", "orjson"])
def test_what_the_sdks_send_takes_the_fast_path_on_both_apis(impl, api, body, how):
    assert verdicts(impl, api, encode(body, how))


def test_a_chat_model_on_the_messages_path_and_the_reverse_go_to_the_filter(impl):
    # Translated pairs are the filter's: no fast route matches, the script leaves the body alone.
    for api, model in [(ClientApi.MESSAGES, "gpt-4o"), (ClientApi.CHAT, "claude")]:
        body = orjson.dumps({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        forwarded, sent, *_ = impl(api, body)
        assert not forwarded and sent == body


def test_other_content_types_go_to_the_filter(impl):
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert impl(ClientApi.CHAT, body, b"application/json; charset=utf-8")[0]
    assert not impl(ClientApi.CHAT, body, b"text/plain")[0]


# ----------------------------------------------------------------- one nesting limit


def _nested(levels: int, shape: bytes, model: bytes, where: str) -> bytes:
    """A valid body whose deepest container is at `levels` (the top-level object is level 1)."""
    opening, closing = (b"[", b"]") if shape == b"[" else (b'{"k": ', b"}")
    if where == "message":  # top (1), messages (2), a message (3), then the nested value
        inner = opening * (levels - 3) + b"0" + closing * (levels - 3)
        return b'{"model": "' + model + b'", "messages": [{"role": "user", "content": "hi", "x": ' + inner + b"}]}"
    inner = opening * (levels - 1) + b"0" + closing * (levels - 1)  # top (1), then from level 2
    return b'{"model": "' + model + b'", "messages": [{"role": "user", "content": "hi"}], "tools": ' + inner + b"}"


@settings(PROFILE, max_examples=60)
@given(levels=st.integers(MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH + 3), shape=st.sampled_from([b"[", b"{"]),
       api=st.sampled_from([ClientApi.CHAT, ClientApi.MESSAGES]), where=st.sampled_from(["message", "tools"]))
@example(levels=MAX_JSON_DEPTH, shape=b"{", api=ClientApi.MESSAGES, where="message")
@example(levels=MAX_JSON_DEPTH + 1, shape=b"{", api=ClientApi.MESSAGES, where="message")
@example(levels=MAX_JSON_DEPTH, shape=b"[", api=ClientApi.CHAT, where="tools")
@example(levels=MAX_JSON_DEPTH + 1, shape=b"[", api=ClientApi.CHAT, where="tools")
def test_both_parsers_take_the_same_depth_and_no_more(impl, levels, shape, api, where):
    model = b"gpt-4o" if api is ClientApi.CHAT else b"claude"
    body = _nested(levels, shape, model, where)
    assert verdicts(impl, api, body) == (levels <= MAX_JSON_DEPTH)
    if levels > MAX_JSON_DEPTH:
        with pytest.raises(GatewayError, match=f"nested more than {MAX_JSON_DEPTH} levels deep"):
            parse_client_request(api, body)


# ----------------------------------------------------------------- keys given twice, at any depth


def _with_message(fields: bytes) -> bytes:
    return b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi", ' + fields + b"}]}"


@pytest.mark.parametrize("fields", [
    b'"role": "system"',  # role given twice: the filter sends "system", a provider may read "user"
    b'"x": {"a": 1, "a": 2}',
    b'"x": {"a": 1, "\\u0061": 2}',
    b'"x": {"\\u00e9": 1, "\\u00E9": 2}',
    b'"x": {"\xc3\xa9": 1, "\\u00e9": 2}',  # the same key, written and escaped
    b'"x": {"\\n": 1, "\\u000a": 2}',
    b'"x": {"/": 1, "\\/": 2}',
    b'"x": [{"k": 1}, {"k": 2, "k": 3}]',
])
def test_a_key_given_twice_at_any_depth_goes_to_the_filter(impl, fields):
    body = _with_message(fields)
    forwarded, sent, *_ = impl(ClientApi.CHAT, body)
    assert not forwarded and sent == body
    assert not isinstance(parse_client_request(ClientApi.CHAT, body), GatewayError)  # the filter serves it


@pytest.mark.parametrize("fields", [
    b'"x": {"\\u00e9": 1, "\\u00e8": 2}',  # what json.dumps writes for non-ASCII keys
    b'"x": {"\xc3\xa9": 1, "\xc3\xa8": 2}',
    b'"x": {"\\n": 1, "\\t": 2, "\\"": 3, "\\\\": 4}',
    b'"x": [{"k": 1}, {"k": 2}]',
])
def test_distinct_keys_however_written_take_the_fast_path(impl, fields):
    assert verdicts(impl, ClientApi.CHAT, _with_message(fields))

"""The usage module (envoy/switchyard_usage.c): under `switchyard up` it reads every answer's token
counts in place of the bootstrap's token-scan Lua and json_to_metadata, and must read what they
read. Its C is driven here through a stand-in for Envoy's side of the ABI
(tests/unit/native/usage_host.c) and checked against a reference of those two filters' rules:
json_to_metadata's on a strictly parsed JSON answer, the Lua's pattern on an event stream, cut
into chunks and pieces at random places. Through the real Envoy, the counts' metrics are checked
end to end (tests/e2e/test_fast_path.py, test_observability.py, test_anthropic.py)."""

from __future__ import annotations

import ctypes
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from filter.config import parse_config
from filter.render import fast_path, usage
from filter.render.bootstrap import fast_routes, render_bootstrap

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    clang = shutil.which("clang")
    assert clang, "clang is installed by `make install` (the modules are built with it)"
    library = tmp_path_factory.mktemp("usage") / "libusage_host.so"
    subprocess.run([clang, "-O1", "-g", "-Wall", "-Werror", "-fPIC", "-shared", "-fsanitize=undefined", "-fsanitize-trap=undefined",
                    "-o", str(library), str(ROOT / "envoy/switchyard_usage.c"),
                    str(ROOT / "tests/unit/native/usage_host.c")], check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    lib.answer.restype = ctypes.c_size_t
    size_p = ctypes.POINTER(ctypes.c_size_t)
    lib.answer.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.POINTER(ctypes.c_char_p), size_p, size_p, ctypes.c_size_t, ctypes.c_bool,
                           ctypes.c_char_p, ctypes.c_size_t]
    lib.last_statuses.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_size_t]
    lib.last_statuses.restype = ctypes.c_size_t
    return lib


LIMIT = 1 << 20  # the filter's setting: Envoy's buffer limit


def read(lib, content_type, chunks, *, api="openai", ended=True, rng=None, length=None, settings=str(LIMIT)):
    """What the filter writes for an answer of these chunks: {key: value}, in write order
    (`length`: the answer's content-length header, if any)."""
    rng = rng or random.Random(0)
    count = len(chunks)
    data = (ctypes.c_char_p * max(count, 1))(*chunks)
    sizes = (ctypes.c_size_t * max(count, 1))(*(len(c) for c in chunks))
    cuts = (ctypes.c_size_t * max(2 * count, 2))(*[x for c in chunks for x in sorted(rng.randint(0, len(c)) for _ in "ab")])
    out = ctypes.create_string_buffer(8192)
    size = lib.answer(settings.encode(), content_type.encode() if content_type else None,
                      length.encode() if length is not None else None, api.encode() if api else None,
                      data, sizes, cuts, count, ended, out, len(out))
    if size == ctypes.c_size_t(-1).value:
        raise ValueError(f"settings refused: {settings!r}")
    written = {}
    for line in out.raw[:size].decode().splitlines():
        name, value = line.split("=")
        assert name.startswith("switchyard.usage:")
        written[name.removeprefix("switchyard.usage:")] = float(value)
    return written


# ------------------------------------------------------------------ the reference


def _strict(body: bytes):
    """The answer as json_to_metadata's parser takes it, or None: strict JSON in UTF-8 (no NaN, no
    lone surrogate)."""
    def no_constant(name):
        raise ValueError(name)

    try:
        document = json.loads(body.decode("utf-8"), parse_constant=no_constant)
        json.dumps(document, ensure_ascii=False).encode("utf-8")  # a lone surrogate fails here
    except (ValueError, UnicodeError, RecursionError):
        return None
    return document


def _number(document, *path):
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return float(document) if isinstance(document, (int, float)) and not isinstance(document, bool) else None


# json_to_metadata's rules in the bootstrap's order (envoy/bootstrap.template.yaml), the last present winning.
JSON_RULES = [
    (("usage", "prompt_tokens"), "input_tokens"),
    (("usage", "completion_tokens"), "output_tokens"),
    (("usage", "prompt_tokens_details", "cached_tokens"), "cached_tokens"),
    (("usage", "input_tokens"), "input_tokens"),
    (("usage", "output_tokens"), "output_tokens"),
    (("usage", "cache_read_input_tokens"), "cached_tokens"),
    (("usage", "input_tokens_details", "cached_tokens"), "cached_tokens"),
    (("usage", "cache_creation_input_tokens"), "cache_write_tokens"),
]
STREAM_NAMES = {"prompt_tokens": "input_tokens", "input_tokens": "input_tokens", "completion_tokens": "output_tokens",
                "output_tokens": "output_tokens", "cached_tokens": "cached_tokens",
                "cache_read_input_tokens": "cached_tokens", "cache_creation_input_tokens": "cache_write_tokens"}
LUA_PATTERN = re.compile(rb'"([A-Za-z_]+_tokens)"[ \t\n\v\f\r]*:[ \t\n\v\f\r]*([0-9]+)')


def _with_prompt(counts: dict, api: str | None) -> dict:
    """The token-scan Lua's last step: prompt_tokens is every prompt token."""
    if "input_tokens" in counts:
        extra = counts.get("cached_tokens", 0) + counts.get("cache_write_tokens", 0) if api == "anthropic" else 0
        counts["prompt_tokens"] = counts["input_tokens"] + extra
    return counts


def reference_json(body: bytes, api: str | None = "openai") -> dict:
    document = _strict(body)
    counts = {}
    for path, name in JSON_RULES:
        value = _number(document, *path)
        if value is not None:
            counts[name] = value
    return _with_prompt(counts, api)


def reference_stream(chunks: list[bytes], api: str | None = "openai") -> dict:
    counts, tail = {}, b""
    for chunk in chunks:
        text = tail + chunk
        if b'"usage"' in text:
            for name, digits in LUA_PATTERN.findall(text):
                if name.decode() in STREAM_NAMES:
                    counts[STREAM_NAMES[name.decode()]] = float(int(digits))
        tail = text[-256:]
    return _with_prompt(counts, api)


# ------------------------------------------------------------------ JSON answers

OPENAI = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi \u00e9\U0001F600 \"usage\": 9"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                    "prompt_tokens_details": {"cached_tokens": 4}}}
ANTHROPIC = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
             "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
             "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 100,
                       "cache_creation_input_tokens": 7}}


def _chunks(body: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(0, 5)))) if len(body) > 1 else []
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]


@pytest.mark.parametrize("document, api, expected", [
    (OPENAI, "openai", {"input_tokens": 12, "output_tokens": 5, "cached_tokens": 4, "prompt_tokens": 12}),
    (ANTHROPIC, "anthropic", {"input_tokens": 10, "output_tokens": 3, "cached_tokens": 100, "cache_write_tokens": 7,
                              "prompt_tokens": 117}),
    (ANTHROPIC, "openai", {"input_tokens": 10, "output_tokens": 3, "cached_tokens": 100, "cache_write_tokens": 7,
                           "prompt_tokens": 10}),  # an Anthropic-shaped answer from an OpenAI-compatible provider
])
def test_a_json_answers_counts_are_the_ones_the_metrics_count(module, document, api, expected):
    body = json.dumps(document).encode()
    for seed in range(20):
        rng = random.Random(seed)
        assert read(module, "application/json", _chunks(body, rng), api=api, rng=rng) == expected


@pytest.mark.parametrize("content_type, counted", [
    ("application/json", True), ("application/json; charset=utf-8", True), (" application/json ;x=1", True),
    ("text/plain", False), ("application/jsonx", False), (None, False), ("application/problem+json", False),
])
def test_json_answers_are_read_by_their_content_type_as_json_to_metadata_reads_them(module, content_type, counted):
    body = json.dumps(OPENAI).encode()
    assert bool(read(module, content_type, [body])) is counted


@pytest.mark.parametrize("body", [
    b'{"usage": {"prompt_tokens": 3}} x',           # trailing bytes
    b'{"usage": {"prompt_tokens": 3}',               # cut
    b'{"usage": {"prompt_tokens": 3,}}',             # trailing comma
    b'{"usage": {"prompt_tokens": 03}}',             # leading zero
    b'{"usage": {"prompt_tokens": NaN}}',
    b'{"usage": {"prompt_tokens": 3}, "x": "\xff"}',  # not UTF-8
    b'{"usage": {"prompt_tokens": 3}, "x": "\xed\xa0\x80"}',  # an encoded surrogate
    b'{"usage": {"prompt_tokens": 3}, "x": "\\ud800"}',       # a lone surrogate escape
    b'{"usage": {"prompt_tokens": 3}, "x": "a\tb"}',          # a raw control character
    b"{'usage': {'prompt_tokens': 3}}",
    b'{"usage": {"prompt_tokens": 3}}\x00',
])
def test_an_answer_that_is_not_strict_json_counts_no_tokens(module, body):
    assert reference_json(body) == {}
    assert read(module, "application/json", [body]) == {}


@pytest.mark.parametrize("body, expected", [
    # a duplicate key: the later value wins, the whole usage object when it is the duplicate
    (b'{"usage": {"prompt_tokens": 3, "completion_tokens": 2}, "usage": {"prompt_tokens": 5}}',
     {"input_tokens": 5, "prompt_tokens": 5}),
    (b'{"usage": {"prompt_tokens": 3, "prompt_tokens": null}}', {}),
    # a key spelt with escapes is the same key
    (b'{"usag\\u0065": {"prompt_\\u0074okens": 7}}', {"input_tokens": 7, "prompt_tokens": 7}),
    # input_tokens wins over prompt_tokens whatever their order (the rules' order)
    (b'{"usage": {"input_tokens": 1, "prompt_tokens": 2}}', {"input_tokens": 1, "prompt_tokens": 1}),
    # only the top level's usage, and only numbers
    (b'{"choices": [{"usage": {"prompt_tokens": 9}}], "x": {"usage": {"prompt_tokens": 8}}}', {}),
    (b'{"usage": {"prompt_tokens": "12", "completion_tokens": true}}', {}),
    (b'{"usage": {"prompt_tokens": 1.5e2, "completion_tokens": -0}}',
     {"input_tokens": 150, "prompt_tokens": 150, "output_tokens": 0}),
    (b'[{"usage": {"prompt_tokens": 1}}]', {}),
    (b' \r\n\t{"usage":{"prompt_tokens":4}} \n', {"input_tokens": 4, "prompt_tokens": 4}),
    (b'{"usage": {"prompt_tokens": 4, "x": "\\ud83d\\ude00\xc3\xa9"}}', {"input_tokens": 4, "prompt_tokens": 4}),
])
def test_json_answers_are_read_with_json_to_metadatas_rules(module, body, expected):
    assert reference_json(body) == expected  # the reference says so too
    assert read(module, "application/json", [body]) == expected


def _random_value(rng: random.Random, depth: int):
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([0, 7, 12345, -3, 2.5, 1e3, True, False, None])
    if kind == 1:
        return rng.choice(["", "usage", "\"usage\": {\"prompt_tokens\": 1}", "é\U0001F600\n", "\\", "x" * 40])
    if kind in (2, 3):
        return rng.randint(0, 10**6)
    if kind == 4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = ["prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "cache_read_input_tokens",
            "cache_creation_input_tokens", "cached_tokens", "prompt_tokens_details", "input_tokens_details",
            "usage", "total_tokens", "x" * 40]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def _random_usage(rng: random.Random):
    """Mostly what providers send: counts, details, sometimes something else."""
    if rng.random() < 0.15:
        return _random_value(rng, 1)
    keys = [*(path[1] for path, _ in JSON_RULES), "total_tokens"]
    usage = {}
    for _ in range(rng.randrange(1, 6)):
        key = rng.choice(keys)
        if key.endswith("_details"):
            usage[key] = {"cached_tokens": rng.randint(0, 999)} if rng.random() < 0.8 else _random_value(rng, 2)
        else:
            usage[key] = rng.randint(0, 10**6) if rng.random() < 0.85 else _random_value(rng, 2)
    return usage


def _random_body(rng: random.Random) -> bytes:
    document = ({"id": "x", "choices": _random_value(rng, 1), "usage": _random_usage(rng)} if rng.random() < 0.85
                else _random_value(rng, 0))
    text = json.dumps(document, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]))
    if rng.random() < 0.3:  # a duplicate key, spelt with an escape, or spaces
        text = text.replace('"usage"', rng.choice(['"usag\\u0065"', '"usage" ', '"use"']), 1)
    if rng.random() < 0.2 and text.startswith("{") and len(text) > 2:
        text = text[:-1] + ', "usage": ' + json.dumps(_random_usage(rng)) + "}"
    body = text.encode()
    if rng.random() < 0.25:  # damaged: a byte removed, changed or added
        at = rng.randrange(len(body))
        body = rng.choice([body[:at] + body[at + 1:], body[:at] + bytes([rng.randrange(256)]) + body[at + 1:],
                           body[:at] + bytes([rng.randrange(256)]) + body[at:]])
    return body


def test_random_json_answers_cut_anywhere_are_read_as_the_reference_reads_them(module):
    rng = random.Random(20261201)
    counted = 0
    for _ in range(3000):
        body = _random_body(rng)
        api = rng.choice(["openai", "anthropic", None])
        expected = reference_json(body, api)
        counted += bool(expected)
        assert read(module, "application/json", _chunks(body, rng), api=api, rng=rng) == expected, body
    assert counted > 1500  # most cases count something


def _statuses(lib) -> list[int]:
    out = (ctypes.c_int * 64)()
    return list(out[:lib.last_statuses(out, 64)])


CONTINUE, STOP = 0, 1  # Envoy's Continue; StopIteration (headers), StopIterationAndBuffer (body)


def test_a_json_answer_is_held_until_whole_unless_its_declared_length_fits_and_a_stream_is_not(module):
    """Envoy buffers a held answer within its limit: an answer over it is Envoy's 500 in the
    client's shape (tests/e2e/test_hardening.py), never a cut answer. One that declares a length
    within the limit cannot outgrow it, and goes on as it comes, counted the same."""
    body = json.dumps(OPENAI).encode()
    pieces = [body[:10], body[10:20], body[20:]]
    counted = read(module, "application/json", pieces)
    assert _statuses(module) == [STOP, STOP, STOP, CONTINUE]  # headers, two chunks held, the last lets all go
    read(module, "application/json", [body])
    assert _statuses(module) == [STOP, CONTINUE]
    assert read(module, "application/json", pieces, length=str(len(body))) == counted
    assert _statuses(module) == [CONTINUE] * 4  # declared within the limit: nothing held
    for length in (str(LIMIT + 1), "", "12x", "-1", " 12", "1" * 19):  # over the limit, or not a length
        read(module, "application/json", pieces, length=length)
        assert _statuses(module) == [STOP, STOP, STOP, CONTINUE], length
    read(module, "application/json", pieces, length=str(LIMIT))
    assert _statuses(module) == [CONTINUE] * 4
    events = _events("openai")
    read(module, "text/event-stream", events)
    assert _statuses(module) == [CONTINUE] * (1 + len(events))  # each event goes on as it comes
    read(module, "text/plain", [b"a", b"b"])
    assert _statuses(module) == [CONTINUE] * 3


def test_a_json_answer_that_did_not_end_counts_nothing(module):
    body = json.dumps(OPENAI).encode()
    assert read(module, "application/json", [body], ended=False) == {}


# ------------------------------------------------------------------ event streams


def _events(api: str) -> list[bytes]:
    if api == "anthropic":
        return [b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":25,'
                b'"cache_read_input_tokens":3,"cache_creation_input_tokens":2,"output_tokens":1}}}\n\n',
                b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"\\"usage\\""}}\n\n',
                b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n',
                b'event: message_stop\ndata: {"type":"message_stop"}\n\n']
    return [b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n',
            b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,'
            b'"prompt_tokens_details":{"cached_tokens":2}}}\n\n', b"data: [DONE]\n\n"]


@pytest.mark.parametrize("api, expected", [
    ("openai", {"input_tokens": 9, "output_tokens": 4, "cached_tokens": 2, "prompt_tokens": 9}),
    ("anthropic", {"input_tokens": 25, "cached_tokens": 3, "cache_write_tokens": 2, "output_tokens": 15,
                   "prompt_tokens": 30}),
])
def test_a_streams_counts_are_the_ones_the_metrics_count(module, api, expected):
    events = _events(api)
    assert reference_stream(events, api) == expected
    body = b"".join(events)
    for seed in range(20):  # however the stream is cut into chunks
        rng = random.Random(seed)
        chunks = _chunks(body, rng)
        assert read(module, "text/event-stream; charset=utf-8", chunks, api=api, rng=rng) == reference_stream(chunks, api)


def test_random_streams_are_read_as_the_token_scan_lua_reads_them(module):
    rng = random.Random(7)
    names = [*STREAM_NAMES, "total_tokens", "x_tokens", "Prompt_tokens"]
    for _ in range(1500):
        parts = []
        for _ in range(rng.randrange(1, 8)):
            name = rng.choice(names)
            parts.append(rng.choice([
                f'data: {{"usage":{{"{name}":{rng.randint(0, 99999)}}}}}\n\n',
                f'data: {{"x":"{name}", "{name}" \t: \n {rng.randint(0, 9)}}}\n\n',
                f'"{name}":{rng.randint(0, 9)} "usage"', "data: [DONE]\n\n", " " * rng.randrange(300),
                f'"{name}": -1', f'""{name}": 5']))
        body = "".join(parts).encode()
        chunks = _chunks(body, rng)
        api = rng.choice(["openai", "anthropic"])
        assert read(module, "text/event-stream", chunks, api=api, rng=rng) == reference_stream(chunks, api), chunks


def test_a_stream_cut_or_reset_counts_what_it_said_before(module):
    events = _events("anthropic")[:2]  # the guard ended it, or the client left: no end from the provider
    assert read(module, "text/event-stream", events, api="anthropic", ended=False) == {
        "input_tokens": 25, "cached_tokens": 3, "cache_write_tokens": 2, "output_tokens": 1, "prompt_tokens": 30}


# ------------------------------------------------------------------ where Envoy runs it


def _config(**gateway):
    return parse_config({
        "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 18080}},
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "$K", "default": True},
                          {"model": "anthropic/claude-sonnet-4-5", "access_key": "$K"}],
        "gateway": gateway,
    }, "t.yaml", {"K": "k"})


def _filter_names(bootstrap):
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"] for f in manager["http_filters"]]


@pytest.mark.parametrize("gateway", [{}, {"fast_path": False}])
def test_switchyard_up_reads_token_counts_with_the_module_in_place_of_the_lua_and_json_to_metadata(tmp_path, gateway):
    config = _config(**gateway)
    names = _filter_names(render_bootstrap(config, tmp_path))
    assert usage.FILTER_NAME in names and not set(usage.REPLACED) & set(names)
    # where the token scan was: after ext_proc (it sees the provider's answer, before the filter's changes)
    assert names.index(usage.FILTER_NAME) == names.index(fast_path.EXT_PROC_FILTER) + 1
    for route in fast_routes(config):
        assert fast_path.TOKEN_SCAN_FILTER not in route["typed_per_filter_config"]


def test_switchyard_render_and_usage_metrics_off_keep_the_lua_and_json_to_metadata(tmp_path):
    for bootstrap in (render_bootstrap(_config(), keys_dir=tmp_path), render_bootstrap(_config(usage_metrics=False), tmp_path)):
        names = _filter_names(bootstrap)
        assert usage.FILTER_NAME not in names and set(usage.REPLACED) <= set(names)
    skipped = [r for r in fast_routes(_config(usage_metrics=False)) if fast_path.TOKEN_SCAN_FILTER in r["typed_per_filter_config"]]
    assert skipped  # fast OpenAI JSON routes still skip the scan there


@pytest.mark.parametrize("settings", ["", "0", "-5", "12 ", "abc", "1" * 19])
def test_a_setting_that_is_not_a_buffer_limit_is_refused(module, settings):
    with pytest.raises(ValueError, match="refused"):
        read(module, "application/json", [b"{}"], settings=settings)


def test_the_modules_setting_is_envoys_buffer_limit(tmp_path):
    config = _config(max_request_bytes=2 * 1024 * 1024, max_response_bytes=8 * 1024 * 1024)
    manager = render_bootstrap(config, tmp_path)["static_resources"]["listeners"][0]
    reader = next(f for f in manager["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
                  if f["name"] == usage.FILTER_NAME)
    assert reader["typed_config"]["filter_config"]["value"] == str(manager["per_connection_buffer_limit_bytes"])
    assert manager["per_connection_buffer_limit_bytes"] == 8 * 1024 * 1024


def test_a_missing_module_says_how_to_build_it(tmp_path):
    with pytest.raises(usage.dynamic_modules.ModuleMissing, match="make install.*switchyard_usage.c"):
        usage.usage_filter(tmp_path / usage.MODULE_FILE, 1024)

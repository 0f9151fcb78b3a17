"""Streams event by event, as the client reads them off the wire: every kind of provider stream
(text, reasoning, tool calls in fragments, refusals, length and filter stops, error chunks and
events, streams cut short, odd and malformed events) through each stream translator, with the
exact (event, data) sequence the client receives. Fixed expected values; the gateway's random ids
are shown as <kind#n> (first seen first) and clock fields as 0, nothing else is left out."""

import json
import re
from pathlib import Path

import orjson
import pytest

from filter.translation import (
    ChatStreamToMessages,
    ChatStreamToResponses,
    MessagesStreamToChat,
    MessagesStreamToResponses,
    ToolNames,
)

ECHO = {"instructions": None, "tools": [], "tool_choice": "auto", "metadata": {}}
_RANDOM_ID = re.compile(r"\b(resp|msg|rs|fc|ctc|call|chatcmpl|toolu)[_-][0-9a-f]{24,}\b")
_CLOCK = ("created", "created_at", "completed_at")


def _normalise(value, ids):
    if isinstance(value, dict):
        return {k: 0 if k in _CLOCK and isinstance(v, int) else _normalise(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, ids) for v in value]
    if isinstance(value, str):
        return _RANDOM_ID.sub(lambda m: ids.setdefault(m.group(0), f"<{m.group(1)}#{len(ids) + 1}>"), value)
    return value


def read_sse(raw: bytes):
    """(event name or None, parsed data or the raw text) per SSE event, read independently."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n") or not text
    events = []
    for block in text.split("\n\n")[:-1]:
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            else:
                raise AssertionError(f"unexpected line {line!r}")
        joined = "\n".join(data)
        events.append([name, joined if joined == "[DONE]" else orjson.loads(joined)])
    return events


def run_plain(make, raw: bytes):
    """Feed the stream one byte at a time (the worst chunking), then finish: normalised events."""
    translator = make()
    out = b"".join(translator.feed(raw[i:i + 1]) for i in range(len(raw))) + translator.finish()
    return _normalise(read_sse(out), {})


# The client's tools: a custom (freeform) one and a namespaced one, named upstream as the request
# translation names them.
# The cases: the provider's raw stream and the exact (event, data) list the client must read, one
# JSON file per translator pair (tests/data/stream-translations/; raw streams as text).
CASES = Path(__file__).parents[1] / "data" / "stream-translations"


def recorded(name: str, *fields: str) -> list:
    return [pytest.param(case["raw"].encode(), *(case[f] for f in fields), case["events"], id=case["id"])
            for case in json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))]


TOOLS = ToolNames(frozenset({"patch"}), (("crm__lookup", "crm", "lookup"),))


def run_to_responses(cls, raw: bytes):
    return run_plain(lambda: cls(model="gpt-x", echo=dict(ECHO), tools=TOOLS), raw)


CHAT_TO_RESPONSES = recorded('chat_to_responses')

ANTHROPIC_TO_RESPONSES = recorded('anthropic_to_responses')

ANTHROPIC_TO_CHAT = recorded('anthropic_to_chat', 'include_usage')

CHAT_TO_ANTHROPIC = recorded('chat_to_anthropic')


@pytest.mark.parametrize("raw, events", CHAT_TO_RESPONSES)
def test_a_chat_stream_as_a_responses_client_reads_it(raw, events):
    assert run_to_responses(ChatStreamToResponses, raw) == events


@pytest.mark.parametrize("raw, events", ANTHROPIC_TO_RESPONSES)
def test_an_anthropic_stream_as_a_responses_client_reads_it(raw, events):
    assert run_to_responses(MessagesStreamToResponses, raw) == events


@pytest.mark.parametrize("raw, include_usage, events", ANTHROPIC_TO_CHAT)
def test_an_anthropic_stream_as_a_chat_client_reads_it(raw, include_usage, events):
    assert run_plain(lambda: MessagesStreamToChat(model="gpt-x", include_usage=include_usage), raw) == events


@pytest.mark.parametrize("raw, events", CHAT_TO_ANTHROPIC)
def test_a_chat_stream_as_an_anthropic_client_reads_it(raw, events):
    assert run_plain(lambda: ChatStreamToMessages(model="claude-x"), raw) == events


CUT = "the gateway ended the stream: listener timeout"


@pytest.mark.parametrize("make, raw", [
    (lambda: MessagesStreamToChat(model="gpt-x", include_usage=True),
     b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_c","usage":{"input_tokens":2}}}\n\n'
     b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
     b'"content_block":{"type":"text","text":"part"}}\n\nevent: content_block_delta\ndata: {"type":"cont'),
    (lambda: ChatStreamToMessages(model="claude-x"),
     b'data: {"id":"chatcmpl-c","choices":[{"index":0,"delta":{"content":"part"}}]}\n\ndata: {"id":"chatc'),
    (lambda: ChatStreamToResponses(model="gpt-x", echo=dict(ECHO), tools=TOOLS),
     b'data: {"id":"chatcmpl-c","choices":[{"index":0,"delta":{"content":"part"}}]}\n\n'),
])
def test_a_stream_the_gateway_cuts_ends_with_the_reason_and_its_terminal_event_once(make, raw):
    translator = make()
    translator.feed(raw)
    cut = read_sse(translator.cut(CUT))
    assert translator.cut(CUT) == b"" and translator.finish() == b""
    if isinstance(translator, MessagesStreamToChat):
        assert cut == [[None, {"error": {"message": CUT, "type": "server_error", "param": None, "code": None}}],
                       [None, "[DONE]"]]
    elif isinstance(translator, ChatStreamToMessages):
        assert cut == [["content_block_stop", {"type": "content_block_stop", "index": 0}],
                       ["error", {"type": "error", "error": {"type": "api_error", "message": CUT}}],
                       ["message_stop", {"type": "message_stop"}]]
    else:
        assert cut[-1][0] == "response.failed"
        assert cut[-1][1]["response"]["error"] == {"code": "server_error", "message": CUT}
        assert cut[-1][1]["response"]["output"][0]["content"][0]["text"] == "part"

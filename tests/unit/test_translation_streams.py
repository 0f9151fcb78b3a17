"""Streaming translation: Anthropic SSE <-> OpenAI chat.completion.chunk SSE."""

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from anthropic._models import construct_type
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from filter.translation import ChatStreamToMessages, MessagesStreamToChat, Usage
from filter.translation.sse import SSEParser


def sse(event, data):
    return f"event: {event}\ndata: {orjson.dumps(data).decode()}\n\n".encode()


def chat_sse(data):
    return b"data: " + orjson.dumps(data) + b"\n\n"


def parse(raw: bytes):
    """Independent reading of the translator's output: [(event or None, data str)]."""
    text = raw.decode("utf-8")  # strict: a broken multi-byte character fails here
    assert text.endswith("\n\n") or not text
    out = []
    for block in text.split("\n\n")[:-1]:
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            else:
                raise AssertionError(f"unexpected line {line!r}")
        out.append((event, "\n".join(data)))
    return out


def run(translator, raw: bytes, cuts=()):
    """Feed ``raw`` split at ``cuts`` (byte offsets), then finish."""
    out, last = [], 0
    for cut in list(cuts) + [len(raw)]:
        out.append(translator.feed(raw[last:cut]))
        last = cut
    out.append(translator.finish())
    return b"".join(out)


def without_created(events):
    result = []
    for event, data in events:
        if data != "[DONE]":
            obj = orjson.loads(data)
            obj.pop("created", None)
            data = obj
        result.append((event, data))
    return result


# ---------------------------------------------------------------- Anthropic upstream -> OpenAI client

ANTHROPIC_STREAM = b"".join(
    [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 2, "output_tokens": 1},
                },
            },
        ),
        sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm, "}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "weather."}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        b'event: ping\ndata: {"type": "ping"}\n\n',
        sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Héllo 😀 "}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "wörld"}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        sse(
            "content_block_start",
            {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        ),
        sse("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 2}),
        sse(
            "content_block_start",
            {"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}},
        ),
        sse("content_block_delta", {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 3}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 42}}),
        sse("message_stop", {"type": "message_stop"}),
    ]
)


def chat_chunks(raw):
    events = parse(raw)
    assert all(event is None for event, _ in events)
    return [data for _, data in events]


def accumulate_chat(raw):
    """Run the OpenAI SDK's own stream accumulator over the output."""
    data = chat_chunks(raw)
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    state = ChatCompletionStreamState()
    chunks = [orjson.loads(d) for d in data[:-1]]
    for chunk in chunks:
        list(state.handle_chunk(ChatCompletionChunk.model_validate(chunk)))
    return state.current_completion_snapshot, chunks


def test_anthropic_stream_to_chat_chunks():
    translator = MessagesStreamToChat(model="my-alias")
    raw = run(translator, ANTHROPIC_STREAM)
    completion, chunks = accumulate_chat(raw)
    choice = completion.choices[0]
    assert choice.message.content == "Héllo 😀 wörld"
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("toolu_1", "get_weather", '{"city": "Paris"}'),
        ("toolu_2", "now", "{}"),
    ]
    assert completion.model == "my-alias"
    assert {c["id"] for c in chunks} == {"chatcmpl-msg_1"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
    assert reasoning == "Hmm, weather."
    # usage arrives last, in a chunk with no choices
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 17,
        "completion_tokens": 42,
        "total_tokens": 59,
        "prompt_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 2},
    }
    assert translator.usage == Usage(input_tokens=17, output_tokens=42, cached_tokens=5)
    # exactly one finish_reason
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]) == 1


def test_anthropic_stream_split_at_every_byte_gives_same_output():
    whole = without_created(parse(run(MessagesStreamToChat(model="m"), ANTHROPIC_STREAM)))
    for cut in range(1, len(ANTHROPIC_STREAM)):
        assert without_created(parse(run(MessagesStreamToChat(model="m"), ANTHROPIC_STREAM, [cut]))) == whole


def test_anthropic_stream_byte_by_byte_with_crlf_and_comments():
    raw = ANTHROPIC_STREAM.replace(b"\n", b"\r\n").replace(b"event: ping", b": keep-alive\r\nevent: ping")
    translator = MessagesStreamToChat(model="m")
    out = run(translator, raw, range(1, len(raw)))
    assert without_created(parse(out)) == without_created(parse(run(MessagesStreamToChat(model="m"), ANTHROPIC_STREAM)))


def test_multibyte_character_split_across_chunks_arrives_intact():
    raw = ANTHROPIC_STREAM
    cut = raw.index("😀".encode()) + 2  # in the middle of the emoji's four bytes
    translator = MessagesStreamToChat(model="m")
    first = translator.feed(raw[:cut])
    assert "😀".encode() not in first
    rest = translator.feed(raw[cut:]) + translator.finish()
    completion, _ = accumulate_chat(first + rest)
    assert "😀" in completion.choices[0].message.content


def test_include_usage_false_sends_no_usage_chunk():
    chunks = chat_chunks(run(MessagesStreamToChat(model="m", include_usage=False), ANTHROPIC_STREAM))
    assert all("usage" not in orjson.loads(c) for c in chunks[:-1])
    assert chunks[-1] == "[DONE]"


def test_anthropic_stop_reasons_in_stream():
    for stop_reason, finish in [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")]:
        raw = (
            sse("message_start", {"type": "message_start", "message": {"id": "msg_2", "usage": {"input_tokens": 1, "output_tokens": 0}}})
            + sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 3}})
            + sse("message_stop", {"type": "message_stop"})
        )
        completion, _ = accumulate_chat(run(MessagesStreamToChat(model="m"), raw))
        assert completion.choices[0].finish_reason == finish


def test_anthropic_midstream_error_ends_with_openai_error():
    cut = ANTHROPIC_STREAM.index(b"event: content_block_stop")
    raw = ANTHROPIC_STREAM[:cut] + sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    translator = MessagesStreamToChat(model="m")
    out = translator.feed(raw)
    data = chat_chunks(out)
    assert orjson.loads(data[-1]) == {"error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}}
    assert "[DONE]" not in data
    assert translator.feed(sse("message_stop", {"type": "message_stop"})) == b""
    assert translator.finish() == b""


def test_anthropic_truncated_stream_gets_error_then_single_done():
    cut = ANTHROPIC_STREAM.index(b"event: content_block_stop")
    translator = MessagesStreamToChat(model="m")
    data = chat_chunks(run(translator, ANTHROPIC_STREAM[:cut]))
    assert "error" in orjson.loads(data[-2])
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    assert translator.finish() == b""


def test_anthropic_stream_missing_message_stop_completes_normally():
    cut = ANTHROPIC_STREAM.index(b"event: message_stop")
    completion, chunks = accumulate_chat(run(MessagesStreamToChat(model="m"), ANTHROPIC_STREAM[:cut]))
    assert completion.choices[0].finish_reason == "tool_calls"
    assert not any("error" in c for c in chunks)


def test_anthropic_stream_without_id_gets_one_generated_id():
    raw = ANTHROPIC_STREAM.replace(b'"id":"msg_1",', b"")
    chunks = [orjson.loads(d) for d in chat_chunks(run(MessagesStreamToChat(model="m"), raw))[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")


def test_anthropic_empty_upstream_stream():
    translator = MessagesStreamToChat(model="m")
    data = chat_chunks(translator.feed(b"") + translator.finish())
    assert "error" in orjson.loads(data[0]) and data[-1] == "[DONE]" and len(data) == 2


# ---------------------------------------------------------------- OpenAI upstream -> Anthropic client


def chunk(delta=None, finish=None, **extra):
    body = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}
    body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    body.update(extra)
    return chat_sse(body)


OPENAI_STREAM = b"".join(
    [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Hmm, "}),
        chunk({"reasoning_content": "weather."}),
        chunk({"content": "Héllo 😀 "}),
        chunk({"content": "wörld"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        chunk(
            None,
            usage={
                "prompt_tokens": 20,
                "completion_tokens": 7,
                "total_tokens": 27,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
        ),
        b"data: [DONE]\n\n",
    ]
)


def anthropic_events(raw):
    events = parse(raw)
    result = []
    for event, data in events:
        obj = orjson.loads(data)
        assert obj["type"] == event
        result.append(obj)
    return result


def accumulate_messages(raw):
    """Run the Anthropic SDK's own stream accumulator over the output."""
    events = anthropic_events(raw)
    names = [e["type"] for e in events]
    assert names[0] == "message_start"
    assert names[-1] == "message_stop" and names.count("message_stop") == 1
    snapshot, bufs = None, {}
    for event in events:
        model = construct_type(type_=RawMessageStreamEvent, value=event)
        snapshot = accumulate_event(event=model, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot, events


def check_block_structure(events):
    open_index = None
    seen = []
    for e in events:
        if e["type"] == "content_block_start":
            assert open_index is None
            open_index = e["index"]
            seen.append(open_index)
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_index
            open_index = None
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_index
    assert open_index is None
    assert seen == list(range(len(seen)))


def test_openai_stream_to_anthropic_events():
    translator = ChatStreamToMessages(model="my-alias")
    snapshot, events = accumulate_messages(run(translator, OPENAI_STREAM))
    check_block_structure(events)
    assert snapshot.id == "msg_9"
    assert snapshot.model == "my-alias"
    assert [b.type for b in snapshot.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert snapshot.content[0].thinking == "Hmm, weather."
    assert snapshot.content[1].text == "Héllo 😀 wörld"
    assert (snapshot.content[2].id, snapshot.content[2].name, snapshot.content[2].input) == ("call_1", "get_weather", {"city": "Paris"})
    assert (snapshot.content[3].id, snapshot.content[3].name, snapshot.content[3].input) == ("call_2", "now", {})
    assert snapshot.stop_reason == "tool_use"
    delta = [e for e in events if e["type"] == "message_delta"]
    assert len(delta) == 1
    assert delta[0]["usage"] == {
        "input_tokens": 16,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
        "output_tokens_details": {"thinking_tokens": 3},
    }
    assert translator.usage == Usage(input_tokens=20, output_tokens=7, cached_tokens=4)
    partials = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"]
    assert partials == ['{"city": ', '"Paris"}', "{}"]


def test_openai_stream_split_at_every_byte_gives_same_output():
    whole = run(ChatStreamToMessages(model="m"), OPENAI_STREAM)
    for cut in range(1, len(OPENAI_STREAM)):
        assert run(ChatStreamToMessages(model="m"), OPENAI_STREAM, [cut]) == whole


def test_openai_stream_byte_by_byte_crlf_and_comments():
    raw = b": OPENROUTER PROCESSING\r\n\r\n" + OPENAI_STREAM.replace(b"\n", b"\r\n")
    out = run(ChatStreamToMessages(model="m"), raw, range(1, len(raw)))
    assert out == run(ChatStreamToMessages(model="m"), OPENAI_STREAM)


def test_openai_stream_bare_cr_line_endings():
    raw = OPENAI_STREAM.replace(b"\n", b"\r")
    assert run(ChatStreamToMessages(model="m"), raw, [7, 300, 301]) == run(ChatStreamToMessages(model="m"), OPENAI_STREAM)


def test_openai_text_only_stream_end_turn_and_length():
    for finish, stop_reason in [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")]:
        raw = chunk({"role": "assistant", "content": "Hi"}) + chunk({}, finish) + b"data: [DONE]\n\n"
        snapshot, events = accumulate_messages(run(ChatStreamToMessages(model="m"), raw))
        assert snapshot.stop_reason == stop_reason
        assert [b.text for b in snapshot.content] == ["Hi"]


def test_openai_reused_index_with_new_id_starts_a_new_tool_block():
    raw = (
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x":1}'}}]})
        + chunk({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": '{"y":2}'}}]})
        + chunk({}, "stop")
        + b"data: [DONE]\n\n"
    )
    snapshot, events = accumulate_messages(run(ChatStreamToMessages(model="m"), raw))
    check_block_structure(events)
    assert [(b.id, b.name, b.input) for b in snapshot.content] == [("a", "f", {"x": 1}), ("b", "g", {"y": 2})]
    assert snapshot.stop_reason == "tool_use"  # "stop" after tool calls


def test_openai_stream_without_done_but_finished_completes_normally():
    raw = chunk({"content": "Hi"}) + chunk({}, "stop")
    snapshot, events = accumulate_messages(run(ChatStreamToMessages(model="m"), raw))
    assert snapshot.stop_reason == "end_turn"
    assert not any(e["type"] == "error" for e in events)


def test_openai_truncated_stream_gets_error_and_single_message_stop():
    cut = OPENAI_STREAM.index(b'data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function"')
    translator = ChatStreamToMessages(model="m")
    events = anthropic_events(run(translator, OPENAI_STREAM[:cut]))
    names = [e["type"] for e in events]
    assert names[-2:] == ["error", "message_stop"] and names.count("message_stop") == 1
    assert events[-2]["error"]["type"] == "api_error"
    check_block_structure(events)
    assert translator.finish() == b""


def test_openai_midstream_error_ends_with_anthropic_error_event():
    raw = chunk({"content": "Hi"}) + chat_sse({"error": {"message": "rate limited", "type": "rate_limit_error", "code": 429}})
    translator = ChatStreamToMessages(model="m")
    events = anthropic_events(translator.feed(raw))
    assert events[-1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}}
    assert "message_stop" not in [e["type"] for e in events]
    check_block_structure(events)
    assert translator.feed(b"data: [DONE]\n\n") == b""
    assert translator.finish() == b""


def test_openai_error_before_any_chunk():
    translator = ChatStreamToMessages(model="m")
    events = anthropic_events(translator.feed(chat_sse({"error": {"message": "boom", "type": "server_error"}})) + translator.finish())
    assert [e["type"] for e in events] == ["message_start", "error"]
    assert events[1]["error"] == {"type": "api_error", "message": "boom"}


def test_openai_stream_without_id_gets_msg_id_and_reasoning_alias():
    raw = chat_sse({"choices": [{"index": 0, "delta": {"reasoning": "r"}}]}) + chat_sse({"choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": "stop"}]})
    snapshot, _ = accumulate_messages(run(ChatStreamToMessages(model="m"), raw + b"data: [DONE]\n\n"))
    assert snapshot.id.startswith("msg_")
    assert [b.type for b in snapshot.content] == ["thinking", "text"]


def test_openai_usage_in_every_chunk_keeps_the_last():
    raw = (
        chunk({"content": "a"}, usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6})
        + chunk({}, "stop", usage={"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14})
        + b"data: [DONE]\n\n"
    )
    translator = ChatStreamToMessages(model="m")
    run(translator, raw)
    assert translator.usage == Usage(5, 9, 0)


def test_round_trip_chat_to_messages_to_chat_stream():
    """OpenAI stream -> Anthropic -> OpenAI keeps text, tool calls and usage."""
    anthropic_raw = run(ChatStreamToMessages(model="m"), OPENAI_STREAM)
    completion, chunks = accumulate_chat(run(MessagesStreamToChat(model="m"), anthropic_raw))
    assert completion.choices[0].message.content == "Héllo 😀 wörld"
    assert [c.function.arguments for c in completion.choices[0].message.tool_calls] == ['{"city": "Paris"}', "{}"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 20
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


# ---------------------------------------------------------------- SSE parser


def test_sse_parser_fields_comments_and_multiline_data():
    parser = SSEParser()
    events = parser.feed(b": comment\nid: 1\nretry: 5\nevent: x\ndata: a\ndata: b\n\ndata:no-space\n\n\n\nevent: only\n\n")
    assert [(e.event, e.data) for e in events] == [("x", b"a\nb"), ("", b"no-space")]


def test_sse_parser_trailing_event_without_blank_line_is_flushed_on_close():
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert [(e.event, e.data) for e in parser.close()] == [("", b"[DONE]")]
    assert parser.close() == []


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_sse_parser_line_endings_split_everywhere(newline):
    raw = b"event: a" + newline + b"data: 1" + newline + newline + b"data: 2" + newline + newline
    for cut in range(len(raw) + 1):
        parser = SSEParser()
        events = parser.feed(raw[:cut]) + parser.feed(raw[cut:]) + parser.close()
        assert [(e.event, e.data) for e in events] == [("a", b"1"), ("", b"2")], cut


# ---------------------------------------------------------------- property: any chunking, same output

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(OPENAI_STREAM) - 1), max_size=12), st.booleans())
def test_openai_stream_any_chunking(cuts, crlf):
    raw = OPENAI_STREAM.replace(b"\n", b"\r\n") if crlf else OPENAI_STREAM
    cuts = sorted({min(c, len(raw) - 1) for c in cuts})
    assert run(ChatStreamToMessages(model="m"), raw, cuts) == run(ChatStreamToMessages(model="m"), OPENAI_STREAM)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(ANTHROPIC_STREAM) - 1), max_size=12), st.booleans())
def test_anthropic_stream_any_chunking(cuts, crlf):
    raw = ANTHROPIC_STREAM.replace(b"\n", b"\r\n") if crlf else ANTHROPIC_STREAM
    cuts = sorted({min(c, len(raw) - 1) for c in cuts})
    expected = without_created(parse(run(MessagesStreamToChat(model="m"), ANTHROPIC_STREAM)))
    assert without_created(parse(run(MessagesStreamToChat(model="m"), raw, cuts))) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1), min_size=1, max_size=5), st.data())
def test_arbitrary_text_survives_both_directions(texts, data):
    raw = b"".join(chunk({"content": t}) for t in texts) + chunk({}, "stop") + b"data: [DONE]\n\n"
    cuts = sorted(set(data.draw(st.lists(st.integers(min_value=1, max_value=len(raw) - 1), max_size=6))))
    anthropic_raw = run(ChatStreamToMessages(model="m"), raw, cuts)
    snapshot, _ = accumulate_messages(anthropic_raw)
    assert "".join(b.text for b in snapshot.content) == "".join(texts)
    completion, _ = accumulate_chat(run(MessagesStreamToChat(model="m"), anthropic_raw, [len(anthropic_raw) // 2]))
    assert completion.choices[0].message.content == "".join(texts)


def _message_start_usage(raw: bytes) -> dict:
    events = parse(run(ChatStreamToMessages(model="m"), raw))
    assert events[0][0] == "message_start"
    return orjson.loads(events[0][1])["message"]["usage"]


def test_message_start_carries_the_input_tokens_a_provider_reports_in_its_first_chunk():
    usage = {"prompt_tokens": 42, "completion_tokens": 0, "total_tokens": 42, "prompt_tokens_details": {"cached_tokens": 10}}
    raw = (chunk({"role": "assistant", "content": ""}, usage=usage) + chunk({"content": "hi"})
           + chunk({}, "stop") + b"data: [DONE]\n\n")
    assert _message_start_usage(raw) == {"input_tokens": 32, "output_tokens": 0, "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 10}


def test_message_start_waits_for_a_usage_chunk_that_comes_before_the_text():
    raw = (chunk({"role": "assistant", "content": ""})
           + chat_sse({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 0}})
           + chunk({"content": "hi"}) + chunk({}, "stop") + b"data: [DONE]\n\n")
    assert _message_start_usage(raw)["input_tokens"] == 17


def test_message_start_says_zero_when_the_provider_reports_usage_only_at_the_end():
    raw = (chunk({"role": "assistant", "content": ""}) + chunk({"content": "hi"}) + chunk({}, "stop")
           + chat_sse({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 2}})
           + b"data: [DONE]\n\n")
    events = parse(run(ChatStreamToMessages(model="m"), raw))
    assert orjson.loads(events[0][1])["message"]["usage"]["input_tokens"] == 0
    final = orjson.loads(next(data for name, data in events if name == "message_delta"))
    assert final["usage"]["input_tokens"] == 17 and final["usage"]["output_tokens"] == 2

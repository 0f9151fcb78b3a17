"""What a client sees of the translators' shared vocabulary: ids, stop and finish reasons,
reasoning effort, tool arguments, thinking blocks, and provider error bodies of every shape.

Each case is one provider answer and the exact field(s) the other API's client gets.
"""

import re

import orjson
import pytest

from filter.translation import (
    MessagesStreamToChat,
    TranslationError,
    chat_request_to_messages,
    chat_response_to_messages,
    error_to_chat,
    error_to_messages,
    messages_request_to_chat,
    messages_response_to_chat,
)


def message(**fields):
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1}}
    body.update(fields)
    return body


def completion(message_fields=None, **fields):
    msg = {"role": "assistant", "content": "Hi"}
    msg.update(message_fields or {})
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    body.update(fields)
    return body


# -- ids ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ("msg_01AbC", "chatcmpl-msg_01AbC"),
    ("chatcmpl-kept", "chatcmpl-kept"),  # already an OpenAI id (an OpenAI-compatible server behind)
])
def test_a_chat_client_gets_the_providers_message_id_as_a_completion_id(source, expected):
    assert messages_response_to_chat(message(id=source), model="m")["id"] == expected


@pytest.mark.parametrize("source", [None, "", 17, ["msg_1"]])
def test_a_message_without_a_usable_id_gets_a_fresh_completion_id(source):
    ids = {messages_response_to_chat(message(id=source), model="m")["id"] for _ in range(2)}
    assert len(ids) == 2
    assert all(re.fullmatch(r"chatcmpl-[0-9a-f]+", i) for i in ids)


@pytest.mark.parametrize("source, expected", [
    ("chatcmpl-9xYz", "msg_9xYz"),
    ("msg_kept", "msg_kept"),
    ("gen-42", "msg_gen-42"),
])
def test_an_anthropic_client_gets_the_providers_completion_id_as_a_message_id(source, expected):
    assert chat_response_to_messages(completion(id=source), model="m")["id"] == expected


@pytest.mark.parametrize("source", [None, "", 17])
def test_a_completion_without_a_usable_id_gets_a_fresh_message_id(source):
    ids = {chat_response_to_messages(completion(id=source), model="m")["id"] for _ in range(2)}
    assert len(ids) == 2
    assert all(re.fullmatch(r"msg_[0-9a-f]+", i) for i in ids)


def test_a_streamed_tool_call_without_an_id_gets_one_a_client_can_answer():
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "tool_use", "name": "get_weather", "input": {}}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    raw = b"".join(f"event: {e}\ndata: {orjson.dumps(d).decode()}\n\n".encode() for e, d in events)
    translator = MessagesStreamToChat(model="m")
    out = translator.feed(raw) + translator.finish()
    calls = [c for line in out.split(b"\n") if line.startswith(b"data: {")
             for choice in orjson.loads(line[6:])["choices"] for c in choice["delta"].get("tool_calls", [])]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert re.fullmatch(r"call_[0-9a-f]+", calls[0]["id"])


# -- stop and finish reasons -----------------------------------------------------------------

@pytest.mark.parametrize("stop_reason, finish_reason", [
    ("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    ("a_reason_from_next_year", "stop"), (None, "stop"), ({"odd": 1}, "stop"), (["end_turn"], "stop"),
])
def test_finish_reason_a_chat_client_sees(stop_reason, finish_reason):
    assert messages_response_to_chat(message(stop_reason=stop_reason), model="m")["choices"][0]["finish_reason"] \
        == finish_reason


@pytest.mark.parametrize("finish_reason, stop_reason", [
    ("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"),
    ("a_reason_from_next_year", "end_turn"), (None, "end_turn"), ({"odd": 1}, "end_turn"), (["stop"], "end_turn"),
])
def test_stop_reason_an_anthropic_client_sees(finish_reason, stop_reason):
    body = completion()
    body["choices"][0]["finish_reason"] = finish_reason
    assert chat_response_to_messages(body, model="m")["stop_reason"] == stop_reason


# -- reasoning effort from a thinking budget ---------------------------------------------------

@pytest.mark.parametrize("budget, effort", [
    (1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high"), (65536, "high"),
])
def test_an_anthropic_thinking_budget_becomes_a_reasoning_effort(budget, effort):
    body = {"model": "m", "max_tokens": 100000, "messages": [{"role": "user", "content": "Hi"}],
            "thinking": {"type": "enabled", "budget_tokens": budget}}
    assert messages_request_to_chat(body, model="gpt-x")["reasoning_effort"] == effort


# -- tool arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, expected", [
    ('{"city": "Paris"}', {"city": "Paris"}),
    ({"city": "Paris"}, {"city": "Paris"}),  # some servers send the object itself
    ("[1, 2]", {}),  # Anthropic requires an object
    ('"Paris"', {}),
    ("{not json", {}),
    ("", {}),
    (None, {}),
    (42, {}),
])
def test_tool_call_arguments_as_an_anthropic_client_gets_them(arguments, expected):
    body = completion({"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]})
    content = chat_response_to_messages(body, model="m")["content"]
    assert content == [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": expected}]


# -- assistant content blocks --------------------------------------------------------------------

def test_blocks_after_a_malformed_one_are_still_translated():
    body = message(content=["junk", {"type": "text", "text": "Hi"}, None, {"type": "text", "text": " there"}])
    assert messages_response_to_chat(body, model="m")["choices"][0]["message"]["content"] == "Hi there"


def test_thinking_blocks_without_a_signature_or_data_are_handed_back_empty_not_invented():
    body = message(content=[{"type": "thinking", "thinking": "Let me see."}, {"type": "redacted_thinking"},
                            {"type": "text", "text": "Hi"}])
    msg = messages_response_to_chat(body, model="m")["choices"][0]["message"]
    assert msg["thinking_blocks"] == [{"type": "thinking", "thinking": "Let me see.", "signature": ""},
                                      {"type": "redacted_thinking", "data": ""}]
    assert msg["reasoning_content"] == "Let me see."


# -- request translation errors ------------------------------------------------------------------

def test_a_request_that_cannot_be_translated_names_the_problem_and_the_parameter():
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.png"}}]}]}
    with pytest.raises(TranslationError) as caught:
        chat_request_to_messages(body, model="claude-x", default_max_tokens=1024)
    assert caught.value.message == "image_url.url must be an http(s) or data URL"
    assert str(caught.value) == "image_url.url must be an http(s) or data URL"
    assert caught.value.param == "messages[0].content[0]"


# -- provider error bodies -----------------------------------------------------------------------

def chat_error(status, body):
    return orjson.loads(error_to_chat(status, body))["error"]


def anthropic_error(status, body):
    return orjson.loads(error_to_messages(status, body))["error"]


@pytest.mark.parametrize("status, body, expected", [
    # OpenAI's own shape passes through.
    (429, b'{"error": {"message": "You exceeded your quota", "type": "insufficient_quota", "param": null,'
          b' "code": "insufficient_quota"}}',
     {"message": "You exceeded your quota", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}),
    (400, b'{"error": {"message": "bad", "type": "invalid_request_error", "param": "temperature", "code": 7}}',
     {"message": "bad", "type": "invalid_request_error", "param": "temperature", "code": 7}),
    # Values of the wrong type are dropped, not passed on.
    (400, b'{"error": {"message": "bad", "type": 5, "param": 5, "code": 1.5}}',
     {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}),
    (400, b'{"error": {"message": "bad", "type": "", "param": ["x"], "code": true}}',
     {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}),
    # Looser shapes of OpenAI-compatible servers.
    (401, b'{"error": "invalid api key"}',
     {"message": "invalid api key", "type": "authentication_error", "param": None, "code": None}),
    (401, b'{"error_description": "token expired"}',
     {"message": "token expired", "type": "authentication_error", "param": None, "code": None}),
    (422, b'{"detail": [{"loc": ["body", "model"], "msg": "field required"}]}',
     {"message": '[{"loc":["body","model"],"msg":"field required"}]', "type": "invalid_request_error",
      "param": None, "code": None}),
    (400, b'[{"error": {"message": "wrapped", "type": "invalid_request_error"}}]',
     {"message": "wrapped", "type": "invalid_request_error", "param": None, "code": None}),
    # No message, or an empty one: the status's own phrase.
    (404, b'{"error": {"message": ""}}', {"message": "Not Found", "type": "not_found_error", "param": None, "code": None}),
    (402, b"", {"message": "Payment Required", "type": "permission_error", "param": None, "code": None}),
    (599, b"", {"message": "upstream error (HTTP 599)", "type": "api_error", "param": None, "code": None}),
    # Not JSON: the text, broken bytes replaced.
    (502, b"  Bad gateway \xff\n", {"message": "Bad gateway \ufffd", "type": "api_error", "param": None, "code": None}),
])
def test_provider_errors_as_a_chat_client_sees_them(status, body, expected):
    assert chat_error(status, body) == expected


@pytest.mark.parametrize("status, body, expected", [
    (403, b'{"error": {"message": "no", "type": "permission_error"}}', {"type": "permission_error", "message": "no"}),
    # A type Anthropic's clients know is kept, whatever the status.
    (400, b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}',
     {"type": "overloaded_error", "message": "busy"}),
    # Types outside Anthropic's public set are folded into it.
    (400, b'{"type": "error", "error": {"type": "billing_error", "message": "pay"}}',
     {"type": "permission_error", "message": "pay"}),
    (429, b'{"error": {"message": "quota", "type": "insufficient_quota"}}', {"type": "rate_limit_error", "message": "quota"}),
    (500, b'{"error": {"message": "t", "type": "server_error"}}', {"type": "api_error", "message": "t"}),
    # Unknown or missing types: from the status.
    (402, b'{"error": {"message": "pay", "type": "payment_required"}}', {"type": "permission_error", "message": "pay"}),
    (413, b'{"error": {"message": "big"}}', {"type": "request_too_large", "message": "big"}),
    (503, b"down", {"type": "overloaded_error", "message": "down"}),
])
def test_provider_errors_as_an_anthropic_client_sees_them(status, body, expected):
    assert anthropic_error(status, body) == expected


@pytest.mark.parametrize("etype, message", [
    ("overloaded_error", "upstream error (HTTP 529)"),
    ("rate_limit_error", "Too Many Requests"),
    ("request_too_large", "Request Entity Too Large"),
    ("a_type_from_next_year", "Internal Server Error"),
])
def test_a_stream_error_event_without_a_message_reads_as_its_status(etype, message):
    raw = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
           b'event: error\ndata: {"type":"error","error":{"type":"' + etype.encode() + b'"}}\n\n')
    translator = MessagesStreamToChat(model="m")
    out = translator.feed(raw) + translator.finish()
    errors = [orjson.loads(line[6:])["error"] for line in out.split(b"\n")
              if line.startswith(b"data: {") and b'"error"' in line]
    assert errors == [{"message": message, "type": etype, "param": None, "code": None}]

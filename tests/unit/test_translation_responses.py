"""Non-streaming response translation and usage normalisation."""

import anthropic.types
import openai.types.chat
import pytest

from filter.translation import (
    Usage,
    chat_response_to_messages,
    messages_response_to_chat,
    usage_from_chat,
    usage_from_messages,
)


def anthropic_message(**overrides):
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
    }
    body.update(overrides)
    return body


def chat_completion(message=None, finish_reason="stop", **overrides):
    body = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message or {"role": "assistant", "content": "Hello"}, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135, "prompt_tokens_details": {"cached_tokens": 100}},
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------- Anthropic -> OpenAI


def test_text_response_to_chat_completion():
    out = messages_response_to_chat(anthropic_message(), model="my-alias")
    openai.types.chat.ChatCompletion.model_validate(out)
    assert out["object"] == "chat.completion"
    assert out["model"] == "my-alias"
    assert out["id"].startswith("chatcmpl-")
    assert out["choices"][0]["message"]["content"] == "Hello"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in out["choices"][0]["message"]


def test_usage_counts_cache_reads_and_writes_into_prompt_tokens():
    usage = messages_response_to_chat(anthropic_message(), model="m")["usage"]
    assert usage["prompt_tokens"] == 130
    assert usage["completion_tokens"] == 5
    assert usage["total_tokens"] == 135
    assert usage["prompt_tokens_details"]["cached_tokens"] == 100
    assert usage["prompt_tokens_details"]["cache_write_tokens"] == 20


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
    ],
)
def test_stop_reason_to_finish_reason(stop_reason, finish):
    out = messages_response_to_chat(anthropic_message(stop_reason=stop_reason), model="m")
    assert out["choices"][0]["finish_reason"] == finish


def test_tool_use_and_thinking_to_chat():
    body = anthropic_message(
        content=[
            {"type": "thinking", "thinking": "Let me think", "signature": "sig=="},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        stop_reason="tool_use",
    )
    out = messages_response_to_chat(body, model="m")
    openai.types.chat.ChatCompletion.model_validate(out)
    msg = out["choices"][0]["message"]
    assert msg["content"] == "Checking."
    assert msg["reasoning_content"] == "Let me think"
    assert msg["thinking_blocks"] == [{"type": "thinking", "thinking": "Let me think", "signature": "sig=="}]
    assert msg["tool_calls"] == [
        {"id": "toolu_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_only_response_has_null_content():
    body = anthropic_message(content=[{"type": "tool_use", "id": "t", "name": "f", "input": {}}], stop_reason="tool_use")
    assert messages_response_to_chat(body, model="m")["choices"][0]["message"]["content"] is None


def test_missing_id_gets_generated_chat_id():
    body = anthropic_message()
    del body["id"]
    assert messages_response_to_chat(body, model="m")["id"].startswith("chatcmpl-")


# ---------------------------------------------------------------- OpenAI -> Anthropic


def test_text_completion_to_message():
    out = chat_response_to_messages(chat_completion(), model="alias")
    anthropic.types.Message.model_validate(out)
    assert out["type"] == "message" and out["role"] == "assistant"
    assert out["model"] == "alias"
    assert out["id"].startswith("msg_")
    assert out["content"] == [{"type": "text", "text": "Hello"}]
    assert out["stop_reason"] == "end_turn"
    assert out["usage"] == {"input_tokens": 30, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal"), (None, "end_turn")],
)
def test_finish_reason_to_stop_reason(finish, stop_reason):
    assert chat_response_to_messages(chat_completion(finish_reason=finish), model="m")["stop_reason"] == stop_reason


def test_tool_calls_and_reasoning_to_message():
    message = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "thinking...",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
        ],
    }
    out = chat_response_to_messages(chat_completion(message, finish_reason="tool_calls"), model="m")
    anthropic.types.Message.model_validate(out)
    assert out["content"] == [
        {"type": "thinking", "thinking": "thinking...", "signature": ""},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"


def test_tool_calls_with_stop_finish_reason_still_report_tool_use():
    message = {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert chat_response_to_messages(chat_completion(message, finish_reason="stop"), model="m")["stop_reason"] == "tool_use"


def test_refusal_to_message():
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    out = chat_response_to_messages(chat_completion(message), model="m")
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"


def test_usage_round_trip():
    chat = chat_completion()
    back = messages_response_to_chat(chat_response_to_messages(chat, model="m"), model="m")
    assert back["usage"]["prompt_tokens"] == 130
    assert back["usage"]["prompt_tokens_details"]["cached_tokens"] == 100
    assert back["usage"]["completion_tokens"] == 5


def test_reasoning_tokens_map_both_ways():
    chat = chat_completion(usage={"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55, "completion_tokens_details": {"reasoning_tokens": 40}})
    msg = chat_response_to_messages(chat, model="m")
    assert msg["usage"]["output_tokens_details"] == {"thinking_tokens": 40}
    assert messages_response_to_chat(msg, model="m")["usage"]["completion_tokens_details"] == {"reasoning_tokens": 40}


def test_usage_helpers():
    assert usage_from_messages(anthropic_message()) == Usage(input_tokens=130, output_tokens=5, cached_tokens=100)
    assert usage_from_chat(chat_completion()) == Usage(input_tokens=130, output_tokens=5, cached_tokens=100)
    assert usage_from_chat({}) == Usage(0, 0, 0)
    assert usage_from_messages({"usage": None}) == Usage(0, 0, 0)
    assert Usage(3, 4, 0).total_tokens == 7


def test_response_keeps_empty_thinking_and_redacted_blocks():
    body = anthropic_message(
        content=[
            {"type": "thinking", "thinking": "", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "zz"},
            {"type": "text", "text": "Hi"},
        ]
    )
    msg = messages_response_to_chat(body, model="m")["choices"][0]["message"]
    assert msg["reasoning_content"] == ""
    assert msg["thinking_blocks"] == [
        {"type": "thinking", "thinking": "", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "zz"},
    ]
    assert msg["content"] == "Hi"

"""Token counts as a client sees them after translation, for every shape a provider reports them in.

Each case is one provider usage object and the exact usage block the other API's client gets
(validated with the official SDK's type): what a client bills or shows its user.
"""

import anthropic.types
import openai.types.chat
import pytest

from filter.translation import chat_response_to_messages, messages_response_to_chat


def completion_with(usage):
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}
    if usage is not ...:
        body["usage"] = usage
    return body


def message_with(usage):
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None}
    if usage is not ...:
        body["usage"] = usage
    return body


def anthropic_usage(chat_usage):
    out = chat_response_to_messages(completion_with(chat_usage), model="m")
    anthropic.types.Message.model_validate(out)
    return out["usage"]


def openai_usage(messages_usage):
    out = messages_response_to_chat(message_with(messages_usage), model="m")
    openai.types.chat.ChatCompletion.model_validate(out)
    return out["usage"]


def anthropic_block(input_tokens, output_tokens, read=0, write=0):
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read}


@pytest.mark.parametrize("usage, expected", [
    # prompt_tokens holds the cached part; Anthropic's input_tokens does not.
    ({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107, "prompt_tokens_details": {"cached_tokens": 30}},
     anthropic_block(70, 7, read=30)),
    # Providers that report prompt-cache writes (OpenRouter, LiteLLM) name them cache_write_tokens.
    ({"prompt_tokens": 100, "completion_tokens": 7,
      "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 20}},
     anthropic_block(50, 7, read=30, write=20)),
    ({"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cache_write_tokens": 100}},
     anthropic_block(0, 7, write=100)),
    # One token is a count like any other.
    ({"prompt_tokens": 1, "completion_tokens": 1}, anthropic_block(1, 1)),
    # Counts written as floats by some OpenAI-compatible servers.
    ({"prompt_tokens": 12.0, "completion_tokens": 1.0, "prompt_tokens_details": {"cached_tokens": 2.0}},
     anthropic_block(10, 1, read=2)),
    # Nonsense is no count: negative numbers, booleans, strings, null, a details object that is not one.
    ({"prompt_tokens": -5, "completion_tokens": -1.5, "prompt_tokens_details": {"cached_tokens": -3}},
     anthropic_block(0, 0)),
    ({"prompt_tokens": True, "completion_tokens": "7", "prompt_tokens_details": None}, anthropic_block(0, 0)),
    ({"prompt_tokens": 9, "completion_tokens": 0.0, "prompt_tokens_details": "30"}, anthropic_block(9, 0)),
    # A provider whose cached count exceeds its prompt count: never a negative input count.
    ({"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 30}},
     anthropic_block(0, 2, read=30)),
    ({"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 10}},
     anthropic_block(0, 2, read=10)),
    # Reasoning tokens are part of the output; Anthropic's usage has no separate field for them.
    ({"prompt_tokens": 5, "completion_tokens": 40, "completion_tokens_details": {"reasoning_tokens": 32}},
     {**anthropic_block(5, 40), "output_tokens_details": {"thinking_tokens": 32}}),
    ({"prompt_tokens": 5, "completion_tokens": 40, "completion_tokens_details": {"reasoning_tokens": 0}},
     anthropic_block(5, 40)),
    ({"prompt_tokens": 5, "completion_tokens": 40, "completion_tokens_details": [32]}, anthropic_block(5, 40)),
    # No usage at all (some servers leave it out): zeros, nothing invented.
    (..., anthropic_block(0, 0)),
    (None, anthropic_block(0, 0)),
    ([1, 2], anthropic_block(0, 0)),
])
def test_openai_usage_as_an_anthropic_client_sees_it(usage, expected):
    assert anthropic_usage(usage) == expected


@pytest.mark.parametrize("usage, expected", [
    ({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
     {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
      "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20}}),
    ({"input_tokens": 1, "output_tokens": 1},
     {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "prompt_tokens_details": {"cached_tokens": 0}}),
    ({"input_tokens": 3.0, "output_tokens": 2.0, "cache_read_input_tokens": 1.0},
     {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6, "prompt_tokens_details": {"cached_tokens": 1}}),
    ({"input_tokens": -3, "output_tokens": None, "cache_read_input_tokens": "4", "cache_creation_input_tokens": False},
     {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "prompt_tokens_details": {"cached_tokens": 0}}),
    # Anthropic's thinking tokens are in output_tokens already; OpenAI names them reasoning tokens.
    ({"input_tokens": 2, "output_tokens": 50, "output_tokens_details": {"thinking_tokens": 45}},
     {"prompt_tokens": 2, "completion_tokens": 50, "total_tokens": 52, "prompt_tokens_details": {"cached_tokens": 0},
      "completion_tokens_details": {"reasoning_tokens": 45}}),
    ({"input_tokens": 2, "output_tokens": 50, "output_tokens_details": 45},
     {"prompt_tokens": 2, "completion_tokens": 50, "total_tokens": 52, "prompt_tokens_details": {"cached_tokens": 0}}),
    (..., {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "prompt_tokens_details": {"cached_tokens": 0}}),
    ("12", {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "prompt_tokens_details": {"cached_tokens": 0}}),
])
def test_anthropic_usage_as_an_openai_client_sees_it(usage, expected):
    assert openai_usage(usage) == expected

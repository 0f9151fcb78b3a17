"""The stand-ins refuse what the real providers refuse (tests/provider_rules.py), with their 400s."""

from __future__ import annotations

import json

import pytest

from tests.standins import Received, anthropic_reply, openai_reply

USER = [{"role": "user", "content": "hi"}]


def post(path: str, body: dict) -> Received:
    return Received("POST", path, {}, json.dumps(body).encode())


def openai_refused(body: dict) -> dict | None:
    reply = openai_reply(post("/v1/chat/completions", body))
    return json.loads(reply.body)["error"] if reply.status == 400 else None


def anthropic_refused(body: dict) -> dict | None:
    reply = anthropic_reply(post("/v1/messages", body))
    return json.loads(reply.body)["error"] if reply.status == 400 else None


def test_gpt_4o_refuses_more_than_16384_output_tokens_and_reasoning_effort():
    error = openai_refused({"model": "gpt-4o", "messages": USER, "max_completion_tokens": 128_000})
    assert error["param"] == "max_completion_tokens" and "at most 16384" in error["message"]
    error = openai_refused({"model": "gpt-4o", "messages": USER, "reasoning_effort": "medium"})
    assert error["code"] == "unsupported_parameter" and error["param"] == "reasoning_effort"
    assert openai_refused({"model": "gpt-4o", "messages": USER, "max_completion_tokens": 16_384}) is None


def test_openai_refuses_unknown_fields_for_its_own_models_but_a_local_server_does_not():
    error = openai_refused({"model": "gpt-4o", "messages": USER, "thinking": {"type": "enabled"}})
    assert error["message"] == "Unrecognized request argument supplied: thinking"
    assert openai_refused({"model": "qwen-coder", "messages": USER, "thinking": {}}) is None


def test_openai_reasoning_models_refuse_sampling_and_max_tokens():
    assert openai_refused({"model": "o3", "messages": USER, "temperature": 0.2})["param"] == "temperature"
    assert openai_refused({"model": "o3", "messages": USER, "max_tokens": 10})["param"] == "max_tokens"
    assert openai_refused({"model": "o3", "messages": USER, "temperature": 1, "reasoning_effort": "low"}) is None


@pytest.mark.parametrize("messages, param", [
    ([{"role": "tool", "tool_call_id": "c1", "content": "x"}], "messages.[0].role"),
    ([*USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                    "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "user", "content": "next"}], "messages.[2].role"),
    ([{"role": "human", "content": "x"}], "messages[0].role"),
])
def test_openai_role_and_tool_call_rules(messages, param):
    assert openai_refused({"model": "local-model", "messages": messages})["param"] == param


def test_openai_stream_options_need_stream():
    error = openai_refused({"model": "gpt-4o", "messages": USER, "stream_options": {"include_usage": True}})
    assert error["param"] == "stream_options"


def test_anthropic_requires_max_tokens_and_enforces_the_models_limit():
    assert anthropic_refused({"model": "claude-sonnet-4-5", "messages": USER})["message"] == "max_tokens: Field required"
    error = anthropic_refused({"model": "claude-3-5-haiku-20241022", "messages": USER, "max_tokens": 32_000})
    assert error["type"] == "invalid_request_error" and "8192" in error["message"]
    assert anthropic_refused({"model": "claude-sonnet-4-5", "messages": USER, "max_tokens": 64_000}) is None


@pytest.mark.parametrize("extra, words", [
    ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "greater than or equal to 1024"),
    ({"thinking": {"type": "enabled", "budget_tokens": 4000}}, "greater than `thinking.budget_tokens`"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 0.5}, "only be set to 1"),
    ({"temperature": 1.5}, "less than or equal to 1"),
])
def test_anthropic_thinking_and_sampling_rules(extra, words):
    error = anthropic_refused({"model": "claude-sonnet-4-5", "messages": USER, "max_tokens": 2000, **extra})
    assert words in error["message"]


def test_anthropic_models_without_thinking_refuse_it():
    error = anthropic_refused({"model": "claude-3-5-haiku-20241022", "messages": USER, "max_tokens": 4000,
                               "thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert "does not support thinking" in error["message"]


def test_anthropic_turn_rules():
    tool_use = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
    base = {"model": "claude-sonnet-4-5", "max_tokens": 100}
    assert "Input should be" in anthropic_refused({**base, "messages": [{"role": "tool", "content": "s"}, *USER]})["message"]
    assert "without `tool_result`" in anthropic_refused({**base, "messages": [*USER, tool_use, *USER]})["message"]
    text_first = {"role": "user", "content": [{"type": "text", "text": "and"}, result]}
    assert "without `tool_result`" in anthropic_refused({**base, "messages": [*USER, tool_use, text_first]})["message"]
    assert "non-empty" in anthropic_refused({**base, "messages": [{"role": "user", "content": ""}]})["message"]
    answered = {"role": "user", "content": [result, {"type": "text", "text": "and"}]}
    assert anthropic_refused({**base, "messages": [*USER, tool_use, answered]}) is None

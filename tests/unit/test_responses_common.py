"""What a Responses answer repeats of the request, what the gateway keeps back from an OpenAI
provider (its own sealed reasoning items), how a sealed thinking block is read back, a custom
tool's input, requests that need OpenAI's server-side state, and messages of several parts.
Fixed expected values."""

import orjson
import pytest

from filter.translation import (
    ChatStreamToResponses,
    ToolNames,
    TranslationError,
    chat_response_to_responses,
    response_echo,
    responses_request_to_chat,
    without_gateway_reasoning,
)
from filter.translation.responses_common import custom_input, pack_thinking, unpack_thinking

from tests.unit.test_translation_stream_events import _normalise, run_to_responses

DEFAULTS = {"instructions": None, "max_output_tokens": None, "metadata": {}, "parallel_tool_calls": True,
            "previous_response_id": None, "temperature": None, "tool_choice": "auto", "tools": [], "top_p": None,
            "truncation": "disabled", "user": None}


@pytest.mark.parametrize("request_body, echo", [
    ({}, {**DEFAULTS, "text": {"format": {"type": "text"}}, "store": True}),
    ({"instructions": "Be brief", "max_output_tokens": 50, "metadata": {"a": "b"}, "parallel_tool_calls": False,
      "temperature": 0.5, "tool_choice": "required", "tools": [{"type": "function", "name": "f"}], "top_p": 0.9,
      "truncation": "auto", "user": "u", "reasoning": {"effort": "high", "summary": "auto", "x": 1},
      "text": {"format": {"type": "json_object"}}, "store": False, "previous_response_id": "resp_x"},
     {"instructions": "Be brief", "max_output_tokens": 50, "metadata": {"a": "b"}, "parallel_tool_calls": False,
      "previous_response_id": "resp_x", "temperature": 0.5, "tool_choice": "required",
      "tools": [{"type": "function", "name": "f"}], "top_p": 0.9, "truncation": "auto", "user": "u",
      "reasoning": {"effort": "high", "summary": "auto"}, "text": {"format": {"type": "json_object"}}, "store": False}),
    ({"instructions": [{"role": "system", "content": "x"}], "metadata": None, "reasoning": "high",
      "text": {"format": "json"}, "store": None},
     {**DEFAULTS, "instructions": [{"role": "system", "content": "x"}], "text": {"format": {"type": "text"}},
      "store": True}),
    ({"instructions": 5, "text": "x", "reasoning": {}},
     {**DEFAULTS, "reasoning": {"effort": None, "summary": None}, "text": {"format": {"type": "text"}}, "store": True}),
])
def test_what_an_answer_repeats_of_the_request(request_body, echo):
    assert response_echo(request_body) == echo


def test_only_the_gateways_own_reasoning_items_are_kept_back_from_an_openai_provider():
    items = [{"type": "reasoning", "encrypted_content": "switchyard.anthropic.abc"},
             {"type": "reasoning", "encrypted_content": "gAAAA"}, {"type": "reasoning"},
             {"type": "message", "encrypted_content": "switchyard.x"}, "junk",
             {"type": "reasoning", "encrypted_content": "switchyard.other"}]
    assert without_gateway_reasoning(items) == [
        {"type": "reasoning", "encrypted_content": "gAAAA"}, {"type": "reasoning"},
        {"type": "message", "encrypted_content": "switchyard.x"}, "junk"]
    assert without_gateway_reasoning("Hi") == "Hi"
    assert without_gateway_reasoning(None) is None


def test_a_sealed_thinking_block_reads_back_and_nothing_else_does():
    sealed = pack_thinking({"type": "thinking", "thinking": "t", "signature": "s"})
    assert sealed == "switchyard.anthropic.eyJ0eXBlIjoidGhpbmtpbmciLCJ0aGlua2luZyI6InQiLCJzaWduYXR1cmUiOiJzIn0="
    assert unpack_thinking(sealed) == {"type": "thinking", "thinking": "t", "signature": "s"}
    assert unpack_thinking(pack_thinking({"type": "redacted_thinking", "data": "d"})) == \
        {"type": "redacted_thinking", "data": "d"}
    for other in (pack_thinking({"type": "text", "text": "t"}), "switchyard.anthropic.!!!",
                  "switchyard.anthropic.WzFd", "switchyard.anthropic.", "gAAAA", 5, None):
        assert unpack_thinking(other) is None


@pytest.mark.parametrize("arguments, text", [
    ('{"input":"diff"}', "diff"), ('{"input":5}', '{"input":5}'), ("[1]", "[1]"), ("bare text", "bare text"),
    ("", ""), ('{"other":"x"}', '{"other":"x"}'),
])
def test_a_custom_tools_input_from_the_upstream_arguments(arguments, text):
    assert custom_input(arguments) == text


@pytest.mark.parametrize("field, value, message", [
    ("conversation", "conv_1", "'conversation' refers to state kept by OpenAI; only OpenAI models can take it"),
    ("prompt", {"id": "pmpt_1"}, "'prompt' refers to state kept by OpenAI; only OpenAI models can take it"),
    ("background", True, "background responses are served by OpenAI models only"),
])
def test_requests_that_need_openais_own_state_are_refused(field, value, message):
    with pytest.raises(TranslationError) as caught:
        responses_request_to_chat({"input": "x", field: value}, model="m")
    assert (caught.value.message, caught.value.param) == (message, field)


def test_background_false_is_an_ordinary_request():
    assert responses_request_to_chat({"input": "x", "background": False}, model="m") == {
        "model": "m", "messages": [{"role": "user", "content": "x"}]}


def text_part(text):
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def test_a_message_with_text_and_a_refusal_keeps_both_parts_in_order():
    answer = {"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "Hi", "refusal": "but no"}}]}
    output = _normalise(chat_response_to_responses(answer, model="g", echo={}, tools=ToolNames()), {})["output"]
    assert output == [{"id": "<msg#2>", "type": "message", "role": "assistant", "status": "completed",
                       "content": [text_part("Hi"), {"type": "refusal", "refusal": "but no"}]}]

    def chunk(delta):
        return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta}]}) + b"\n\n"

    raw = chunk({"content": "a"}) + chunk({"refusal": "r"}) + chunk({"content": "b"}) + b"data: [DONE]\n\n"
    final = run_to_responses(ChatStreamToResponses, raw)[-1][1]["response"]["output"]
    assert final[0]["content"] == [text_part("a"), {"type": "refusal", "refusal": "r"}, text_part("b")]


@pytest.mark.parametrize("tools, names", [
    ([], ToolNames()),
    (["junk", {"type": "custom", "name": "patch"}, {"type": "custom", "name": 5}],
     ToolNames(frozenset({"patch"}), ())),
    ([{"type": "namespace", "name": "crm", "tools": ["junk", {"type": "function", "name": "lookup"},
                                                   {"type": "custom", "name": "note"}, {"name": 5}]},
      {"type": "namespace", "name": 5, "tools": [{"type": "custom", "name": "x"}]},
      {"type": "function", "name": "plain"}],
     ToolNames(frozenset({"crm__note"}), (("crm__lookup", "crm", "lookup"), ("crm__note", "crm", "note")))),
])
def test_how_custom_and_namespaced_tools_are_named_upstream(tools, names):
    from filter.translation import responses_tool_names
    assert responses_tool_names({"tools": tools}) == names


def test_a_request_that_is_no_object_has_no_tool_names():
    from filter.translation import responses_tool_names
    assert responses_tool_names(["x"]) == ToolNames()


@pytest.mark.parametrize("status, body, error", [
    (429, b'{"error": {"message": "slow down"}}',
     {"message": "slow down", "type": "rate_limit_error", "param": None, "code": None}),
    (503, b"", {"message": "Service Unavailable", "type": "overloaded_error", "param": None, "code": None}),
])
def test_a_provider_error_as_a_responses_client_gets_it(status, body, error):
    from filter.translation import error_to_responses
    assert orjson.loads(error_to_responses(status, body)) == {"error": error}


def test_a_responses_request_as_anthropic_receives_it():
    from filter.translation import responses_request_to_messages
    assert responses_request_to_messages({"input": "Hi", "instructions": "Be brief"}, model="claude-x",
                                         default_max_tokens=4096) == {
        "model": "claude-x", "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi"}], "system": "Be brief"}

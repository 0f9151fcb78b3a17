"""Responses API translation: Responses <-> Chat Completions and Responses <-> Anthropic Messages.

Every translated answer and stream event is validated with the official `openai` SDK's Responses
types, and streams are also accumulated by the SDK's own stream state (which refuses events out
of order, changed ids and unfinished items).
"""

from __future__ import annotations

import copy
import re

import orjson
import pytest
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from openai._types import omit
from pydantic import TypeAdapter

from filter.translation import (
    DROPPED_RESPONSES_FIELDS,
    ChatStreamToResponses,
    MessagesStreamToResponses,
    TranslationError,
    chat_response_to_responses,
    error_to_responses,
    messages_response_to_responses,
    response_echo,
    responses_request_to_chat,
    responses_request_to_messages,
    responses_tool_names,
)

EVENTS = TypeAdapter(ResponseStreamEvent)

SHELL = {"type": "function", "name": "exec_command", "description": "Runs a command", "strict": False,
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}
PATCH_GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF'
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files",
               "format": {"type": "grammar", "syntax": "lark", "definition": PATCH_GRAMMAR}}
NAMESPACE = {"type": "namespace", "name": "crm", "description": "CRM tools", "tools": [
    {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}]}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"


def to_chat(body, **kw):
    return responses_request_to_chat(copy.deepcopy(body), model=kw.pop("model", "qwen"), **kw)


def to_messages(body):
    return responses_request_to_messages(copy.deepcopy(body), model="claude-x", default_max_tokens=4096)


# ------------------------------------------------------------------ requests: Responses -> Chat


def test_string_input_with_instructions_and_sampling():
    out = to_chat({"model": "auto", "input": "Hello", "instructions": "Be brief.", "max_output_tokens": 50,
                   "temperature": 0.2, "top_p": 0.9, "reasoning": {"effort": "high", "summary": "auto"},
                   "stream": True, "user": "u-1"})
    assert out == {
        "model": "qwen",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "max_completion_tokens": 50, "temperature": 0.2, "top_p": 0.9, "reasoning_effort": "high",
        "user": "u-1", "stream": True, "stream_options": {"include_usage": True},
    }


def test_fields_without_counterpart_are_dropped():
    body = {"input": "hi", "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k",
            "service_tier": "flex", "truncation": "auto", "top_logprobs": 2, "max_tool_calls": 3,
            "client_metadata": {"a": "b"}, "store": False, "metadata": {"x": "y"}, "text": {"verbosity": "low"},
            "reasoning": {"effort": "none", "summary": "detailed"}, "prompt_cache_retention": "24h",
            "stream_options": {"include_obfuscation": False}, "context_management": [{"type": "compaction"}]}
    assert to_chat(body) == {"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}
    listed = {name.split(".")[0] for name in DROPPED_RESPONSES_FIELDS}
    assert listed - {"reasoning", "text"} <= set(body)


def test_codex_agent_loop_becomes_chat_messages():
    body = {
        "model": "gpt-5.5", "stream": True, "tools": [SHELL, APPLY_PATCH], "tool_choice": "auto",
        "parallel_tool_calls": True,
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "make a.txt"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Plan: patch."}]},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_p", "name": "apply_patch", "input": PATCH},
            {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_s", "name": "exec_command",
             "arguments": '{"cmd":"cat a.txt"}'},
            {"type": "function_call_output", "call_id": "call_s", "output": "hi\n"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Created."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
        ],
    }
    out = to_chat(body)
    assert out["messages"] == [
        {"role": "system", "content": "You are Codex."},
        {"role": "user", "content": "make a.txt"},
        {"role": "assistant", "content": None, "reasoning_content": "Plan: patch.", "tool_calls": [
            {"id": "call_p", "type": "function", "function": {"name": "apply_patch",
                                                              "arguments": orjson.dumps({"input": PATCH}).decode()}}]},
        {"role": "tool", "tool_call_id": "call_p", "content": "Done!"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_s", "type": "function", "function": {"name": "exec_command", "arguments": '{"cmd":"cat a.txt"}'}}]},
        {"role": "tool", "tool_call_id": "call_s", "content": "hi\n"},
        {"role": "assistant", "content": "Created."},
        {"role": "user", "content": "thanks"},
    ]
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is True
    shell, patch = out["tools"]
    assert shell == {"type": "function", "function": {"name": "exec_command", "description": "Runs a command",
                                                      "parameters": SHELL["parameters"]}}
    assert patch["function"]["name"] == "apply_patch"
    assert patch["function"]["parameters"] == {"type": "object", "properties": {"input": {"type": "string"}},
                                               "required": ["input"], "additionalProperties": False}
    assert patch["function"]["description"].startswith("Edit files\n\n")
    assert PATCH_GRAMMAR in patch["function"]["description"]  # the model learns the format it must write


def test_hosted_tools_are_left_out_and_namespaces_flattened():
    body = {"input": "hi", "tools": [{"type": "web_search", "external_web_access": False},
                                     {"type": "tool_search", "execution": "client"}, NAMESPACE, SHELL]}
    out = to_chat(body)
    assert [t["function"]["name"] for t in out["tools"]] == ["crm__lookup", "exec_command"]
    only_hosted = to_chat({"input": "hi", "tools": [{"type": "web_search"}]})
    assert "tools" not in only_hosted and "tool_choice" not in only_hosted


@pytest.mark.parametrize("tool", [{"type": "computer_use_preview", "display_width": 1, "display_height": 1,
                                   "environment": "linux"}, {"type": "local_shell"}, {"type": "shell"}])
def test_client_run_builtin_tools_without_a_function_form_are_refused(tool):
    with pytest.raises(TranslationError) as err:
        to_chat({"input": "hi", "tools": [tool]})
    assert err.value.param == "tools[0]"


@pytest.mark.parametrize("choice, expected", [
    ("required", "required"),
    ({"type": "function", "name": "exec_command"}, {"type": "function", "function": {"name": "exec_command"}}),
    ({"type": "custom", "name": "apply_patch"}, {"type": "function", "function": {"name": "apply_patch"}}),
])
def test_tool_choice(choice, expected):
    out = to_chat({"input": "hi", "tools": [SHELL, APPLY_PATCH], "tool_choice": choice})
    assert out["tool_choice"] == expected


def test_allowed_tools_narrows_the_tool_list():
    out = to_chat({"input": "hi", "tools": [SHELL, APPLY_PATCH], "tool_choice": {
        "type": "allowed_tools", "mode": "required", "tools": [{"type": "custom", "name": "apply_patch"}]}})
    assert [t["function"]["name"] for t in out["tools"]] == ["apply_patch"]
    assert out["tool_choice"] == "required"


def test_a_forced_hosted_tool_is_refused():
    with pytest.raises(TranslationError):
        to_chat({"input": "hi", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}})


def test_images_files_and_tool_output_images():
    body = {"input": [
        {"role": "user", "content": [{"type": "input_text", "text": "what is this?"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                                     {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}]},
        {"type": "function_call", "call_id": "c1", "name": "screenshot", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "taken"}, {"type": "input_image", "image_url": "https://x/y.png"}]},
    ]}
    out = to_chat(body)["messages"]
    assert out[0] == {"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}]}
    assert out[2] == {"role": "tool", "tool_call_id": "c1", "content": "taken"}
    assert out[3] == {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}


@pytest.mark.parametrize("body, param", [
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}, "input[0].content[0]"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": [{"type": "computer_call", "call_id": "c", "action": {}}]}, "input[0]"),
    ({"input": "hi", "previous_response_id": "resp_unknown"}, "previous_response_id"),
    ({"input": "hi", "conversation": "conv_1"}, "conversation"),
    ({"input": "hi", "background": True}, "background"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": 3}, "input"),
])
def test_requests_that_cannot_be_expressed(body, param):
    with pytest.raises(TranslationError) as err:
        to_chat(body)
    assert err.value.param == param


def test_hosted_tool_records_in_the_history_are_skipped():
    out = to_chat({"input": [{"role": "user", "content": "news?"},
                             {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}},
                             {"role": "assistant", "content": [{"type": "output_text", "text": "Nothing new."}]}]})
    assert out["messages"] == [{"role": "user", "content": "news?"}, {"role": "assistant", "content": "Nothing new."}]


def test_json_schema_text_format_becomes_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = to_chat({"input": "hi", "text": {"format": {"type": "json_schema", "name": "A", "schema": schema,
                                                      "strict": True}}})
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "A", "schema": schema,
                                                                            "strict": True}}


# ------------------------------------------------------------------ requests: Responses -> Messages


def test_messages_request_from_a_codex_loop():
    body = {"instructions": "You are Codex.", "max_output_tokens": 300, "tools": [SHELL, APPLY_PATCH],
            "input": [{"role": "user", "content": "make a.txt"},
                      {"type": "custom_tool_call", "call_id": "toolu_1", "name": "apply_patch", "input": PATCH},
                      {"type": "custom_tool_call_output", "call_id": "toolu_1", "output": "Done!"}]}
    out = to_messages(body)
    assert out["system"] == "You are Codex."
    assert out["max_tokens"] == 300
    assert out["messages"] == [
        {"role": "user", "content": "make a.txt"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "apply_patch",
                                           "input": {"input": PATCH}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Done!"}]},
    ]
    assert out["tools"][1]["input_schema"]["required"] == ["input"]


def test_reasoning_effort_becomes_a_thinking_budget():
    out = to_messages({"input": "prove it", "reasoning": {"effort": "medium"}, "max_output_tokens": 20000})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}


def test_signed_thinking_survives_a_round_trip_through_the_client():
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "tool_use",
              "content": [{"type": "thinking", "thinking": "I should list files.", "signature": "sig-abc"},
                          {"type": "tool_use", "id": "toolu_9", "name": "exec_command", "input": {"cmd": "ls"}}],
              "usage": {"input_tokens": 10, "output_tokens": 5}}
    request = {"input": "list files", "tools": [SHELL], "reasoning": {"effort": "low"}, "max_output_tokens": 5000}
    response = messages_response_to_responses(answer, model="anthropic/claude-x", echo=response_echo(request),
                                              tools=responses_tool_names(request))
    Response.model_validate(response)
    reasoning, call = response["output"]
    assert reasoning["type"] == "reasoning" and reasoning["content"] == [{"type": "reasoning_text",
                                                                          "text": "I should list files."}]
    assert "sig-abc" not in orjson.dumps(response).decode().replace(reasoning["encrypted_content"], "")
    # The client sends the items back with the tool's output: Anthropic gets its signed block first.
    follow_up = {**request, "input": [{"role": "user", "content": "list files"}, reasoning, call,
                                      {"type": "function_call_output", "call_id": "toolu_9", "output": "a.txt"}]}
    out = to_messages(follow_up)
    assert out["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "I should list files.", "signature": "sig-abc"},
        {"type": "tool_use", "id": "toolu_9", "name": "exec_command", "input": {"cmd": "ls"}}]
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}  # signed loop: thinking stays on


def test_reasoning_items_of_other_providers_are_not_sent_as_thinking():
    body = {"input": [{"role": "user", "content": "hi"},
                      {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-openai-blob"},
                      {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}]}
    assert to_messages(body)["messages"][1] == {"role": "assistant", "content": "hello"}


# ------------------------------------------------------------------ answers (JSON)

CHAT_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "qwen",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me look.", "reasoning_content": "The user wants files.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "apply_patch",
                                                              "arguments": orjson.dumps({"input": PATCH}).decode()}},
            {"id": "call_3", "type": "function", "function": {"name": "crm__lookup", "arguments": '{"id":"7"}'}}]}}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
              "prompt_tokens_details": {"cached_tokens": 40}, "completion_tokens_details": {"reasoning_tokens": 5}},
}
REQUEST = {"model": "auto", "input": "hi", "tools": [SHELL, APPLY_PATCH, NAMESPACE], "instructions": "Be brief.",
           "metadata": {"k": "v"}, "max_output_tokens": 500}


def answer_from_chat(answer=CHAT_ANSWER, request=REQUEST):
    out = chat_response_to_responses(answer, model="local/qwen", echo=response_echo(request),
                                     tools=responses_tool_names(request))
    return out, Response.model_validate(out)


def test_chat_answer_becomes_a_response():
    out, parsed = answer_from_chat()
    assert out["object"] == "response" and out["id"].startswith("resp_") and out["status"] == "completed"
    assert out["model"] == "local/qwen"
    assert [item["type"] for item in out["output"]] == ["reasoning", "message", "function_call",
                                                        "custom_tool_call", "function_call"]
    reasoning, message, shell, patch, lookup = out["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "The user wants files."}]
    assert message["content"] == [{"type": "output_text", "text": "Let me look.", "annotations": [], "logprobs": []}]
    assert message["role"] == "assistant" and message["status"] == "completed"
    assert (shell["call_id"], shell["name"], shell["arguments"], shell["status"]) == (
        "call_1", "exec_command", '{"cmd":"ls"}', "completed")
    assert (patch["call_id"], patch["name"], patch["input"]) == ("call_2", "apply_patch", PATCH)
    assert (lookup["name"], lookup["namespace"], lookup["arguments"]) == ("lookup", "crm", '{"id":"7"}')
    assert out["usage"] == {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 0},
                            "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 5},
                            "total_tokens": 120}
    assert (out["instructions"], out["metadata"], out["max_output_tokens"]) == ("Be brief.", {"k": "v"}, 500)
    assert out["tools"] == REQUEST["tools"]
    assert parsed.output_text == "Let me look."


def test_a_length_stop_is_an_incomplete_response():
    answer = {**CHAT_ANSWER, "choices": [{"index": 0, "finish_reason": "length",
                                          "message": {"role": "assistant", "content": "It was a dark"}}]}
    out, _ = answer_from_chat(answer)
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}


def test_anthropic_answer_becomes_a_response():
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "end_turn",
              "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there."}],
              "usage": {"input_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5,
                        "output_tokens": 4}}
    out = messages_response_to_responses(answer, model="anthropic/claude", echo=response_echo({}),
                                         tools=responses_tool_names({}))
    parsed = Response.model_validate(out)
    assert parsed.output_text == "Hello there."
    assert out["usage"]["input_tokens"] == 45 and out["usage"]["input_tokens_details"] == {"cached_tokens": 30, "cache_write_tokens": 5}


def test_provider_errors_come_in_the_responses_shape():
    body = orjson.loads(error_to_responses(429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'))
    assert body == {"error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": None}}


# ------------------------------------------------------------------ streams


def parse_sse(raw: bytes) -> list[dict]:
    """An independent reading of the wire format: every event named, data its JSON."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = orjson.loads(data[6:])
        assert payload["type"] == name[7:]
        events.append(payload)
    return events


def check_stream(raw: bytes, tools=()) -> tuple[list[dict], object]:
    """Validate every event with the SDK's types and accumulate them with its stream state."""
    events = parse_sse(raw)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state = ResponseStreamState(input_tools=list(tools) or omit, text_format=omit)
    for event in events:
        state.handle_event(EVENTS.validate_python(event))
    terminal = [e["type"] for e in events if e["type"] in ("response.completed", "response.incomplete",
                                                            "response.failed")]
    assert len(terminal) == 1 and events[-1]["type"] == terminal[0]
    assert events[0]["type"] == "response.created" and events[1]["type"] == "response.in_progress"
    return events, state


def feed(translator, chunks: list[bytes]) -> bytes:
    return b"".join(translator.feed(c) for c in chunks) + translator.finish()


def chat_chunk(delta=None, finish=None, **extra):
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                                     "model": "qwen", "choices": choices, **extra}) + b"\n\n"


CHAT_STREAM = [
    chat_chunk({"role": "assistant", "content": ""}),
    chat_chunk({"reasoning_content": "Think"}), chat_chunk({"reasoning_content": "ing."}),
    chat_chunk({"content": "Hel"}), chat_chunk({"content": "lo"}),
    chat_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "exec_command", "arguments": ""}}]}),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"cmd":'}}]}),
    chat_chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                "function": {"name": "apply_patch", "arguments": '{"input": "*** Begin'}}]}),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"ls"}'}}]}),  # interleaved
    chat_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ' Patch\\n"}'}}]}),
    chat_chunk({}, "tool_calls"),
    chat_chunk(usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
    b"data: [DONE]\n\n",
]


def stream_from_chat(chunks, request=REQUEST):
    return ChatStreamToResponses(model="local/qwen", echo=response_echo(request), tools=responses_tool_names(request))


def test_chat_stream_becomes_the_responses_event_sequence():
    translator = stream_from_chat(CHAT_STREAM)
    raw = feed(translator, CHAT_STREAM)
    events, state = check_stream(raw, REQUEST["tools"])
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done", "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert final["output"][2]["arguments"] == '{"cmd":"ls"}'  # fragments of interleaved calls kept apart
    assert final["output"][3] == {**final["output"][3], "type": "custom_tool_call", "name": "apply_patch",
                                  "input": "*** Begin Patch\n", "call_id": "call_2"}
    assert final["usage"]["input_tokens"] == 9 and final["usage"]["output_tokens"] == 4
    assert translator.response == final
    # The SDK, reading the same events, ends with the same answer.
    assert state._completed_response.output_text == "Hello"
    assert [item.type for item in state._completed_response.output] == [
        "reasoning", "message", "function_call", "custom_tool_call"]


def test_the_stream_is_the_same_whatever_the_chunking():
    whole = b"".join(CHAT_STREAM)
    reference = [dict(e, response=None) if "response" in e else e
                 for e in parse_sse(feed(stream_from_chat(CHAT_STREAM), [whole]))]
    for cut in range(1, len(whole), 97):
        events = parse_sse(feed(stream_from_chat(CHAT_STREAM), [whole[:cut], whole[cut:]]))
        events = [dict(e, response=None) if "response" in e else e for e in events]
        assert [strip_ids(e) for e in events] == [strip_ids(e) for e in reference]


def strip_ids(event):
    text = orjson.dumps(event).decode()
    return re.sub(r'"(resp|msg|fc|ctc|rs)_[0-9a-f]{48}"', '"ID"', text)


def test_a_chat_stream_cut_short_ends_with_response_failed():
    translator = stream_from_chat(CHAT_STREAM)
    raw = feed(translator, CHAT_STREAM[:5])
    events, _ = check_stream(raw)
    failed = events[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "upstream stream ended before completion"}
    assert failed["response"]["output"][-1]["status"] == "incomplete"


def test_an_error_chunk_ends_the_stream_with_response_failed():
    chunks = CHAT_STREAM[:3] + [b'data: {"error": {"message": "quota exceeded", "code": 429}}\n\n']
    events, _ = check_stream(feed(stream_from_chat(chunks), chunks))
    assert events[-1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "quota exceeded"}


def sse(name, data):
    return f"event: {name}\ndata: {orjson.dumps(data).decode()}\n\n".encode()


ANTHROPIC_STREAM = [
    sse("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1,
                                                              "cache_read_input_tokens": 4}}}),
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "thinking_delta", "thinking": "Need a file."}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "signature_delta", "signature": "sig-xyz"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
    b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
    sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "On it."}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
    sse("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {}}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": '{"input": "*** Begin'}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 2,
                                "delta": {"type": "input_json_delta", "partial_json": ' Patch\\n"}'}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 2}),
    sse("content_block_start", {"type": "content_block_start", "index": 3, "content_block": {
        "type": "tool_use", "id": "toolu_2", "name": "exec_command", "input": {}}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 3,
                                "delta": {"type": "input_json_delta", "partial_json": '{"cmd": "ls"}'}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 3}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"output_tokens": 30}}),
    sse("message_stop", {"type": "message_stop"}),
]


def stream_from_messages(request=REQUEST):
    return MessagesStreamToResponses(model="anthropic/claude", echo=response_echo(request),
                                     tools=responses_tool_names(request))


def test_anthropic_stream_becomes_the_responses_event_sequence():
    translator = stream_from_messages()
    events, _ = check_stream(feed(translator, ANTHROPIC_STREAM), REQUEST["tools"])
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed"
    reasoning, message, patch, shell = final["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Need a file."}]
    assert reasoning["encrypted_content"]  # the signed block, for the next request
    assert message["content"][0]["text"] == "On it."
    assert (patch["type"], patch["input"]) == ("custom_tool_call", "*** Begin Patch\n")
    assert (shell["type"], shell["arguments"]) == ("function_call", '{"cmd": "ls"}')
    assert final["usage"] == {"input_tokens": 16, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                              "output_tokens": 30,
                              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 46}
    # Handing the reasoning item back gives Anthropic its signed block.
    follow_up = to_messages({"input": [{"role": "user", "content": "go"}, reasoning, message, patch,
                                       {"type": "custom_tool_call_output", "call_id": "toolu_1", "output": "ok"}]})
    assert follow_up["messages"][1]["content"][0] == {"type": "thinking", "thinking": "Need a file.",
                                                      "signature": "sig-xyz"}


def test_an_anthropic_error_event_ends_the_stream_with_response_failed():
    chunks = ANTHROPIC_STREAM[:8] + [sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                               "message": "Overloaded"}})]
    events, _ = check_stream(feed(stream_from_messages(), chunks))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "Overloaded"}


def test_an_anthropic_max_tokens_stop_is_incomplete():
    chunks = ANTHROPIC_STREAM[:9] + [
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 3}}),
        sse("message_stop", {"type": "message_stop"})]
    events, _ = check_stream(feed(stream_from_messages(), chunks))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_the_rewriter_hands_a_finished_stream_over_once():
    from filter.response_rewriter import ResponseRewriter
    from filter.upstream import ResponseTranslation, responses_context

    rewriter = ResponseRewriter(ResponseTranslation.CHAT_TO_RESPONSES, stream=True, model="local/qwen",
                                responses=responses_context(REQUEST))
    rewriter.on_headers(200)
    handed = []
    for chunk in [*CHAT_STREAM, b": trailing comment\n\n"]:
        rewriter.on_body(chunk, False)
        if rewriter.finished_response is not None:
            handed.append(rewriter.finished_response)
            rewriter.finished_response = None
    rewriter.on_body(b"", True)
    assert rewriter.finished_response is None
    assert [r["status"] for r in handed] == ["completed"]

"""Request-body translation: OpenAI Chat Completions <-> Anthropic Messages."""

import copy

import pytest

from filter.translation import (
    DROPPED_CHAT_FIELDS,
    DROPPED_MESSAGES_FIELDS,
    TRANSLATED_CHAT_FIELDS,
    TRANSLATED_MESSAGES_FIELDS,
    TranslationError,
    chat_request_to_messages,
    messages_request_to_chat,
)

PNG = "iVBORw0KGgo="


def to_messages(body, **kw):
    kw.setdefault("model", "claude-x")
    kw.setdefault("default_max_tokens", 4096)
    return chat_request_to_messages(body, **kw)


def to_chat(body, **kw):
    kw.setdefault("model", "gpt-x")
    return messages_request_to_chat(body, **kw)


# ---------------------------------------------------------------- OpenAI -> Anthropic


def test_minimal_request_uses_upstream_model_and_default_max_tokens():
    out = to_messages({"model": "alias", "messages": [{"role": "user", "content": "hi"}]})
    assert out == {"model": "claude-x", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}


def test_max_completion_tokens_wins_over_max_tokens():
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "max_completion_tokens": 20}
    assert to_messages(body)["max_tokens"] == 20
    del body["max_completion_tokens"]
    assert to_messages(body)["max_tokens"] == 10


def test_invalid_max_tokens_is_rejected():
    with pytest.raises(TranslationError):
        to_messages({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "x"})


def test_system_and_developer_messages_become_top_level_system():
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "use French"}]},
            {"role": "user", "content": "hi"},
        ]
    }
    out = to_messages(body)
    assert out["system"] == [{"type": "text", "text": "be brief"}, {"type": "text", "text": "use French"}]
    assert out["messages"] == [{"role": "user", "content": "hi"}]


def test_single_system_string_stays_a_string():
    out = to_messages({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}]})
    assert out["system"] == "S"


def test_multi_turn_text():
    body = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]},
        ]
    }
    assert to_messages(body)["messages"] == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]},
    ]


def test_images_data_url_and_http_url():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ]
    }
    content = to_messages(body)["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


def test_non_base64_data_url_is_rejected():
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xx"}}]}]}
    with pytest.raises(TranslationError):
        to_messages(body)


def test_audio_part_is_rejected():
    body = {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}]}
    with pytest.raises(TranslationError) as exc:
        to_messages(body)
    assert exc.value.param == "messages[0].content[0]"


def test_pdf_file_part_becomes_document():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}],
            }
        ]
    }
    block = to_messages(body)["messages"][0]["content"][0]
    assert block == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        "title": "a.pdf",
    }


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "now"}},
]


def test_tool_definitions():
    out = to_messages({"messages": [{"role": "user", "content": "x"}], "tools": TOOLS})
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out


def tool_conversation():
    return [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rainy"}]},
    ]


def test_tool_calls_and_results_keep_ids_and_results_merge():
    out = to_messages({"messages": tool_conversation(), "tools": TOOLS})
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "rainy"}]},
        ],
    }
    assert len(out["messages"]) == 3


def test_user_message_after_tool_results_joins_the_same_turn():
    msgs = tool_conversation() + [{"role": "user", "content": "and tomorrow?"}]
    out = to_messages({"messages": msgs})
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][2]["content"][-1] == {"type": "text", "text": "and tomorrow?"}


def test_assistant_tool_call_without_content_and_bad_arguments():
    msgs = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"},
    ]
    out = to_messages({"messages": msgs})
    assert out["messages"][1]["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "now"}}, {"type": "tool", "name": "now"}),
    ],
)
def test_tool_choice(choice, expected):
    out = to_messages({"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice})
    assert out["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_use():
    body = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "parallel_tool_calls": False}
    assert to_messages(body)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body["tool_choice"] = "required"
    assert to_messages(body)["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_tool_choice_without_tools_is_not_sent():
    out = to_messages({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none"})
    assert "tool_choice" not in out and "tools" not in out


@pytest.mark.parametrize(("stop", "expected"), [("END", ["END"]), (["a", "b"], ["a", "b"]), (None, None)])
def test_stop_sequences(stop, expected):
    out = to_messages({"messages": [{"role": "user", "content": "x"}], "stop": stop})
    assert out.get("stop_sequences") == expected


def test_sampling_stream_and_user():
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.4,
        "top_p": 0.9,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
    }
    out = to_messages(body)
    assert out["temperature"] == 0.4 and out["top_p"] == 0.9
    assert out["stream"] is True and "stream_options" not in out
    assert out["metadata"] == {"user_id": "u-1"}


def test_temperature_is_clamped_to_anthropic_range():
    out = to_messages({"messages": [{"role": "user", "content": "x"}], "temperature": 1.7})
    assert out["temperature"] == 1.0


def test_dropped_fields_are_not_forwarded():
    body = {"messages": [{"role": "user", "content": "x"}], "model": "m"}
    for name in DROPPED_CHAT_FIELDS:
        body[name] = {"junk": 1} if name in ("metadata", "response_format") else 1
    body["unknown_vendor_field"] = True
    out = to_messages(body)
    assert set(out) == {"model", "max_tokens", "messages"}


def test_field_lists_are_immutable_and_disjoint():
    for listing in (DROPPED_CHAT_FIELDS, DROPPED_MESSAGES_FIELDS, TRANSLATED_CHAT_FIELDS, TRANSLATED_MESSAGES_FIELDS):
        assert isinstance(listing, tuple)
    assert not set(DROPPED_CHAT_FIELDS) & set(TRANSLATED_CHAT_FIELDS)
    assert not set(DROPPED_MESSAGES_FIELDS) & set(TRANSLATED_MESSAGES_FIELDS)
    for name in ("logprobs", "n", "presence_penalty", "frequency_penalty", "seed", "response_format"):
        assert name in DROPPED_CHAT_FIELDS
    for name in ("top_k", "service_tier"):
        assert name in DROPPED_MESSAGES_FIELDS


def test_reasoning_effort_enables_thinking_on_top_of_default_max_tokens():
    body = {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium", "temperature": 0.2}
    out = to_messages(body)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert out["max_tokens"] == 4096 + 8192
    assert "temperature" not in out


def test_reasoning_budget_is_kept_below_explicit_max_tokens():
    body = {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high", "max_tokens": 5000}
    out = to_messages(body)
    assert out["max_tokens"] == 5000
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 4999}
    body["max_tokens"] = 500  # no room for the minimum budget
    assert "thinking" not in to_messages(body)


def test_reasoning_effort_none_and_forced_tool_leave_thinking_off():
    body = {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "none"}
    assert "thinking" not in to_messages(body)
    body = {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low", "tools": TOOLS, "tool_choice": "required"}
    assert "thinking" not in to_messages(body)


def test_thinking_left_off_in_tool_loop_without_signed_thinking():
    body = {"messages": tool_conversation(), "reasoning_effort": "low", "tools": TOOLS}
    assert "thinking" not in to_messages(body)


def test_signed_thinking_blocks_are_handed_back():
    msgs = tool_conversation()
    msgs[1]["thinking_blocks"] = [{"type": "thinking", "thinking": "hmm", "signature": "sig"}]
    msgs[1]["reasoning_content"] = "hmm"
    out = to_messages({"messages": msgs, "reasoning_effort": "low", "tools": TOOLS})
    assert out["messages"][1]["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_input_body_is_not_mutated():
    body = {"messages": tool_conversation(), "tools": TOOLS, "reasoning_effort": "low", "stop": "x"}
    before = copy.deepcopy(body)
    to_messages(body)
    assert body == before


def test_unknown_role_is_rejected():
    with pytest.raises(TranslationError):
        to_messages({"messages": [{"role": "wizard", "content": "x"}]})
    with pytest.raises(TranslationError):
        to_messages({"messages": []})


# ---------------------------------------------------------------- Anthropic -> OpenAI


def test_messages_minimal_request():
    out = to_chat({"model": "claude", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    assert out == {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 100}


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("be brief", "be brief"),
        ([{"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "two"}], "one\n\ntwo"),
    ],
)
def test_messages_system_prompt(system, expected):
    out = to_chat({"max_tokens": 1, "system": system, "messages": [{"role": "user", "content": "hi"}]})
    assert out["messages"][0] == {"role": "system", "content": expected}


def test_messages_multi_turn_and_text_blocks_become_strings():
    body = {
        "max_tokens": 1,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
            {"role": "user", "content": "d"},
        ],
    }
    assert to_chat(body)["messages"] == [
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]


def test_messages_images():
    body = {
        "max_tokens": 1,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "text", "text": "describe"},
                ],
            }
        ],
    }
    assert to_chat(body)["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "describe"},
    ]


def test_images_round_trip():
    chat = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "http://h/i.gif"}},
                ],
            }
        ]
    }
    back = to_chat(to_messages(chat))
    assert back["messages"] == chat["messages"]


def test_messages_tools_tool_use_and_results():
    body = {
        "max_tokens": 1,
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}},
        ],
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "need tool", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "rainy"}], "is_error": False},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    }
    out = to_chat(body)
    assert out["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}}
    ]
    assert out["messages"][1] == {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "need tool",
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ],
    }
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rainy"},
        {"role": "user", "content": "thanks"},
    ]


def test_tool_conversation_round_trip_keeps_ids():
    chat = {"messages": tool_conversation(), "tools": TOOLS}
    back = to_chat(to_messages(chat))
    calls = back["messages"][1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert [m.get("tool_call_id") for m in back["messages"][2:]] == ["call_1", "call_2"]
    assert back["tools"][0]["function"]["name"] == "get_weather"


def test_tool_result_images_follow_as_user_message():
    body = {
        "max_tokens": 1,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {"type": "text", "text": "shot"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                        ],
                    }
                ],
            }
        ],
    }
    out = to_chat(body)["messages"]
    assert out[0] == {"role": "tool", "tool_call_id": "t", "content": "shot"}
    assert out[1] == {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_messages_tool_choice(choice, expected):
    body = {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice}
    out = to_chat(body)
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_disable_parallel_tool_use():
    body = {
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }
    out = to_chat(body)
    assert out["parallel_tool_calls"] is False and out["tool_choice"] == "auto"
    assert to_messages({"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, **{k: out[k] for k in ("tool_choice", "parallel_tool_calls")}})[
        "tool_choice"
    ] == {"type": "auto", "disable_parallel_tool_use": True}


def test_server_tools_are_rejected():
    body = {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    with pytest.raises(TranslationError):
        to_chat(body)


def test_messages_sampling_stop_stream_metadata_and_dropped_fields():
    body = {
        "model": "claude",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 5,
        "stop_sequences": ["###"],
        "stream": True,
        "metadata": {"user_id": "u-9", "other": 1},
        "service_tier": "auto",
        "container": "c",
        "cache_control": {"type": "ephemeral"},
    }
    out = to_chat(body)
    assert out == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "x"}],
        "max_completion_tokens": 50,
        "temperature": 0.7,
        "top_p": 0.8,
        "stop": ["###"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-9",
    }


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (2048, "low"), (8192, "medium"), (16384, "high"), (40000, "high")])
def test_thinking_budget_to_reasoning_effort(budget, effort):
    body = {"max_tokens": 50000, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled", "budget_tokens": budget}}
    assert to_chat(body)["reasoning_effort"] == effort


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort_round_trip(effort):
    anthropic = to_messages({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort})
    assert to_chat(anthropic)["reasoning_effort"] == effort


def test_disabled_or_adaptive_thinking_sends_no_effort_but_output_effort_does():
    base = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    assert "reasoning_effort" not in to_chat({**base, "thinking": {"type": "disabled"}})
    assert "reasoning_effort" not in to_chat({**base, "thinking": {"type": "adaptive"}})
    assert to_chat({**base, "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})["reasoning_effort"] == "high"


def test_messages_system_role_message_and_redacted_thinking():
    body = {
        "max_tokens": 5,
        "messages": [
            {"role": "system", "content": "late system"},
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "zz"}, {"type": "text", "text": "y"}]},
        ],
    }
    assert to_chat(body)["messages"] == [
        {"role": "system", "content": "late system"},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "y"},
    ]


def test_messages_input_body_is_not_mutated():
    body = {
        "max_tokens": 5,
        "system": [{"type": "text", "text": "s"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "stream": True,
    }
    before = copy.deepcopy(body)
    to_chat(body)
    assert body == before


def test_messages_assistant_empty_thinking_adds_no_reasoning_content():
    body = {
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "", "signature": "s"}, {"type": "text", "text": "y"}]},
        ],
    }
    assert to_chat(body)["messages"][1] == {"role": "assistant", "content": "y"}

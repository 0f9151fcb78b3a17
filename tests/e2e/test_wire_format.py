"""The bytes a client gets from a translated answer, read raw, not through an SDK.

SDKs forgive: the openai SDK ends a stream that never says `data: [DONE]`, the anthropic SDK one
that never sends `message_stop`. Clients that parse SSE themselves (curl scripts, other
languages, agents) do not. For each translation pair and each answer type this checks the status,
the headers, the event framing, the one terminal event and the token counts, against fixed values
(the stand-in providers answer with known text and usage).
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.gateway import Gateway

ASK = [{"role": "user", "content": "hello there"}]
# What the stand-ins answer (tests/standins.py), as the client must see it after translation.
ANTHROPIC_TEXT = "anthropic stand-in answering as claude-sonnet-4-5"
OPENAI_TEXT = "openai stand-in answering as gpt-4o"


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-ant-wire", "base_url": f"{upstream.url}/v1",
             "default": True},
            {"model": "openai/gpt-4o", "access_key": "sk-openai-wire", "base_url": f"{upstream.url}/v1"},
        ],
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path_factory.mktemp("wire")) as gw:
        yield gw


def post(gateway: Gateway, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body, timeout=30, headers={"anthropic-version": "2023-06-01"})


def sse_events(raw: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event; every event must end with a blank line."""
    assert raw.endswith("\n\n"), f"the stream does not end with a complete event: {raw[-80:]!r}"
    events = []
    for block in raw[:-2].split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            field, sep, value = line.partition(": ")
            assert sep, f"not an SSE field line: {line!r}"
            if field == "event":
                name = value
            else:
                assert field == "data", f"unexpected SSE field {field!r}"
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


# ---------------------------------------------------------------- chat client → Anthropic upstream


def test_chat_stream_from_anthropic_is_openai_sse_ending_in_one_done(gateway, fresh):
    response = post(gateway, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": ASK, "stream": True,
                                                      "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/event-stream"
    assert response.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-5"
    events = sse_events(response.text)
    assert all(name is None for name, _ in events)  # OpenAI's SSE has no event names
    assert events[-1] == (None, "[DONE]")
    assert [data for _, data in events].count("[DONE]") == 1
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == ANTHROPIC_TEXT
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    # include_usage: one last chunk with no choices and the usage (12 input + 4 cache reads, 9 output).
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 16, "completion_tokens": 9, "total_tokens": 25,
                                   "prompt_tokens_details": {"cached_tokens": 4}}
    assert fresh.received[0].path == "/v1/messages" and fresh.received[0].json["stream"] is True


def test_chat_stream_from_anthropic_has_no_usage_chunk_unless_asked(gateway, fresh):
    # OpenAI sends the usage chunk (choices: []) only for stream_options.include_usage: a client
    # that reads choices[0] of every chunk must not break on a translated stream.
    for options in ({}, {"stream_options": {"include_usage": False}}):
        response = post(gateway, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": ASK,
                                                          "stream": True, **options})
        assert response.status_code == 200
        events = sse_events(response.text)
        assert events[-1] == (None, "[DONE]")
        chunks = [json.loads(data) for _, data in events[:-1]]
        assert [len(c["choices"]) for c in chunks] == [1] * len(chunks)
        assert not any("usage" in c for c in chunks)
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == ANTHROPIC_TEXT
        assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"


def test_chat_json_from_anthropic_is_a_chat_completion(gateway, fresh):
    response = post(gateway, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": ASK})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-5"
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": ANTHROPIC_TEXT, "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 16, "completion_tokens": 9, "total_tokens": 25,
                             "prompt_tokens_details": {"cached_tokens": 4}}


# ---------------------------------------------------------------- Anthropic client → OpenAI upstream


def test_messages_stream_from_openai_is_anthropic_sse_ending_in_one_message_stop(gateway, fresh):
    response = post(gateway, "/v1/messages", {"model": "gpt-4o", "max_tokens": 50, "messages": ASK, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/event-stream"
    assert response.headers["x-switchyard-model"] == "openai/gpt-4o"
    events = sse_events(response.text)
    for name, data in events:  # every event is named, and its data says the same type
        assert name is not None and json.loads(data)["type"] == name
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", *["content_block_delta"] * 5, "content_block_stop",
                     "message_delta", "message_stop"]
    assert "[DONE]" not in response.text
    payloads = [json.loads(data) for _, data in events]
    start = payloads[0]["message"]
    assert (start["type"], start["role"], start["content"]) == ("message", "assistant", [])
    assert payloads[1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert text == OPENAI_TEXT
    # The stand-in reports 11 prompt tokens (3 of them cached) and 7 completion tokens.
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"
    assert payloads[-2]["usage"] == {"input_tokens": 8, "output_tokens": 7, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 3}
    sent = fresh.received[0]
    assert sent.path == "/v1/chat/completions" and sent.json["stream_options"] == {"include_usage": True}


def test_messages_json_from_openai_is_an_anthropic_message(gateway, fresh):
    response = post(gateway, "/v1/messages", {"model": "gpt-4o", "max_tokens": 50, "messages": ASK})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-switchyard-model"] == "openai/gpt-4o"
    body = response.json()
    assert (body["type"], body["role"], body["stop_reason"], body["stop_sequence"]) == ("message", "assistant",
                                                                                         "end_turn", None)
    assert body["content"] == [{"type": "text", "text": OPENAI_TEXT}]
    assert body["usage"] == {"input_tokens": 8, "output_tokens": 7, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 3}


def test_errors_translated_into_the_clients_format_keep_the_status(gateway, fresh):
    from tests.standins import json_reply

    fresh.behaviour = lambda r: json_reply(529, {"type": "error", "error": {"type": "overloaded_error",
                                                                            "message": "Overloaded"}})
    chat = post(gateway, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": ASK})
    assert chat.status_code == 529 and chat.headers["content-type"] == "application/json"
    assert chat.json()["error"]["message"] == "Overloaded"
    fresh.behaviour = lambda r: json_reply(429, {"error": {"message": "slow down", "type": "rate_limit_exceeded"}})
    messages = post(gateway, "/v1/messages", {"model": "gpt-4o", "max_tokens": 5, "messages": ASK})
    assert messages.status_code == 429 and messages.headers["content-type"] == "application/json"
    assert messages.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}

"""Embeddings, token counting and requests fitted to the model, through the real Envoy and filter
with the official SDKs. The stand-ins enforce the real APIs' rules (tests/provider_rules.py)."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from tests.gateway import Gateway
from tests.standins import Reply, anthropic_reply, count_tokens_reply

OPENAI_KEY = "sk-openai-upstream-e1"
ANTHROPIC_KEY = "sk-ant-upstream-e2"
HELLO = [{"role": "user", "content": "Hello, world!"}]


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = f"{upstream.url}/v1"
    config = {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": OPENAI_KEY, "base_url": base},
            {"model": "openai/text-embedding-3-small", "access_key": OPENAI_KEY, "base_url": base},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": ANTHROPIC_KEY, "base_url": base},
            {"model": "anthropic/claude-opus-4-1", "access_key": ANTHROPIC_KEY, "base_url": base,
             "fallbacks": ["anthropic/claude-3-5-haiku-20241022"]},
            {"model": "anthropic/claude-3-5-haiku-20241022", "access_key": ANTHROPIC_KEY, "base_url": base,
             "default": True},
        ],
        "model_aliases": {"embedder": {"target": "text-embedding-3-small"}, "fast": {"target": "gpt-4o"}},
        "routing": {"engine": "none", "unknown_model": "default"},
        "failover": {"retries": 0},
    }
    with Gateway(config, tmp_path_factory.mktemp("model-endpoints")) as gw:
        yield gw


@pytest.fixture
def oai(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)


@pytest.fixture
def claude(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0)


# ---------------------------------------------------------------- POST /v1/embeddings


def test_embeddings_by_literal_and_alias_pass_through_to_the_provider(oai, fresh):
    raw = oai.embeddings.with_raw_response.create(model="openai/text-embedding-3-small", input=["red", "blue"])
    result = raw.parse()
    assert raw.headers["x-switchyard-model"] == "openai/text-embedding-3-small"
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 2
    raw = oai.embeddings.with_raw_response.create(model="embedder", input="green", dimensions=4)
    assert raw.headers["x-switchyard-model"] == "openai/text-embedding-3-small"
    assert len(raw.parse().data[0].embedding) == 4
    first, second = fresh.received
    assert first.path == "/v1/embeddings" and first.json == {"model": "text-embedding-3-small",
                                                              "input": ["red", "blue"], "encoding_format": "base64"}
    assert second.json["dimensions"] == 4 and second.json["input"] == "green"
    assert first.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_embeddings_of_a_model_without_an_embeddings_api_are_refused_in_openai_shape(oai, fresh):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.embeddings.create(model="anthropic/claude-sonnet-4-5", input="hi")
    error = caught.value.body
    assert caught.value.status_code == 400 and error["code"] == "model_not_supported" and error["param"] == "model"
    assert "no embeddings endpoint" in error["message"]
    assert fresh.received == []


def test_embeddings_need_a_configured_name_and_an_input(gateway, oai, fresh):
    with pytest.raises(openai.NotFoundError) as caught:
        oai.embeddings.create(model="text-embedding-3-large", input="hi")
    assert caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError) as caught:
        oai.embeddings.create(model="auto", input="hi")  # routing serves conversations only
    assert "never by routing" in caught.value.body["message"]
    assert "openai/text-embedding-3-small" in caught.value.body["message"]
    answer = httpx.post(f"{gateway.url}/v1/embeddings", json={"model": "embedder"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "input"
    answer = httpx.post(f"{gateway.url}/v1/embeddings", json={"model": "embedder", "input": [[1, 2], "mixed"]})
    assert answer.status_code == 400
    assert fresh.received == []


# ---------------------------------------------------------------- POST /v1/messages/count_tokens


def test_count_tokens_for_an_anthropic_model_is_anthropics_own(claude, fresh):
    fresh.behaviour = lambda r: count_tokens_reply(r, input_tokens=1234)
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
    raw = claude.messages.with_raw_response.count_tokens(model="claude-sonnet-4-5", messages=HELLO, tools=tools,
                                                          system="Be brief.")
    assert raw.parse().input_tokens == 1234
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-5"
    assert "x-switchyard-token-count" not in raw.headers
    (request,) = fresh.received
    assert request.path == "/v1/messages/count_tokens"
    assert request.json == {"model": "claude-sonnet-4-5", "messages": HELLO, "tools": tools, "system": "Be brief."}
    assert request.headers["x-api-key"] == ANTHROPIC_KEY and "anthropic-version" in request.headers


def test_count_tokens_for_an_openai_model_is_an_estimate_said_so(claude, fresh):
    raw = claude.messages.with_raw_response.count_tokens(model="openai/gpt-4o", messages=HELLO)
    # "Hello, world!" is 4 o200k tokens ("Hello", ",", " world", "!"); OpenAI's chat format adds
    # 3 per message, 1 for the role and 3 for the reply: gpt-4o reports 11 prompt tokens for it.
    assert raw.parse().input_tokens == 11
    assert raw.headers["x-switchyard-token-count"] == "estimate"
    assert raw.headers["x-switchyard-model"] == "openai/gpt-4o"
    longer = claude.messages.count_tokens(model="fast", messages=HELLO * 3, system="You answer in one word.")
    assert longer.input_tokens > 3 * 11 - 6
    assert fresh.received == []


def test_count_tokens_checks_the_body_like_messages(gateway, fresh):
    answer = httpx.post(f"{gateway.url}/v1/messages/count_tokens", json={"model": "openai/gpt-4o", "messages": []})
    assert answer.status_code == 400 and answer.json()["type"] == "error"
    assert fresh.received == []


# ---------------------------------------------------------------- requests fitted to the model


CLAUDE_CODE_LIKE = {"max_tokens": 32_000, "thinking": {"type": "enabled", "budget_tokens": 16_000},
                    "messages": HELLO}


def test_a_request_the_gateway_sends_to_a_smaller_model_is_fitted_to_it(claude, fresh):
    raw = claude.messages.with_raw_response.create(model="claude-opus-4-7", timeout=30, **CLAUDE_CODE_LIKE)  # → the default
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-3-5-haiku-20241022"
    assert raw.parse().content[0].text.startswith("anthropic stand-in")
    (request,) = fresh.received
    assert request.json["max_tokens"] == 8192 and "thinking" not in request.json
    assert raw.headers["x-switchyard-fitted"] == "thinking dropped, max_tokens 32000->8192"


def test_a_request_for_a_model_the_client_named_goes_as_written_and_the_provider_answers(claude, fresh):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="claude-3-5-haiku-20241022", timeout=30, **CLAUDE_CODE_LIKE)
    assert "maximum allowed number of output tokens" in caught.value.body["error"]["message"]  # the provider's words
    (request,) = fresh.received
    assert request.json["max_tokens"] == 32_000 and request.json["thinking"]["budget_tokens"] == 16_000


def test_an_anthropic_client_on_gpt_4o_sends_what_openai_accepts(claude, fresh):
    with claude.messages.stream(model="openai/gpt-4o", **CLAUDE_CODE_LIKE) as stream:
        text = stream.get_final_text()
    assert text.startswith("openai stand-in")
    (request,) = fresh.received
    assert request.json["max_completion_tokens"] == 16_384 and "reasoning_effort" not in request.json


def test_translated_message_start_carries_the_input_tokens_the_provider_reports_first(gateway, fresh):
    def early_usage(request):
        usage = {"prompt_tokens": 57, "completion_tokens": 0, "total_tokens": 57,
                 "prompt_tokens_details": {"cached_tokens": 7}}

        def chunk(delta, finish=None, **extra):
            return b"data: " + json.dumps({"id": "chatcmpl-e", "object": "chat.completion.chunk", "created": 1,
                                           "model": "gpt-4o", "choices": [{"index": 0, "delta": delta,
                                                                           "finish_reason": finish}], **extra}).encode() + b"\n\n"
        return Reply(content_type="text/event-stream", chunks=[
            chunk({"role": "assistant", "content": ""}, usage=usage), chunk({"content": "Hi"}),
            chunk({}, "stop", usage={**usage, "completion_tokens": 2, "total_tokens": 59}), b"data: [DONE]\n\n"])

    fresh.behaviour = early_usage
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json={"model": "openai/gpt-4o", "max_tokens": 100,
                                                                   "stream": True, "messages": HELLO}) as answer:
        raw = b"".join(answer.iter_bytes())
    events = [block.split("\ndata: ", 1) for block in raw.decode().strip().split("\n\n")]
    assert events[0][0] == "event: message_start"
    usage = json.loads(events[0][1])["message"]["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (50, 7)
    assert events[-1][0] == "event: message_stop"


def test_a_fallback_gets_the_request_fitted_to_it_the_model_named_gets_it_as_written(claude, fresh):
    def primary_down(request):
        if request.json["model"] == "claude-opus-4-1":
            return Reply(status=503, body=b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}')
        return anthropic_reply(request)

    fresh.behaviour = primary_down
    raw = claude.messages.with_raw_response.create(model="claude-opus-4-1", timeout=30, **CLAUDE_CODE_LIKE)
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-3-5-haiku-20241022"
    assert raw.headers["x-switchyard-fitted"] == "thinking dropped, max_tokens 32000->8192"
    first, second = fresh.received
    assert first.json["max_tokens"] == 32_000 and first.json["thinking"]["budget_tokens"] == 16_000
    assert second.json["max_tokens"] == 8192 and "thinking" not in second.json

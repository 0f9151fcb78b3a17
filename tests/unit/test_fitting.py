"""Requests fitted to the model that serves them: limits clamped, refused parameters dropped."""

from __future__ import annotations

import json

from filter.catalog import Catalog, ModelSpec
from filter.config import parse_config
from filter.errors import ClientApi
from filter.fitting import fit_request
from filter.inbound import parse_client_request
from filter.upstream import build_upstream_request, client_named

GPT_4O = ModelSpec(128_000, 16_384, frozenset({"reasoning_effort"}), reasoning=False)
O3 = ModelSpec(200_000, 100_000, frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty",
                                            "logprobs", "top_logprobs", "logit_bias", "max_tokens"}), reasoning=True)
HAIKU_35 = ModelSpec(200_000, 8_192, frozenset({"reasoning_effort"}), reasoning=False)
SONNET_45 = ModelSpec(200_000, 64_000, frozenset(), reasoning=True)


def test_chat_to_gpt_4o_is_clamped_and_loses_reasoning_effort():
    body = {"model": "gpt-4o", "messages": [], "max_completion_tokens": 128_000, "reasoning_effort": "medium",
            "temperature": 0.2}
    changes = fit_request(body, "chat", GPT_4O)
    assert body == {"model": "gpt-4o", "messages": [], "max_completion_tokens": 16_384, "temperature": 0.2}
    assert changes == ["reasoning_effort dropped", "max_completion_tokens 128000->16384"]


def test_chat_to_an_openai_reasoning_model_drops_sampling_and_renames_max_tokens():
    body = {"messages": [], "max_tokens": 500, "temperature": 0.7, "top_p": 0.9, "presence_penalty": 1,
            "reasoning_effort": "high"}
    fit_request(body, "chat", O3)
    assert body == {"messages": [], "max_completion_tokens": 500, "reasoning_effort": "high"}


def test_a_request_within_the_limits_is_left_alone():
    body = {"messages": [], "max_completion_tokens": 1000, "temperature": 1}
    assert fit_request(body, "chat", GPT_4O) == [] and body["max_completion_tokens"] == 1000
    assert fit_request(body, "chat", ModelSpec()) == []  # a model the table does not know


def test_messages_to_an_older_claude_lose_thinking_and_effort_and_are_clamped():
    body = {"max_tokens": 32_000, "thinking": {"type": "enabled", "budget_tokens": 8192},
            "output_config": {"effort": "high", "format": {"type": "json_schema"}}, "messages": []}
    fit_request(body, "messages", HAIKU_35)
    assert body == {"max_tokens": 8192, "output_config": {"format": {"type": "json_schema"}}, "messages": []}


def test_a_thinking_budget_stays_below_the_clamped_max_tokens():
    spec = ModelSpec(200_000, 8_192, frozenset(), reasoning=True)
    body = {"max_tokens": 20_000, "thinking": {"type": "enabled", "budget_tokens": 16_384}}
    fit_request(body, "messages", spec)
    assert body == {"max_tokens": 8192, "thinking": {"type": "enabled", "budget_tokens": 8191}}
    small = {"max_tokens": 1000, "thinking": {"type": "enabled", "budget_tokens": 2048}}
    fit_request(small, "messages", SONNET_45)
    assert small == {"max_tokens": 1000}  # no budget of at least 1,024 fits below 1,000


def test_responses_bodies_are_fitted_too():
    body = {"max_output_tokens": 200_000, "reasoning": {"effort": "low"}, "temperature": 0.5,
            "include": ["reasoning.encrypted_content"], "input": "hi"}
    fit_request(body, "responses", GPT_4O)
    assert body == {"max_output_tokens": 16_384, "temperature": 0.5, "input": "hi"}


# ---------------------------------------------------------------- when a request is fitted


def setup(*entries, aliases=None):
    config = parse_config({"llm_providers": [{"access_key": "k", **e} for e in entries],
                           "model_aliases": aliases or {}}, "t.yaml", {})
    return config, Catalog.of(config)


def upstream(config, catalog, api, body, slug, named):
    request = parse_client_request(api, json.dumps(body).encode())
    provider = config.by_slug[slug]
    built = build_upstream_request(request, provider, {}, "", catalog.spec(provider), client_named_model=named)
    return json.loads(built.body), built.fitted


CLAUDE_CODE_LIKE = {"model": "claude-opus-4-1", "max_tokens": 32_000, "stream": True,
                    "thinking": {"type": "enabled", "budget_tokens": 31_999},
                    "messages": [{"role": "user", "content": "hi"}]}


def test_an_anthropic_request_translated_for_gpt_4o_is_one_openai_accepts():
    config, catalog = setup({"model": "openai/gpt-4o", "default": True})
    body, fitted = upstream(config, catalog, ClientApi.MESSAGES, CLAUDE_CODE_LIKE, "openai/gpt-4o", named=False)
    assert body["max_completion_tokens"] == 16_384 and "reasoning_effort" not in body
    assert fitted == ("reasoning_effort dropped", "max_completion_tokens 32000->16384")


def test_a_native_request_for_a_model_the_client_named_goes_as_written():
    config, catalog = setup({"model": "anthropic/claude-3-5-haiku-20241022"}, aliases={"fast": {"target": "claude-3-5-haiku-20241022"}})
    request = parse_client_request(ClientApi.MESSAGES, json.dumps({**CLAUDE_CODE_LIKE, "model": "fast"}).encode())
    provider = config.by_slug["anthropic/claude-3-5-haiku-20241022"]
    assert client_named(request, provider, config.aliases)
    body, fitted = upstream(config, catalog, ClientApi.MESSAGES, CLAUDE_CODE_LIKE, provider.slug, named=True)
    assert body["max_tokens"] == 32_000 and body["thinking"]["budget_tokens"] == 31_999 and fitted == ()


def test_a_native_request_routed_to_a_model_is_fitted_to_it():
    config, catalog = setup({"model": "anthropic/claude-3-5-haiku-20241022", "default": True})
    body, fitted = upstream(config, catalog, ClientApi.MESSAGES, CLAUDE_CODE_LIKE,
                            "anthropic/claude-3-5-haiku-20241022", named=False)
    assert body["max_tokens"] == 8192 and "thinking" not in body
    assert "thinking dropped" in fitted


def test_a_chat_request_translated_for_claude_keeps_its_thinking_budget_below_max_tokens():
    config, catalog = setup({"model": "anthropic/claude-3-7-sonnet-20250219"})
    chat = {"model": "claude-3-7-sonnet-20250219", "max_completion_tokens": 100_000, "reasoning_effort": "xhigh",
            "messages": [{"role": "user", "content": "hi"}]}
    body, _ = upstream(config, catalog, ClientApi.CHAT, chat, "anthropic/claude-3-7-sonnet-20250219", named=True)
    assert body["max_tokens"] == 64_000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 32_768}

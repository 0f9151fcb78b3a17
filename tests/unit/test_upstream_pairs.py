"""The request a provider gets, for every client API × provider API pair: path, headers, the
body's model and limits, and what the gateway keeps to translate the answer. Fixed values."""

from __future__ import annotations

import json

import pytest

from filter.config import parse_config
from filter.errors import ClientApi
from filter.inbound import parse_client_request
from filter.translation import TranslationError
from filter.upstream import (
    ResponseTranslation,
    anthropic_query,
    build_upstream_request,
    client_credential,
    client_named,
    credential_header,
    upstream_api,
)

CONFIG = parse_config({"llm_providers": [
    {"model": "openai/gpt-4o", "access_key": "sk-openai", "default": True},
    {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-ant", "max_tokens": 777,
     "anthropic_version": "2023-01-01"},
    {"model": "groq/llama-3.3-70b", "access_key": "gsk"},
    {"model": "local/qwen", "base_url": "http://127.0.0.1:8080"},
    {"model": "azure_openai/dep", "access_key": "az", "base_url": "https://x.openai.azure.com"},
], "model_aliases": {"fast": {"target": "llama-3.3-70b"}}}, "t.yaml", {})
P = CONFIG.by_slug
HI = [{"role": "user", "content": "hi"}]


def build(api: ClientApi, body: dict, slug: str, headers=None, query="", **kw):
    request = parse_client_request(api, json.dumps(body).encode())
    return build_upstream_request(request, P[slug], headers or {}, query, **kw)


def sent(upstream) -> tuple[dict, dict]:
    return dict(upstream.set_headers), json.loads(upstream.body)


# ---------------------------------------------------------------- chat clients


def test_chat_to_openai_is_the_clients_body_with_the_providers_model():
    up = build(ClientApi.CHAT, {"model": "gpt-4o", "messages": HI, "temperature": 0.2}, "openai/gpt-4o",
               {"anthropic-beta": "x"})
    headers, body = sent(up)
    assert body == {"model": "gpt-4o", "messages": HI, "temperature": 0.2}
    assert headers[":path"] == "/v1/chat/completions" and headers["authorization"] == "Bearer sk-openai"
    assert headers["content-length"] == str(len(up.body))
    assert up.translation is None and up.responses is None
    assert set(up.remove_headers) >= {"x-api-key", "api-key", "anthropic-version", "anthropic-beta"}
    assert "accept-encoding" not in up.remove_headers and "authorization" not in up.remove_headers


def test_chat_to_anthropic_is_translated_with_the_entrys_version_and_max_tokens():
    up = build(ClientApi.CHAT, {"model": "claude-sonnet-4-5", "messages": HI}, "anthropic/claude-sonnet-4-5",
               {"anthropic-version": "2099-01-01", "anthropic-beta": "b"})
    headers, body = sent(up)
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 777
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert headers["anthropic-version"] == "2023-01-01"  # the entry's: the client spoke OpenAI's API
    assert headers["x-api-key"] == "sk-ant" and headers[":path"] == "/v1/messages"
    assert up.translation is ResponseTranslation.MESSAGES_TO_CHAT
    assert {"anthropic-beta", "accept-encoding", "authorization", "api-key"} <= set(up.remove_headers)
    assert "anthropic-version" not in up.remove_headers and "x-api-key" not in up.remove_headers


def test_messages_to_anthropic_keeps_the_clients_version_and_known_query():
    up = build(ClientApi.MESSAGES, {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": HI},
               "anthropic/claude-sonnet-4-5", {"anthropic-version": "2024-06-01", "anthropic-beta": "b"},
               query="?beta=true&key=sk-leak")
    headers, body = sent(up)
    assert body == {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": HI}
    assert headers[":path"] == "/v1/messages?beta=true"
    assert headers["anthropic-version"] == "2024-06-01"
    assert up.translation is None and "anthropic-beta" not in up.remove_headers
    without = build(ClientApi.MESSAGES, {"model": "m", "max_tokens": 5, "messages": HI}, "anthropic/claude-sonnet-4-5")
    assert dict(without.set_headers)["anthropic-version"] == "2023-01-01"


def test_messages_to_openai_is_translated():
    up = build(ClientApi.MESSAGES, {"model": "x", "max_tokens": 64, "messages": HI}, "groq/llama-3.3-70b",
               {"anthropic-version": "2023-06-01"})
    headers, body = sent(up)
    assert body["model"] == "llama-3.3-70b" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert headers[":path"] == "/openai/v1/chat/completions" and headers["authorization"] == "Bearer gsk"
    assert up.translation is ResponseTranslation.CHAT_TO_MESSAGES
    assert {"anthropic-version", "anthropic-beta", "accept-encoding"} <= set(up.remove_headers)


# ---------------------------------------------------------------- Responses clients


def test_responses_to_openai_passes_through_to_its_responses_endpoint():
    up = build(ClientApi.RESPONSES, {"model": "gpt-4o", "input": "hi", "store": False}, "openai/gpt-4o")
    headers, body = sent(up)
    assert body == {"model": "gpt-4o", "input": "hi", "store": False}
    assert headers[":path"] == "/v1/responses" and up.translation is None and up.responses is None
    assert "accept-encoding" not in up.remove_headers


def test_responses_to_anthropic_is_translated_and_the_context_kept():
    up = build(ClientApi.RESPONSES, {"model": "c", "input": "hi", "instructions": "be brief"},
               "anthropic/claude-sonnet-4-5", {"anthropic-beta": "b"})
    headers, body = sent(up)
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 777
    assert headers[":path"] == "/v1/messages" and headers["anthropic-version"] == "2023-01-01"
    assert up.translation is ResponseTranslation.MESSAGES_TO_RESPONSES
    assert {"anthropic-beta", "accept-encoding"} <= set(up.remove_headers)
    assert up.responses.history == [{"role": "user", "content": "hi"}] and up.responses.store is True


def test_responses_to_chat_only_providers_is_translated():
    items = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    up = build(ClientApi.RESPONSES, {"model": "q", "input": items, "store": False,
                                     "tools": [{"type": "custom", "name": "apply_patch"}]}, "local/qwen")
    headers, body = sent(up)
    assert body["model"] == "qwen" and headers[":path"] == "/v1/chat/completions"
    assert "authorization" not in headers
    assert up.translation is ResponseTranslation.CHAT_TO_RESPONSES
    assert up.responses.history == items and up.responses.store is False
    assert up.responses.tools.custom == frozenset({"apply_patch"})
    assert {"anthropic-version", "anthropic-beta"} <= set(up.remove_headers)


def test_upstream_api_by_client_and_provider():
    assert upstream_api(P["anthropic/claude-sonnet-4-5"], ClientApi.RESPONSES) is ClientApi.MESSAGES
    assert upstream_api(P["anthropic/claude-sonnet-4-5"]) is ClientApi.MESSAGES
    assert upstream_api(P["openai/gpt-4o"], ClientApi.RESPONSES) is ClientApi.RESPONSES
    assert upstream_api(P["openai/gpt-4o"], ClientApi.CHAT) is ClientApi.CHAT
    assert upstream_api(P["openai/gpt-4o"]) is ClientApi.CHAT
    assert upstream_api(P["groq/llama-3.3-70b"], ClientApi.RESPONSES) is ClientApi.CHAT
    assert upstream_api(P["azure_openai/dep"], ClientApi.RESPONSES) is ClientApi.RESPONSES


# ---------------------------------------------------------------- fitting to the model


def test_a_translated_request_is_fitted_and_says_what_changed():
    from filter.catalog import ModelSpec

    spec = ModelSpec(max_output_tokens=100)
    up = build(ClientApi.MESSAGES, {"model": "x", "max_tokens": 5000, "messages": HI}, "groq/llama-3.3-70b", spec=spec)
    assert sent(up)[1]["max_completion_tokens"] == 100 and up.fitted
    native = build(ClientApi.CHAT, {"model": "x", "max_tokens": 5000, "messages": HI}, "groq/llama-3.3-70b",
                   spec=spec, client_named_model=True)
    assert sent(native)[1]["max_tokens"] == 5000 and native.fitted == ()  # asked for by name: as sent
    chosen = build(ClientApi.CHAT, {"model": "auto", "max_tokens": 5000, "messages": HI}, "groq/llama-3.3-70b",
                   spec=spec, client_named_model=False)
    assert sent(chosen)[1]["max_tokens"] == 100 and chosen.fitted  # the gateway chose it: fitted


# ---------------------------------------------------------------- small helpers


@pytest.mark.parametrize("query, kept", [
    ("", ""), ("?beta=true", "?beta=true"), ("?key=sk-x", ""), ("?beta=true&key=sk-x", "?beta=true"),
    ("beta=true", "?beta=true"), ("?a=1&beta=true&b=2", "?beta=true"), ("?beta=a=b", "?beta=a=b"),
])
def test_anthropic_query_keeps_only_what_anthropic_knows(query, kept):
    assert anthropic_query(query) == kept


@pytest.mark.parametrize("headers, key", [
    ({}, None), ({"authorization": "Bearer c1"}, "c1"), ({"authorization": "bearer  c1 "}, "c1"),
    ({"authorization": "Basic c1"}, None), ({"authorization": "Bearer "}, None), ({"authorization": "c1"}, None),
    ({"authorization": "Bearer a b"}, "a b"),
    ({"x-api-key": "c2"}, "c2"), ({"api-key": "c3"}, "c3"), ({"x-api-key": "", "api-key": "c3"}, "c3"),
    ({"authorization": "Basic z", "api-key": "c3"}, "c3"), ({"authorization": "Bearer c1", "x-api-key": "c2"}, "c1"),
])
def test_client_credential(headers, key):
    assert client_credential(headers) == key


def test_credential_headers_per_interface():
    assert credential_header(P["openai/gpt-4o"]) == ("authorization", "Bearer sk-openai")
    assert credential_header(P["anthropic/claude-sonnet-4-5"]) == ("x-api-key", "sk-ant")
    assert credential_header(P["azure_openai/dep"]) == ("api-key", "az")
    assert credential_header(P["local/qwen"]) is None


def test_client_named_means_by_slug_id_or_alias():
    def named(model, slug):
        request = parse_client_request(ClientApi.CHAT, json.dumps({"model": model, "messages": HI}).encode())
        return client_named(request, P[slug], CONFIG.aliases)

    assert named("groq/llama-3.3-70b", "groq/llama-3.3-70b") and named("llama-3.3-70b", "groq/llama-3.3-70b")
    assert named("fast", "groq/llama-3.3-70b")
    assert not named("fast", "openai/gpt-4o") and not named("auto", "groq/llama-3.3-70b")
    request = parse_client_request(ClientApi.CHAT, json.dumps({"messages": HI}).encode())
    assert not client_named(request, P["openai/gpt-4o"], CONFIG.aliases)


def test_only_known_query_parameters_reach_anthropic_all_of_them_in_order():
    assert anthropic_query("?beta=true&x=1&beta=false") == "?beta=true&beta=false"


def test_the_path_is_the_same_in_the_request_and_its_header():
    for api, body, slug in ((ClientApi.CHAT, {"messages": HI}, "openai/gpt-4o"),
                            (ClientApi.MESSAGES, {"max_tokens": 5, "messages": HI}, "anthropic/claude-sonnet-4-5"),
                            (ClientApi.RESPONSES, {"input": "hi"}, "openai/gpt-4o")):
        up = build(api, body, slug)
        assert up.path == dict(up.set_headers)[":path"]


def test_by_default_a_native_request_is_the_clients_own_choice_and_not_fitted():
    from filter.catalog import ModelSpec

    up = build(ClientApi.CHAT, {"model": "x", "max_tokens": 5000, "messages": HI}, "groq/llama-3.3-70b",
               spec=ModelSpec(max_output_tokens=100))
    assert sent(up)[1]["max_tokens"] == 5000 and up.fitted == ()


def test_a_native_responses_request_the_gateway_chose_is_fitted_as_a_responses_request():
    from filter.catalog import ModelSpec

    up = build(ClientApi.RESPONSES, {"model": "auto", "input": "hi", "max_output_tokens": 5000}, "openai/gpt-4o",
               spec=ModelSpec(max_output_tokens=100), client_named_model=False)
    body = sent(up)[1]
    assert body["max_output_tokens"] == 100 and "max_tokens" not in body and "max_completion_tokens" not in body


def test_a_responses_only_provider_refuses_other_apis_clearly():
    config = parse_config({"llm_providers": [{"model": "chatgpt/gpt-5", "default": True}]},
                          "t.yaml", {"CHATGPT_ACCOUNT_ID": "acct"})
    request = parse_client_request(ClientApi.CHAT, json.dumps({"messages": HI}).encode())
    with pytest.raises(TranslationError) as caught:
        build_upstream_request(request, config.providers[0], {}, "")
    assert (caught.value.param, caught.value.message) == (
        "model", "chatgpt models are served through OpenAI's Responses API only (POST /v1/responses)")

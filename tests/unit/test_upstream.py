"""How each provider is called: path, credentials, body — pure, without Envoy."""

from __future__ import annotations

import json

import pytest

from filter.config import parse_config
from filter.errors import ClientApi
from filter.inbound import parse_client_request
from filter.upstream import ResponseTranslation, build_upstream_request

KEY = "sk-provider-key"


def upstream_for(slug: str, api=ClientApi.CHAT, headers=None, query="", **entry):
    config = parse_config({"llm_providers": [{"model": slug, "access_key": KEY, **entry}]}, "t.yaml", {})
    body = {"model": slug, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    request = parse_client_request(api, json.dumps(body).encode())
    return config.providers[0], build_upstream_request(request, config.providers[0], headers or {}, query)


@pytest.mark.parametrize(
    "slug, host, path",
    [
        ("openai/gpt-4o", "api.openai.com", "/v1/chat/completions"),
        ("gemini/gemini-2.5-flash", "generativelanguage.googleapis.com", "/v1beta/openai/chat/completions"),
        ("mistral/mistral-large-latest", "api.mistral.ai", "/v1/chat/completions"),
        ("deepseek/deepseek-chat", "api.deepseek.com", "/v1/chat/completions"),
        ("groq/llama-3.3-70b-versatile", "api.groq.com", "/openai/v1/chat/completions"),
        ("xai/grok-4", "api.x.ai", "/v1/chat/completions"),
        ("together_ai/meta-llama/Llama-3-70b", "api.together.xyz", "/v1/chat/completions"),
    ],
)
def test_openai_compatible_providers_use_bearer_auth_and_their_path(slug, host, path):
    provider, request = upstream_for(slug)
    headers = dict(request.set_headers)
    assert provider.upstream.host == host and provider.upstream.tls
    assert headers[":path"] == path
    assert headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.body)["model"] == slug.split("/", 1)[1]
    assert headers["content-length"] == str(len(request.body))
    assert "authorization" not in request.remove_headers  # overwritten, not removed
    assert {"x-api-key", "anthropic-version"} <= set(request.remove_headers)


def test_ollama_needs_no_key_and_is_plain_http():
    config = parse_config({"llm_providers": [{"model": "ollama/qwen2.5"}]}, "t.yaml", {})
    provider = config.providers[0]
    assert (provider.upstream.scheme, provider.upstream.port) == ("http", 11434)


def test_azure_deployment_path_and_api_key():
    _, request = upstream_for("azure_openai/my-deployment", base_url="https://contoso.openai.azure.com",
                              api_version="2025-01-01-preview")
    headers = dict(request.set_headers)
    assert headers[":path"] == "/openai/deployments/my-deployment/chat/completions?api-version=2025-01-01-preview"
    assert headers["api-key"] == KEY
    assert "authorization" in request.remove_headers


def test_anthropic_native_for_messages_clients_keeps_query_and_client_version():
    _, request = upstream_for("anthropic/claude-sonnet-4-5", api=ClientApi.MESSAGES,
                              headers={"anthropic-version": "2023-06-01"}, query="?beta=true")
    headers = dict(request.set_headers)
    assert headers[":path"] == "/v1/messages?beta=true"
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert request.translation is None
    assert "anthropic-beta" not in request.remove_headers


def test_chat_client_to_anthropic_is_translated_with_the_configured_version():
    _, request = upstream_for("anthropic/claude-sonnet-4-5", anthropic_version="2023-06-01", max_tokens=999)
    headers = dict(request.set_headers)
    assert headers[":path"] == "/v1/messages"
    assert headers["anthropic-version"] == "2023-06-01"
    assert request.translation is ResponseTranslation.MESSAGES_TO_CHAT
    body = json.loads(request.body)
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 5
    assert "accept-encoding" in request.remove_headers  # the gateway must read the answer


def test_messages_client_to_openai_is_translated():
    _, request = upstream_for("openai/gpt-4o", api=ClientApi.MESSAGES, headers={"anthropic-beta": "x"})
    assert request.translation is ResponseTranslation.CHAT_TO_MESSAGES
    assert dict(request.set_headers)[":path"] == "/v1/chat/completions"
    assert "anthropic-beta" in request.remove_headers


# ---------------------------------------------------------------- the Responses API


def responses_upstream(slug: str, body: dict, **entry):
    config = parse_config({"llm_providers": [{"model": slug, "access_key": KEY, **entry}]}, "t.yaml", {})
    request = parse_client_request(ClientApi.RESPONSES, json.dumps(body).encode())
    return build_upstream_request(request, config.providers[0], {"anthropic-version": "2023-06-01"}, "")


@pytest.mark.parametrize("slug, entry, path, translation", [
    ("openai/gpt-5", {}, "/v1/responses", None),
    ("chatgpt/gpt-5-codex", {}, "/backend-api/codex/responses", None),
    ("azure_openai/prod", {"base_url": "https://res.openai.azure.com"}, "/openai/v1/responses", None),
    ("groq/llama-3.3-70b-versatile", {}, "/openai/v1/chat/completions", ResponseTranslation.CHAT_TO_RESPONSES),
    ("anthropic/claude-sonnet-4-5", {}, "/v1/messages", ResponseTranslation.MESSAGES_TO_RESPONSES),
])
def test_responses_requests_go_native_or_translated(slug, entry, path, translation):
    upstream = responses_upstream(slug, {"model": slug, "input": "hi"}, **entry)
    headers = dict(upstream.set_headers)
    assert headers[":path"] == path and upstream.translation is translation
    assert (upstream.responses is None) == (translation is None)
    if slug.startswith("anthropic"):
        assert "anthropic-beta" in upstream.remove_headers and headers["anthropic-version"] == "2023-06-01"
    else:
        assert "anthropic-version" in upstream.remove_headers


def test_native_responses_requests_leave_out_reasoning_items_other_providers_made():
    own = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-openai"}
    made = {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "switchyard.anthropic.eyJ9"}
    body = {"model": "openai/gpt-5", "input": [{"role": "user", "content": "hi"}, own, made,
                                               {"role": "assistant", "content": "hello"}]}
    sent = json.loads(responses_upstream("openai/gpt-5", body).body)
    assert sent["input"] == [{"role": "user", "content": "hi"}, own, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize("client_headers", [{"authorization": "Bearer client-own-key"}, {"x-api-key": "client-own-key"},
                                            {"authorization": "bearer client-own-key"}])
@pytest.mark.parametrize("slug, header, value", [("openai/gpt-4o", "authorization", "Bearer client-own-key"),
                                                 ("anthropic/claude-sonnet-4-6", "x-api-key", "client-own-key")])
def test_passthrough_auth_sends_the_clients_key_in_the_providers_header(client_headers, slug, header, value):
    _, request = upstream_for(slug, headers=client_headers, passthrough_auth=True)
    headers = dict(request.set_headers)
    assert headers[header] == value
    assert KEY not in json.dumps(headers)  # the configured key is not used


def test_extra_headers_follow_the_credential_and_a_client_without_a_key_sends_none():
    config = parse_config({"llm_providers": [{"model": "openai/gpt-4o", "passthrough_auth": True,
                                              "headers": {"X-Org": "acme", "User-Agent": "KimiCLI/1.3"}}]}, "t.yaml", {})
    parsed = parse_client_request(ClientApi.CHAT, b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}')
    request = build_upstream_request(parsed, config.providers[0], {}, "")
    names = [name for name, _ in request.set_headers]
    assert "authorization" not in names and "authorization" in request.remove_headers
    assert ("x-org", "acme") in request.set_headers and ("user-agent", "KimiCLI/1.3") in request.set_headers


def test_chatgpt_models_answer_chat_clients_that_they_take_the_responses_api_only():
    from filter.translation import TranslationError

    config = parse_config({"model_providers": [{"model": "chatgpt/gpt-5.2"}]}, "t.yaml", {})
    request = parse_client_request(ClientApi.CHAT, b'{"model": "chatgpt/gpt-5.2", "messages": [{"role": "user", "content": "hi"}]}')
    with pytest.raises(TranslationError, match="Responses API only"):
        build_upstream_request(request, config.providers[0], {"authorization": "Bearer t"}, "")

"""Rewriting a client request for the provider that serves it: path, headers, body.

Pure: a parsed `ClientRequest` and the chosen `Provider` in, an `UpstreamRequest` out. The
translation between API families lives in `filter.translation`; this module only decides when
it is needed and what the provider's URL and credentials look like.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from filter.catalog import UNKNOWN, ModelSpec
from filter.config import Provider
from filter.errors import ClientApi
from filter.fitting import fit_request, should_fit
from filter.inbound import ClientRequest, encode_json
from filter.providers import CATALOGUE, Interface
from filter.translation import (
    ToolNames,
    TranslationError,
    chat_request_to_messages,
    messages_request_to_chat,
    response_echo,
    responses_request_to_chat,
    responses_request_to_messages,
    responses_tool_names,
    without_gateway_reasoning,
)

# Client credentials and gateway-internal headers never travel upstream.
CLIENT_AUTH_HEADERS = ("authorization", "x-api-key", "api-key")
ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")
# The only query parameters that reach Anthropic (Claude Code's ?beta=true); anything else a
# client puts there (?key=… for another provider) is dropped. The fast path keeps the same
# (envoy/fast_path.lua, envoy/switchyard_fast_path.c).
ANTHROPIC_QUERY_PARAMS = ("beta",)


class ResponseTranslation(str, Enum):
    """How the provider's response must be rewritten before the client sees it."""

    MESSAGES_TO_CHAT = "messages_to_chat"  # Anthropic upstream, OpenAI client
    CHAT_TO_MESSAGES = "chat_to_messages"  # OpenAI-compatible upstream, Anthropic client
    CHAT_TO_RESPONSES = "chat_to_responses"  # Chat Completions upstream, Responses client
    MESSAGES_TO_RESPONSES = "messages_to_responses"  # Anthropic upstream, Responses client


@dataclass(frozen=True, slots=True)
class ResponsesContext:
    """What a translated Responses answer needs of its request: the fields it repeats, how the
    tools were named upstream, and the conversation so far (kept with the answer when `store`)."""

    echo: dict
    tools: ToolNames
    history: list  # the input items, a previous response's included
    store: bool


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str
    set_headers: tuple[tuple[str, str], ...]
    remove_headers: tuple[str, ...]
    body: bytes
    translation: ResponseTranslation | None
    fitted: tuple[str, ...] = ()  # what was changed for the model (filter/fitting.py)
    responses: ResponsesContext | None = None  # set for translated Responses requests
    # A Chat client's translated stream ends with a usage chunk (no choices) only when it asked,
    # as OpenAI's does: stream_options.include_usage.
    usage_chunk: bool = False


# Providers whose own API has /responses: OpenAI (and a ChatGPT sign-in's Codex backend) and Azure
# OpenAI. Every other OpenAI-compatible server is sent Chat Completions.
_RESPONSES_PROVIDERS = ("openai", "chatgpt")


def speaks_responses(provider: Provider) -> bool:
    return provider.interface is Interface.AZURE_OPENAI or (
        provider.interface is Interface.OPENAI and provider.provider in _RESPONSES_PROVIDERS)


def upstream_api(provider: Provider, client: ClientApi | None = None) -> ClientApi:
    """The wire format of the provider's answer (for a Responses client: Responses when native)."""
    if provider.interface is Interface.ANTHROPIC:
        return ClientApi.MESSAGES
    if client is ClientApi.RESPONSES and speaks_responses(provider):
        return ClientApi.RESPONSES
    return ClientApi.CHAT


# The upstream wire format, in filter/fitting.py's names.
_WIRE = {ClientApi.CHAT: "chat", ClientApi.MESSAGES: "messages", ClientApi.RESPONSES: "responses"}


def responses_only(provider: Provider) -> bool:
    """A provider that serves OpenAI's Responses API and nothing else (a ChatGPT sign-in's Codex backend)."""
    known = CATALOGUE.get(provider.provider)
    return known is not None and known.responses_only


def provider_path(provider: Provider, endpoint: str | None = None) -> str:
    """The path of the provider's endpoint for the API it speaks (without the client's query);
    `endpoint` names another one of the same API (`embeddings`, `messages/count_tokens`)."""
    assert provider.upstream is not None
    prefix = provider.upstream.path_prefix
    if provider.interface is Interface.ANTHROPIC:
        return f"{prefix}/{endpoint or 'messages'}"
    if provider.interface is Interface.AZURE_OPENAI:
        # The prefix stands for `/openai/deployments` (Plano's rule: a base_url path replaces it).
        return (f"{prefix}/{provider.model_id}/{endpoint or 'chat/completions'}"
                f"?api-version={provider.azure_api_version}")
    return f"{prefix}/{endpoint or 'chat/completions'}"


def responses_path(provider: Provider) -> str:
    """The provider's Responses endpoint (Azure's is the v1 API's: the deployment is the body's model)."""
    assert provider.upstream is not None
    prefix = provider.upstream.path_prefix
    if provider.interface is Interface.AZURE_OPENAI:
        # The prefix stands for `/openai/deployments` (Plano's rule); the v1 API is beside it.
        return f"{prefix.removesuffix('/deployments')}/v1/responses"
    return f"{prefix}/responses"


def anthropic_query(query: str) -> str:
    """`?beta=true&key=sk-…` → `?beta=true`: the client's parameters Anthropic's API knows, as sent."""
    kept = [part for part in query.lstrip("?").split("&") if part.partition("=")[0] in ANTHROPIC_QUERY_PARAMS]
    return "?" + "&".join(kept) if kept else ""


def client_credential(client_headers: dict[str, str]) -> str | None:
    """The key a client presented: `Authorization: Bearer …` (OpenAI's), else `x-api-key`
    (Anthropic's) or `api-key` (Azure's)."""
    scheme, _, token = client_headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return client_headers.get("x-api-key") or client_headers.get("api-key") or None


def credential_header(provider: Provider, client_headers: dict[str, str] | None = None) -> tuple[str, str] | None:
    """The header that carries the provider's key — or, with passthrough_auth, the client's own,
    in the header the provider expects — or None when there is none."""
    if provider.passthrough_auth:
        key = client_credential(client_headers or {})
    else:
        key = provider.access_key.reveal() if provider.access_key else None
    if not key:
        return None
    if provider.interface is Interface.ANTHROPIC:
        return ("x-api-key", key)
    if provider.interface is Interface.AZURE_OPENAI:
        return ("api-key", key)
    return ("authorization", f"Bearer {key}")


def client_named(request: ClientRequest, provider: Provider, aliases: Mapping[str, Provider]) -> bool:
    """Whether the client asked for this model by name or alias (not a route, the default, a fallback)."""
    model = request.model
    return model is not None and (model in (provider.slug, provider.model_id) or aliases.get(model) is provider)


def build_upstream_request(
    request: ClientRequest, provider: Provider, client_headers: dict[str, str], query: str,
    spec: ModelSpec = UNKNOWN, client_named_model: bool = True, endpoint: str | None = None,
) -> UpstreamRequest:
    """The request Envoy forwards to `provider` (never called for the echo provider), fitted to
    what the model takes (`spec`, from filter/catalog.py) when translated or chosen by the gateway.
    `endpoint` sends a native request to another endpoint of the provider's API (`embeddings`,
    `messages/count_tokens`)."""
    assert endpoint is None or (request.api is ClientApi.MESSAGES) == (provider.interface is Interface.ANTHROPIC)
    if responses_only(provider) and request.api is not ClientApi.RESPONSES:
        raise TranslationError(f"{provider.provider} models are served through OpenAI's Responses API only "
                               "(POST /v1/responses)", param="model")
    path = provider_path(provider, endpoint)
    remove = list(CLIENT_AUTH_HEADERS)
    headers: list[tuple[str, str]] = []
    translation = None
    responses = None
    usage_chunk = False

    if request.api is ClientApi.RESPONSES:
        body, path, translation = _responses_body(request, provider, path)
        if translation is not None:
            responses = responses_context(request.body)
        if provider.interface is Interface.ANTHROPIC:
            headers.append(("anthropic-version", provider.anthropic_version))
            remove.append("anthropic-beta")
        else:
            remove.extend(ANTHROPIC_HEADERS)
    elif provider.interface is Interface.ANTHROPIC:
        if request.api is ClientApi.MESSAGES:
            request.body["model"] = provider.model_id
            body = request.body
            path += anthropic_query(query)  # keeps Claude Code's ?beta=true for Anthropic
            version = client_headers.get("anthropic-version") or provider.anthropic_version
        else:
            body = chat_request_to_messages(
                request.body, model=provider.model_id, default_max_tokens=provider.max_tokens
            )
            version = provider.anthropic_version
            translation = ResponseTranslation.MESSAGES_TO_CHAT
            usage_chunk = asks_for_usage(request.body)
            remove.append("anthropic-beta")
        headers.append(("anthropic-version", version))
    else:
        remove.extend(ANTHROPIC_HEADERS)
        if request.api is ClientApi.MESSAGES:
            body = messages_request_to_chat(request.body, model=provider.model_id)
            translation = ResponseTranslation.CHAT_TO_MESSAGES
        else:
            request.body["model"] = provider.model_id
            body = request.body
    fitted: list[str] = []
    if should_fit(translation is not None, client_named_model):
        fitted = fit_request(body, _WIRE[upstream_api(provider, request.api)], spec)
    credential = credential_header(provider, client_headers)
    if credential is not None:
        headers.append(credential)
    headers.extend((name, value.reveal()) for name, value in provider.headers)  # Plano's `headers`

    if translation is not None:
        # The gateway must read the response to translate it: ask for it uncompressed.
        remove.append("accept-encoding")
    payload = encode_json(body)  # a translation may nest one level deeper than the client did
    headers.append((":path", path))
    headers.append(("content-length", str(len(payload))))
    set_names = {name for name, _ in headers}
    return UpstreamRequest(
        path=path,
        set_headers=tuple(headers),
        remove_headers=tuple(h for h in remove if h not in set_names),
        body=payload,
        translation=translation,
        fitted=tuple(fitted),
        responses=responses,
        usage_chunk=usage_chunk,
    )


def asks_for_usage(body: dict) -> bool:
    """A Chat Completions stream request's `stream_options.include_usage: true`."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _responses_body(request: ClientRequest, provider: Provider, own_path: str):
    """(body, path, translation) for a Responses request (`own_path`: the provider's endpoint for the
    API it speaks): passed through to a provider that has the API (model rewritten), translated to
    Messages or Chat Completions for the others."""
    if provider.interface is Interface.ANTHROPIC:
        body = responses_request_to_messages(request.body, model=provider.model_id,
                                             default_max_tokens=provider.max_tokens)
        return body, own_path, ResponseTranslation.MESSAGES_TO_RESPONSES
    if speaks_responses(provider):
        request.body["model"] = provider.model_id
        # Reasoning items another provider made through the gateway mean nothing to OpenAI (it
        # refuses encrypted content it did not make): a conversation routed on to it goes without them.
        if "input" in request.body:
            request.body["input"] = without_gateway_reasoning(request.body["input"])
        return request.body, responses_path(provider), None
    body = responses_request_to_chat(request.body, model=provider.model_id)
    return body, own_path, ResponseTranslation.CHAT_TO_RESPONSES


def responses_context(body: dict) -> ResponsesContext:
    items = body.get("input")
    history = [{"role": "user", "content": items}] if isinstance(items, str) else list(items or ())
    return ResponsesContext(response_echo(body), responses_tool_names(body), history, body.get("store") is not False)

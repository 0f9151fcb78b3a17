"""POST /v1/embeddings: OpenAI's embeddings API, passed through to OpenAI-compatible providers.

The model is a name the client gives (precedence rules 1–3: a provider slug, a bare model id or an
alias); routing and the default model serve conversations, not embeddings. Pure functions.
"""

from __future__ import annotations

from filter.config import Config, Provider
from filter.errors import GatewayError
from filter.inbound import ClientRequest
from filter.providers import Interface
from filter.resolve import Decision, DecisionKind, resolve
from filter.upstream import UpstreamRequest, build_upstream_request

EMBEDDING_INTERFACES = (Interface.OPENAI, Interface.AZURE_OPENAI)


def embeddings_decision(config: Config, request: ClientRequest) -> Decision:
    """The configured model that serves this embeddings request. Raises GatewayError (4xx)."""
    try:
        outcome = resolve(config, request.model, None)
    except GatewayError:
        outcome = None
    if not isinstance(outcome, Decision) or outcome.kind not in (DecisionKind.LITERAL, DecisionKind.ALIAS):
        known = ", ".join(name for name in config.model_names if _embeds(config, name)) or "none"
        raise GatewayError(404, f"model {request.model!r} is not the name of a configured model or alias "
                                f"(embeddings are served by the model named, never by routing or the default "
                                f"model); OpenAI-compatible models and aliases: {known}",
                           param="model", code="model_not_found")
    provider = outcome.provider
    if provider.interface not in EMBEDDING_INTERFACES:
        raise GatewayError(400, f"{provider.slug} has no embeddings endpoint ({provider.interface.value} API); "
                                "name an OpenAI-compatible embedding model", param="model", code="model_not_supported")
    return outcome


def build_embeddings_request(request: ClientRequest, provider: Provider, client_headers: dict[str, str],
                             query: str) -> UpstreamRequest:
    """The provider's own /embeddings request: the body as sent, with the provider's model id."""
    return build_upstream_request(request, provider, client_headers, query, endpoint="embeddings")


def _embeds(config: Config, name: str) -> bool:
    provider = config.by_slug.get(name) or config.aliases.get(name)
    return provider is not None and provider.interface in EMBEDDING_INTERFACES

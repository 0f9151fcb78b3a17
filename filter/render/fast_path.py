"""The fast path (`gateway.fast_path: true`): which requests Envoy serves without the filter, and
the Envoy pieces that do it.

A model name is fast when the filter would only rewrite `model`, swap the credentials and set the
path: a literal or alias name (precedence rules 1–3) of a provider that speaks the client's API
natively — an OpenAI-compatible provider for /v1/chat/completions, an Anthropic one for
/v1/messages — with no failover chain. Such a name gets a route of its own that Envoy's Lua filter
selects after checking the body (envoy/fast_path.lua); the route carries what the rewrite needs
as metadata and turns ext_proc off. The provider's key reaches Envoy as an SDS secret in a file
(never in the routes or the bootstrap) and is set by a credential injector on its cluster.

Everything else — errors, preference routing, translation, failover, echo, Azure — goes through
the filter as before. Pure functions: a `Config` in, Envoy configuration dicts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from filter.config import Config, Provider
from filter.errors import ClientApi
from filter.providers import Interface
from filter.resolve import Decision, DecisionKind, resolve
from filter.upstream import (ANTHROPIC_HEADERS, CLIENT_AUTH_HEADERS, credential_header, provider_path, responses_only,
                             upstream_api)

LUA_FILTER = "switchyard.fast_path"  # its route metadata lives under this name too
FLAG_HEADER = "x-switchyard-fast-model"
CLIENT_PATHS = {ClientApi.CHAT: "/v1/chat/completions", ClientApi.MESSAGES: "/v1/messages"}
_NATIVE = {ClientApi.CHAT: {Interface.OPENAI}, ClientApi.MESSAGES: {Interface.ANTHROPIC}}


@dataclass(frozen=True, slots=True)
class FastRoute:
    api: ClientApi
    name: str  # the model name as the client sends it
    decision: Decision

    @property
    def route_name(self) -> str:
        return f"fast:{self.api.value}:{self.name}"


def fast_routes(config: Config) -> list[FastRoute]:
    """Every (client API, model name) that Envoy may serve alone, resolved as the filter would."""
    if not config.gateway.fast_path:
        return []
    names = dict.fromkeys([*config.by_slug, *config.by_model_id, *config.aliases])
    routes = []
    for name in names:
        decision = resolve(config, name, None)
        if not isinstance(decision, Decision) or decision.chain is not None:
            continue
        if decision.kind not in (DecisionKind.LITERAL, DecisionKind.ALIAS):
            continue
        provider = decision.provider
        if provider.passthrough_auth or provider.headers or responses_only(provider):
            continue  # the client's credential or extra headers: the filter sets them (filter/upstream.py)
        for api, interfaces in _NATIVE.items():
            if decision.provider.interface in interfaces and decision.provider.upstream is not None:
                routes.append(FastRoute(api, name, decision))
    return routes


def fast_providers(config: Config) -> dict[str, Provider]:
    """The providers some fast route sends to, by cluster: their clusters carry their key."""
    return {r.decision.provider.cluster: r.decision.provider for r in fast_routes(config)}


def lua_filter(source: str) -> dict[str, Any]:
    """The HTTP filter that checks bodies and applies the fast routes (`source`: the text of
    envoy/fast_path.lua); it goes before ext_proc."""
    return {
        "name": LUA_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": source},
            # The script re-matches the route itself, once; its later header edits (:path) must
            # not send the request to another route.
            "clear_route_cache": False,
        },
    }


def envoy_route(route: FastRoute, timeout: str, authority: str) -> dict[str, Any]:
    provider = route.decision.provider
    anthropic = provider.interface is Interface.ANTHROPIC
    # What the filter would set and remove (filter/upstream.py), for the Lua filter to apply.
    metadata = {
        "model": provider.slug,
        "model_json": orjson.dumps(provider.model_id).decode(),
        "decision": route.decision.kind.value,
        "provider": provider.provider,
        "api": route.api.value,
        "upstream_api": upstream_api(provider).value,
        "upstream_path": provider_path(provider),
        "keep_query": anthropic,  # Claude Code's ?beta=true travels to Anthropic only
        "remove_headers": ",".join(CLIENT_AUTH_HEADERS if anthropic else (*CLIENT_AUTH_HEADERS, *ANTHROPIC_HEADERS)),
    }
    if anthropic:
        metadata["anthropic_version"] = provider.anthropic_version
    return {
        "name": route.route_name,
        "match": {
            "path": CLIENT_PATHS[route.api],
            "headers": [{"name": FLAG_HEADER, "string_match": {"exact": route.name}}],
        },
        "route": {"cluster": provider.cluster, "timeout": timeout, "host_rewrite_literal": authority},
        "request_headers_to_remove": [FLAG_HEADER],
        "metadata": {"filter_metadata": {LUA_FILTER: metadata}},
        "typed_per_filter_config": {
            "envoy.filters.http.ext_proc": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
                "disabled": True,
            },
        },
    }


def key_secret_name(provider: Provider) -> str:
    return f"{provider.cluster}_key"


def key_secret(provider: Provider) -> dict[str, Any] | None:
    """The SDS resource holding the value of the provider's credential header; None without a key."""
    credential = credential_header(provider)
    if credential is None:
        return None
    return {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": key_secret_name(provider),
        "generic_secret": {"secret": {"inline_string": credential[1]}},
    }


def credential_injector(provider: Provider, sds_config: dict[str, Any]) -> dict[str, Any] | None:
    """The upstream filter of a fast provider's cluster that sets its key (the filter sets the
    same key on the requests it forwards there, so it is harmless to them); None without a key."""
    credential = credential_header(provider)
    if credential is None:
        return None
    return {
        "name": "envoy.filters.http.credential_injector",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector",
            "overwrite": True,
            "credential": {
                "name": "envoy.http.injected_credentials.generic",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic",
                    "header": credential[0],
                    "credential": {"name": key_secret_name(provider), "sds_config": sds_config},
                },
            },
        },
    }

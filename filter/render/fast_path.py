"""The fast path (`gateway.fast_path: true`): which requests Envoy serves without the filter, and
the Envoy pieces that do it.

A model name is fast when the filter would only rewrite `model`, swap the credentials and set the
path: a literal or alias name (precedence rules 1–3) of a provider that speaks the client's API
natively — an OpenAI-compatible provider for /v1/chat/completions, an Anthropic one for
/v1/messages — with no failover chain. Such a name gets a route of its own that Envoy's Lua filter
selects after checking the body (envoy/fast_path.lua); the route carries what the rewrite needs
as metadata and turns ext_proc off. The provider's key reaches Envoy from a file, never from the
routes or the bootstrap, and is set by a credential injector on its cluster: `switchyard up`
writes private SDS files; `switchyard render` points Envoy at one file per key in a directory
(in Kubernetes, the provider-key Secret mounted as files), named after the environment variable
the configuration reads it from (`access_key: $OPENAI_API_KEY` → `<dir>/OPENAI_API_KEY`).

Everything else — errors, preference routing, translation, failover, echo, Azure — goes through
the filter as before. Pure functions: a `Config` in, Envoy configuration dicts out.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from filter.config import Config, Provider
from filter.errors import ClientApi, error_body, unauthorized
from filter.providers import Interface
from filter.resolve import Decision, DecisionKind, resolve
from filter.upstream import (ANTHROPIC_HEADERS, CLIENT_AUTH_HEADERS, credential_header, provider_path, responses_only,
                             upstream_api)

LUA_FILTER = "switchyard.fast_path"  # its route metadata lives under this name too
FLAG_HEADER = "x-switchyard-fast-model"
STREAM_HEADER = "x-switchyard-fast-stream"  # set by the Lua filter with FLAG_HEADER for `"stream": true`
STREAM_METADATA = "x-switchyard-stream"  # the gRPC metadata of a fast stream's ext_proc stream: its client API
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
GUARD_ACTION = "stream_guard"  # the composite's action that builds Envoy's stream guard
TOKEN_SCAN_FILTER = "envoy.filters.http.lua"  # the bootstrap's token scan of answers (the fast path's Lua is LUA_FILTER)
TOKEN_SCAN_OFF = {"@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute", "disabled": True}
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


def fast_routes(config: Config, from_files: bool = False) -> list[FastRoute]:
    """Every (client API, model name) that Envoy may serve alone, resolved as the filter would.
    With `from_files` (keys read from a directory), providers whose key is written in the
    configuration itself are left to the filter: no file holds their key."""
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
        if from_files and provider.access_key is not None and key_file_name(provider) is None:
            continue
        for api, interfaces in _NATIVE.items():
            if provider.interface in interfaces and provider.upstream is not None:
                routes.append(FastRoute(api, name, decision))
    return routes


def fast_providers(config: Config, from_files: bool = False) -> dict[str, Provider]:
    """The providers some fast route sends to, by cluster: their clusters carry their key."""
    return {r.decision.provider.cluster: r.decision.provider for r in fast_routes(config, from_files)}


def literal_key_providers(config: Config) -> list[Provider]:
    """Providers the fast path could serve but `switchyard render` leaves to the filter: their
    key is written in the configuration, so no key file exists for Envoy to read."""
    keyed = fast_providers(config, from_files=True)
    return [p for p in fast_providers(config).values() if p.cluster not in keyed]


def key_file_name(provider: Provider) -> str | None:
    """The file name a rendered Envoy reads the provider's key from: the environment variable of
    `access_key: $NAME`. None for a key written in the configuration, or no key."""
    key = provider.access_key
    if key is None or not key.source.startswith("$"):
        return None
    return key.source[1:].strip("{}")


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


def envoy_route(route: FastRoute, timeout: str, authority: str, spans: bool = False,
                token_scan: bool = True) -> dict[str, Any]:
    """The fast route; `token_scan`: the bootstrap has the token-scan Lua (not where the usage
    module reads the counts: filter/render/usage.py)."""
    provider = route.decision.provider
    anthropic = provider.interface is Interface.ANTHROPIC
    # What the filter would set (filter/upstream.py), for the Lua filter to apply: one table, read
    # with one call (each call into Envoy costs the script more than its own work).
    fast: dict[str, Any] = {
        "model_json": orjson.dumps(provider.model_id).decode(),
        "upstream_path": provider_path(provider),
        # The decision metadata the filter would set, as name, value, ...: the route's path is
        # the client's path without its query (an exact path match).
        "metadata": ["api", route.api.value, "path", CLIENT_PATHS[route.api], "model", provider.slug,
                     "decision", route.decision.kind.value, "provider", provider.provider,
                     "upstream_api", upstream_api(provider).value],
    }
    if anthropic:  # also: Claude Code's ?beta=true travels to Anthropic only
        fast["anthropic_version"] = provider.anthropic_version
    if spans:  # each metadata write costs Envoy a merge: the span ids only when spans are exported
        fast["spans"] = True
    # The client's credentials and the other API family's headers, as the filter removes them;
    # the credential injector of the provider's cluster then sets the provider's key.
    removed = CLIENT_AUTH_HEADERS if anthropic else (*CLIENT_AUTH_HEADERS, *ANTHROPIC_HEADERS)
    return {
        "name": route.route_name,
        "match": {
            "path": CLIENT_PATHS[route.api],
            "headers": [{"name": FLAG_HEADER, "string_match": {"exact": route.name}}],
        },
        "route": {"cluster": provider.cluster, "timeout": timeout, "host_rewrite_literal": authority},
        "request_headers_to_remove": [FLAG_HEADER, STREAM_HEADER, *removed],
        "metadata": {"filter_metadata": {LUA_FILTER: {"fast": fast}}},
        "typed_per_filter_config": {
            EXT_PROC_FILTER: {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
                "disabled": True,
            },
            # An OpenAI-compatible provider's JSON answer (this route never streams: its twin
            # does) needs no token scan: json_to_metadata reads its counts, prompt_tokens as it
            # is (envoy/bootstrap.template.yaml). The scan's Lua costs a fast request about a
            # tenth of its throughput (make bench BENCH_ARGS=--fast-path-costs).
            **({} if anthropic or not token_scan else {TOKEN_SCAN_FILTER: TOKEN_SCAN_OFF}),
        },
    }


def client_key_metadata(config: Config, salt: bytes | None = None) -> dict[str, Any]:
    """What the Lua filter checks client keys against (the virtual host's metadata): each key's
    name and its salted SHA-256 digest, never the key; a version that changes with them; and the
    filter's own 401 bodies. Empty without gateway.client_keys or without the fast path (the
    filter checks them then). The salt is new at each render unless given (tests)."""
    keys = config.gateway.client_keys
    if not (config.gateway.fast_path and keys):
        return {}
    salt_hex = (salt if salt is not None else os.urandom(16)).hex()
    entries = [{"name": key.name, "sha256": hashlib.sha256((salt_hex + key.key.reveal()).encode()).hexdigest()}
               for key in keys]
    return {
        "client_keys_version": hashlib.sha256(orjson.dumps([salt_hex, entries])).hexdigest()[:16],
        "client_key_salt": salt_hex,
        "client_keys": entries,
        **{f"unauthorized_{api.value}": error_body(api, unauthorized()).decode() for api in ClientApi},
    }


def with_stream_twin(envoy_route: dict[str, Any], route: FastRoute, guard_in_envoy: bool) -> list[dict[str, Any]]:
    """The route, preceded by its twin for `"stream": true` requests, served by Envoy alone as
    well but guarded: a stream that outlives the listener timeout is ended in the client's format.
    With `guard_in_envoy` the guard is Envoy's own filter (filter/render/stream_guard.py, built
    for these requests only: `ext_proc_only_where_needed`); otherwise the answer's headers and, for an SSE answer, its body go
    through the filter (a response-only ext_proc stream, filter/stream_guard.py), and if the
    filter is down the stream flows as it would without it (failure_mode_allow)."""
    twin = {**envoy_route, "name": f"{envoy_route['name']}:stream"}
    twin["match"] = {**envoy_route["match"], "headers": [
        *envoy_route["match"]["headers"], {"name": STREAM_HEADER, "string_match": {"exact": "1"}}]}
    if guard_in_envoy:  # (the usage module, not the token scan's Lua, reads the counts then)
        twin["typed_per_filter_config"] = {EXT_PROC_FILTER: envoy_route["typed_per_filter_config"][EXT_PROC_FILTER]}
        return [twin, envoy_route]
    twin["typed_per_filter_config"] = {
        EXT_PROC_FILTER: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
            "overrides": {
                "processing_mode": {
                    "request_header_mode": "SKIP", "request_body_mode": "NONE",
                    "response_header_mode": "SEND", "response_body_mode": "NONE",
                    "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP",
                },
                "failure_mode_allow": True,
                "grpc_initial_metadata": [{"key": STREAM_METADATA, "value": route.api.value}],
                # The Lua filter's decision metadata goes to the filter (the model, when the request
                # started); the filter's `stream_end` comes back.
                "metadata_options": {"forwarding_namespaces": {"untyped": ["switchyard"]},
                                     "receiving_namespaces": {"untyped": ["switchyard"]}},
            },
        },
    }
    return [twin, envoy_route]


def _header_present(name: str) -> dict[str, Any]:
    return {"single_predicate": {
        "input": {"name": "request-header", "typed_config": {
            "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput", "header_name": name}},
        "value_match": {"safe_regex": {"google_re2": {}, "regex": ".*"}}}}


def created_when(name: str, choices: list[tuple[dict[str, Any], str, dict[str, Any]]]) -> dict[str, Any]:
    """A filter Envoy builds only for the requests that need it: a composite filter under a
    matcher on request headers (read when the composite's turn comes: after the Lua filter set
    its flags), whose first matching (predicate, action name, filter) says which filter, if any,
    this request gets. It keeps `name`, so the routes' per-filter configuration of that filter
    still reaches it."""
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher",
            "extension_config": {"name": "switchyard.filter_when_needed", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.composite.v3.Composite"}},
            "xds_matcher": {"matcher_list": {"matchers": [{"predicate": predicate, "on_match": {"action": {
                "name": action, "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.composite.v3.ExecuteFilterAction",
                    "typed_config": http_filter}}}} for predicate, action, http_filter in choices]}},
        },
    }


def ext_proc_only_where_needed(ext_proc: dict[str, Any], guard: dict[str, Any] | None) -> dict[str, Any]:
    """The ext_proc filter, created only for the requests that may use it: all but the fast
    routes' requests (the Lua filter's flags, which survive only on a fast route), streams
    included unless Envoy guards them itself. Those turn ext_proc off per route anyway, but Envoy
    still built the filter for each of them: about a tenth of a fast request's throughput (make
    bench BENCH_ARGS=--fast-path-costs). With `guard` (Envoy's stream guard,
    filter/render/stream_guard.py) the same composite builds the guard for the fast path's streams
    instead: one composite per request rather than two (a second cost a fast request about 5 %).
    (A route could not turn on a filter that is off by default: Envoy builds the filter chain at
    the request's first route match, before the Lua filter picks the fast route.)"""
    not_fast = {"not_matcher": _header_present(FLAG_HEADER)}
    if guard is None:
        either = {"or_matcher": {"predicate": [not_fast, _header_present(STREAM_HEADER)]}}
        return created_when(ext_proc["name"], [(either, "ext_proc", ext_proc)])
    return created_when(ext_proc["name"], [(not_fast, "ext_proc", ext_proc),
                                           (_header_present(STREAM_HEADER), GUARD_ACTION, guard)])


def ext_proc_config(http_filter: dict[str, Any]) -> dict[str, Any]:
    """The ExternalProcessor configuration of the ext_proc filter, wrapped or not."""
    typed = http_filter["typed_config"]
    if typed["@type"].endswith("ExtensionWithMatcher"):
        action = typed["xds_matcher"]["matcher_list"]["matchers"][0]["on_match"]["action"]
        return action["typed_config"]["typed_config"]["typed_config"]
    return typed


def key_secret_name(provider: Provider) -> str:
    return f"{provider.cluster}_key"


def _credential(provider: Provider) -> tuple[str, str, str] | None:
    """(header, prefix, key): the header the filter sets is `prefix + key` (`Bearer ` for
    OpenAI-compatible providers); None without a key."""
    credential = credential_header(provider)
    if credential is None or provider.access_key is None:
        return None
    header, value = credential
    key = provider.access_key.reveal()
    return header, value[: len(value) - len(key)], key


def key_secret(provider: Provider) -> dict[str, Any] | None:
    """The SDS resource `switchyard up` writes to a private file: the provider's key; None
    without a key."""
    credential = _credential(provider)
    if credential is None:
        return None
    return {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": key_secret_name(provider),
        "generic_secret": {"secret": {"inline_string": credential[2]}},
    }


def file_key_secret(provider: Provider, keys_dir: Path) -> dict[str, Any] | None:
    """The bootstrap secret of a rendered Envoy: the path of the file holding the key (never the
    key); None without a key file."""
    name = key_file_name(provider)
    if name is None:
        return None
    return {"name": key_secret_name(provider), "generic_secret": {"secret": {"filename": str(keys_dir / name)}}}


def credential_injector(provider: Provider, sds_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The upstream filter of a fast provider's cluster that sets its key (the filter sets the
    same key on the requests it forwards there, so it is harmless to them); None without a key.
    `sds_config` None: the secret is one of the bootstrap's own (`file_key_secret`)."""
    credential = _credential(provider)
    if credential is None:
        return None
    header, prefix, _ = credential
    secret: dict[str, Any] = {"name": key_secret_name(provider)}
    if sds_config is not None:
        secret["sds_config"] = sds_config
    generic: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic",
        "header": header,
        "credential": secret,
    }
    if prefix:
        generic["header_value_prefix"] = prefix
    return {
        "name": "envoy.filters.http.credential_injector",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector",
            "overwrite": True,
            "credential": {"name": "envoy.http.injected_credentials.generic", "typed_config": generic},
        },
    }

"""Configuration errors word for word (file, key path, reason) for failover chains, the store,
client keys and Plano's router override; and the values those settings build. Fixed values."""

from __future__ import annotations

import pytest

from filter.config import ConfigError, parse_config

ENV = {"CK": "one,two"}


def build(raw):
    return parse_config(raw, "t.yaml", ENV)


def error(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        build(raw)
    return str(caught.value)


def providers(*extra, fallbacks=None):
    first = {"model": "openai/a", "access_key": "k", "default": True}
    if fallbacks is not None:
        first["fallbacks"] = fallbacks
    return {"llm_providers": [first, {"model": "openai/b", "access_key": "k"}, {"model": "echo/e"},
                              {"model": "groq/*", "access_key": "k"}, *extra]}


@pytest.mark.parametrize("raw, message", [
    (providers(fallbacks=["nope"]), "t.yaml: llm_providers[0].fallbacks[0]: 'nope' matches no configured provider or alias"),
    (providers(fallbacks=["openai/b", "b"]), "t.yaml: llm_providers[0].fallbacks[1]: openai/b is already in this failover chain"),
    (providers(fallbacks=["echo/e"]),
     "t.yaml: llm_providers[0].fallbacks: echo/e answers inside the gateway and cannot be part of a failover chain"),
    (providers(fallbacks=["groq/*"]),
     "t.yaml: llm_providers[0].fallbacks: groq/* is a wildcard entry and cannot be part of a failover chain"),
    (providers({"model": "openai/p", "passthrough_auth": True}, fallbacks=["openai/p"]),
     "t.yaml: llm_providers[0].fallbacks: openai/p forwards the client's credential (passthrough_auth) and cannot be "
     "part of a failover chain, whose attempts must not carry it"),
    ({**providers(), "gateway": {"store": {"url": "redis://"}}}, "t.yaml: gateway.store.url: 'redis://' has no host"),
    ({**providers(), "gateway": {"store": {"url": "unix://"}}}, "t.yaml: gateway.store.url: 'unix://' has no socket path"),
    ({**providers(), "gateway": {"store": {"url": "redis://:pw@cache"}}},
     "t.yaml: gateway.store.url: must not hold a password: set gateway.store.password ($ENV)"),
    ({**providers(), "routing": {"session_cache": {"type": "redis", "url": "redis://"}}},
     "t.yaml: routing.session_cache.url: 'redis://' has no host"),
    ({**providers(), "gateway": {"client_keys": [{"name": "a", "key": "k1"}, {"name": "a", "key": "k2"}]}},
     "t.yaml: gateway.client_keys: two keys are named 'a'"),
    ({**providers(), "gateway": {"client_keys": ["k1", "k1"]}},
     "t.yaml: gateway.client_keys: the key named 'key-2' is given twice"),
    ({**providers({"model": "anthropic/router", "access_key": "k"}), "overrides": {"llm_routing_model": "router"}},
     "t.yaml: overrides.llm_routing_model: anthropic/router must be an OpenAI-compatible server to serve as the router"),
])
def test_each_error_names_file_key_and_reason(raw, message):
    assert error(raw) == message


def test_a_chain_is_named_after_its_members_in_order():
    config = build(providers(fallbacks=["openai/b"]))
    chain = config.provider_chains["openai/a"]
    assert chain.name == "failover_openai_a__openai_b"
    assert [p.slug for p in chain.members] == ["openai/a", "openai/b"]


def test_client_keys_from_one_variable_are_numbered_and_keep_their_source():
    config = build({**providers(), "gateway": {"client_keys": "$CK"}})
    keys = config.gateway.client_keys
    assert [(k.name, k.key.reveal(), k.key.source, k.models, k.budget) for k in keys] == [
        ("key-1", "one", "$CK", None, None), ("key-2", "two", "$CK", None, None)]


def test_a_budget_without_a_period_is_monthly():
    config = build({**providers(), "gateway": {"client_keys": [{"name": "team", "key": "k1", "budget": {"usd": 5}}]}})
    (key,) = config.gateway.client_keys
    assert (key.budget.usd, key.budget.period, key.models) == (5, "month", None)


def test_a_client_key_may_be_limited_to_routed_names_too():
    config = build({**providers(), "routing": {"routed_models": ["smart"]},
                    "gateway": {"client_keys": [{"name": "team", "key": "k1", "models": ["smart", "openai/a"]}]}})
    assert config.gateway.client_keys[0].models == ("smart", "openai/a")
    assert "is not a configured model" in error({**providers(), "gateway": {"client_keys": [
        {"name": "team", "key": "k1", "models": ["smart"]}]}})  # smart is not routed without routed_models
    default_routed = build({**providers(), "gateway": {"client_keys": [{"name": "t", "key": "k1", "models": ["auto"]}]}})
    assert default_routed.gateway.client_keys[0].models == ("auto",)


@pytest.mark.parametrize("base_url, endpoint", [
    ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
    ("https://router.example", "https://router.example/v1"),
    ("https://router.example:8443/api", "https://router.example:8443/api"),
    ("http://router.example:80/v1", "http://router.example/v1"),
    ("http://router.example:443/v1", "http://router.example:443/v1"),
])
def test_plano_router_override_points_the_orchestrator_at_that_entry(base_url, endpoint):
    config = build({**providers({"model": "local/Plano-Orchestrator", "base_url": base_url, "access_key": "rk"}),
                    "overrides": {"llm_routing_model": "plano/Plano-Orchestrator",
                                  "orchestrator_model_context_length": 4096}})
    assert (config.routing.engine, config.routing.endpoint, config.routing.model) == (
        "plano-orchestrator", endpoint, "Plano-Orchestrator")
    assert config.warnings == ()


@pytest.mark.parametrize("routing, message", [
    ({"session_cache": {"type": "memory", "url": "redis://cache"}},
     "t.yaml: routing.session_cache.url: is only read when session_cache.type is redis"),
    ({"session_ttl": "5m", "session_ttl_seconds": 300},
     "t.yaml: routing.session_ttl_seconds: give one of session_ttl and session_ttl_seconds"),
    ({"engine": "arch-router", "endpoint": "ftp://router"},
     "t.yaml: routing.endpoint: 'ftp://router' is not an http(s) URL with a host"),
])
def test_routing_errors_word_for_word(routing, message):
    assert error({**providers(), "routing": routing}) == message


def test_routing_defaults_and_given_values():
    d = build(providers()).routing
    assert (d.engine, d.endpoint, d.timeout_s, d.routed_models, d.unknown_model, d.cache_size, d.tenant_header) == (
        "embedded", None, 1.0, ("auto",), "reject", 1024, None)
    given = build({**providers(), "routing": {"engine": "arch-router", "endpoint": "http://r:8000/v1", "timeout": "250ms",
                                              "routed_models": ["auto", "smart"], "cache_size": 0,
                                              "harness_envelopes": ["System-Reminder"]}}).routing
    assert (given.model, given.endpoint, given.timeout_s, given.routed_models, given.cache_size,
            given.harness_envelopes) == ("Arch-Router", "http://r:8000/v1", 0.25, ("auto", "smart"), 0,
                                         ("System-Reminder",))
    orchestrator = build({**providers(), "routing": {"engine": "plano-orchestrator", "endpoint": "http://r/v1"}})
    assert orchestrator.routing.model == "Plano-Orchestrator"


def test_plano_routing_keys_switchyard_ignores_are_warned_word_for_word():
    config = build({**providers(), "routing": {"routing_budget": {"usd": 1}, "llm_provider": "arch"}})
    assert config.warnings == (
        "t.yaml: routing.routing_budget: ignored — Plano's routing budget, which Switchyard does not implement",
        "t.yaml: routing.llm_provider: ignored — Plano's router provider (Switchyard's is routing.endpoint), which "
        "Switchyard does not implement",
    )


def with_entry(entry, **extra):
    raw = providers(entry)
    raw.update(extra)
    return raw


@pytest.mark.parametrize("raw, message", [
    ({**providers(), "model_aliases": {"openai/a": {"target": "b"}}},
     "t.yaml: model_aliases.openai/a: an alias may not shadow a configured provider/model"),
    ({**providers({"model": "groq/b", "access_key": "k"}), "model_aliases": {"x": {"target": "b"}}},
     "t.yaml: model_aliases.x.target: 'b' is the model id of several providers: use provider/model"),
    ({**providers(), "model_aliases": {"x": {"target": "zz"}}},
     "t.yaml: model_aliases.x.target: 'zz' matches no configured provider (known: openai/a, openai/b, echo/e, groq/*)"),
    (with_entry({"model": "openai/gpt-*", "access_key": "k"}),
     "t.yaml: llm_providers[4].model: 'openai/gpt-*': a wildcard entry is provider/* (any model of that provider)"),
    (with_entry({"model": "openai/", "access_key": "k"}), "t.yaml: llm_providers[4].model: 'openai/' must be provider/model-id"),
    (with_entry({"model": "/gpt", "access_key": "k"}), "t.yaml: llm_providers[4].model: '/gpt' must be provider/model-id"),
    (with_entry({"model": "echo/x", "http_host": "example.com"}), "t.yaml: llm_providers[4].http_host: the echo provider has no upstream"),
    (with_entry({"model": "local/m", "base_url": "http://user@127.0.0.1/v1"}),
     "t.yaml: llm_providers[4].base_url: must not hold credentials (user:password@): set access_key instead"),
    (with_entry({"model": "local/m", "base_url": "http://127.0.0.1/v1?"}),
     "t.yaml: llm_providers[4].base_url: 'http://127.0.0.1/v1?' has a query or fragment, which a base URL cannot carry"),
    (with_entry({"model": "local/m", "base_url": "http://127.0.0.1/v1#"}),
     "t.yaml: llm_providers[4].base_url: 'http://127.0.0.1/v1#' has a query or fragment, which a base URL cannot carry"),
    ({"version": "v0.4.0", **providers(), "routing_preferences": [
        {"name": "r", "description": "d", "models": ["groq/*"]}]},
     "t.yaml: routing_preferences[0].models[0]: groq/* is a wildcard entry, not a model"),
    ({**providers(), "routing_preferences": [{"name": "r", "description": "d", "models": ["openai/a"]}]},
     "t.yaml: routing_preferences: top-level routing_preferences need version: v0.4.0 or later (this file says "
     "nothing, read as v0.3.0); set version: v0.4.0, or move each route under its provider"),
])
def test_provider_alias_and_route_errors_word_for_word(raw, message):
    assert error(raw) == message


def test_a_route_under_a_wildcard_entry_is_refused():
    raw = providers()
    raw["llm_providers"][3]["routing_preferences"] = [{"name": "r", "description": "d"}]
    assert error(raw).endswith("groq/* is a wildcard entry: a route needs a model")


@pytest.mark.parametrize("base_url, port, prefix", [
    ("https://h.example/v1", 443, "/v1"), ("http://h.example/v1/", 80, "/v1"), ("http://h.example:8080", 8080, "/v1"),
])
def test_base_url_ports_and_paths(base_url, port, prefix):
    entry = build(with_entry({"model": "local/m", "base_url": base_url})).by_slug["local/m"]
    assert (entry.upstream.port, entry.upstream.path_prefix) == (port, prefix)


def test_provider_entry_values():
    config = build(with_entry({"model": "openai/n", "access_key": "k", "name": "label", "max_tokens": 100}))
    entry = config.by_slug["openai/n"]
    assert (entry.name, entry.max_tokens, entry.cluster) == ("label", 100, "provider_openai_n")
    plain = config.by_slug["openai/a"]
    assert (plain.name, plain.max_tokens, plain.cluster) == (None, 4096, "provider_openai_a")

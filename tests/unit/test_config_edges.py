"""Configuration edges, word for word: Plano's legacy listener, listener keys Switchyard ignores,
route pools with credential-forwarding members, cheapest-first pools with unpriced models.
Fixed expected values (the texts a user reads from `switchyard validate`, the values the gateway uses)."""

from __future__ import annotations

import pytest

from filter.config import ConfigError, parse_config
from filter.config.model import Listener

PROVIDERS = [{"model": "openai/gpt-4o", "access_key": "k", "default": True},
             {"model": "openai/my-tune", "access_key": "k"},
             {"model": "openai/my-other-tune", "access_key": "k"},
             {"model": "openai/p", "passthrough_auth": True}]


def build(**sections):
    return parse_config({"llm_providers": PROVIDERS, **sections}, "t.yaml", {})


def build_v4(routes):
    return parse_config({"version": "v0.4.0", "llm_providers": PROVIDERS, "routing_preferences": routes}, "t.yaml", {})


@pytest.mark.parametrize("egress, expected", [
    ({"message_format": "anthropic"}, Listener("0.0.0.0", 12000, 30.0, "anthropic")),
    ({"address": "127.0.0.2", "port": 0, "timeout": "5s"}, Listener("127.0.0.2", 0, 5.0, "openai")),
    ({}, Listener("0.0.0.0", 12000, 30.0, "openai")),
])
def test_plano_legacy_egress_listener(egress, expected):
    assert build(listeners={"egress_traffic": egress}).listener == expected


def test_each_ignored_key_of_a_model_listener_is_named_on_its_own_line():
    config = build(listeners=[{"type": "prompt"}, {"type": "model", "router": "plano", "agents": [],
                                                   "input_filters": [], "output_filters": []}])
    assert config.warnings == (
        "t.yaml: listeners[0]: ignored — a listener of type prompt, which Switchyard does not implement",
        "t.yaml: listeners[1].router: ignored — Plano's listener setting router, which Switchyard does not implement",
        "t.yaml: listeners[1].agents: ignored — Plano's listener setting agents, which Switchyard does not implement",
        "t.yaml: listeners[1].input_filters: ignored — Plano's listener setting input_filters, which Switchyard "
        "does not implement",
        "t.yaml: listeners[1].output_filters: ignored — Plano's listener setting output_filters, which Switchyard "
        "does not implement",
    )


def test_a_route_served_by_one_credential_forwarding_model_is_accepted():
    # One model: no failover chain, so forwarding the client's credential is fine.
    config = build_v4([{"name": "mine", "description": "d", "models": ["openai/p"]}])
    assert [p.slug for p in config.route_pools["mine"].models] == ["openai/p"]


@pytest.mark.parametrize("models", [["openai/gpt-4o", "openai/p"], ["openai/gpt-4o", "openai/my-tune", "openai/p"]])
def test_a_route_pool_cannot_fail_over_to_or_from_a_credential_forwarding_model(models):
    with pytest.raises(ConfigError) as caught:
        build_v4([{"name": "c", "description": "d", "models": ["openai/my-other-tune"]},
                  {"name": "code", "description": "d", "models": models}])
    assert str(caught.value) == (
        "t.yaml: routing_preferences[1]: openai/p forwards the client's credential (passthrough_auth) and cannot be "
        "part of a failover chain, whose attempts must not carry it")


def test_cheapest_first_names_every_model_without_a_price():
    config = build_v4([{"name": "code", "description": "d", "selection_policy": {"prefer": "cheapest"},
                        "models": ["openai/my-tune", "openai/gpt-4o", "openai/my-other-tune"]}])
    assert config.warnings == (
        "t.yaml: routing_preferences[0].selection_policy: no price for openai/my-tune, openai/my-other-tune in the "
        "model table (set the entry's prices); ranked last",)
    assert [p.slug for p in config.route_pools["code"].ranked] == ["openai/gpt-4o", "openai/my-tune",
                                                                   "openai/my-other-tune"]


# -- Plano's overrides ---------------------------------------------------------------------------

from filter.config.model import Secret  # noqa: E402

ROUTER_PROVIDERS = [{"model": "openai/gpt-4o", "access_key": "k", "default": True},
                    {"model": "local/router", "base_url": "https://r.example/v2", "access_key": "$RK"}]


def with_overrides(overrides, **sections):
    return parse_config({"llm_providers": ROUTER_PROVIDERS, "overrides": overrides, **sections}, "t.yaml", {"RK": "rk"})


def test_the_router_entry_lends_its_key_and_where_it_came_from():
    routing = with_overrides({"llm_routing_model": "plano/router"}).routing
    assert (routing.engine, routing.endpoint, routing.model, routing.token_budget) == (
        "plano-orchestrator", "https://r.example/v2", "router", None)
    assert routing.endpoint_credential == ("authorization", Secret("Bearer rk", "$RK"))
    assert repr(routing.endpoint_credential[1]) == "Secret($RK)"


def test_without_overrides_the_router_gets_no_credential():
    routing = parse_config({"llm_providers": ROUTER_PROVIDERS}, "t.yaml", {"RK": "rk"}).routing
    assert (routing.engine, routing.endpoint_credential, routing.token_budget) == ("embedded", None, None)


IGNORED = "ignored — Plano's override, which Switchyard does not implement"


@pytest.mark.parametrize("overrides, sections, warnings", [
    ({"llm_routing_model": "plano/router"}, {"routing": {"engine": "none"}},
     ("t.yaml: overrides.llm_routing_model: ignored — routing.engine or routing.endpoint is set, and routing: wins",)),
    ({"llm_routing_model": "plano/nothing", "upstream_connect_timeout": "5s"}, {},
     ("t.yaml: overrides.llm_routing_model: ignored — 'plano/nothing' names no configured provider entry (Plano "
      "would call its hosted router; Switchyard calls none: add an entry for the router or set routing.engine: "
      "plano-orchestrator and routing.endpoint)",
      f"t.yaml: overrides.upstream_connect_timeout: {IGNORED}")),
    ({"llm_routing_model": 5}, {}, (f"t.yaml: overrides.llm_routing_model: {IGNORED}",)),
    ({"llm_routing_model": "  "}, {}, (f"t.yaml: overrides.llm_routing_model: {IGNORED}",)),
    ({"llm_routing_model": "plano/router", "orchestrator_model_context_length": 4096}, {}, ()),
])
def test_overrides_that_are_not_used_are_named_once_each(overrides, sections, warnings):
    assert with_overrides(overrides, **sections).warnings == warnings


@pytest.mark.parametrize("budget", [256, 4096, 1_000_000])
def test_the_orchestrator_token_budget_is_kept_alone_or_with_the_router(budget):
    alone = with_overrides({"orchestrator_model_context_length": budget}).routing
    assert (alone.engine, alone.token_budget) == ("embedded", budget)
    routed = with_overrides({"llm_routing_model": "plano/router", "orchestrator_model_context_length": budget}).routing
    assert (routed.engine, routed.token_budget) == ("plano-orchestrator", budget)


@pytest.mark.parametrize("budget, shown", [(255, "255"), (1_000_001, "1000001"), (True, "True"), ("4096", "'4096'"),
                                           (4096.0, "4096.0")])
def test_an_orchestrator_token_budget_out_of_range_or_not_a_count_is_refused(budget, shown):
    with pytest.raises(ConfigError) as caught:
        with_overrides({"orchestrator_model_context_length": budget})
    assert str(caught.value) == (
        f"t.yaml: overrides.orchestrator_model_context_length: expected tokens between 256 and 1000000, got {shown}")


# -- the whole file: errors and warnings word for word ------------------------------------------

A = {"model": "openai/a", "access_key": "k", "default": True}


def error_of(raw, env=None):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "t.yaml", env or {})
    return str(caught.value)


@pytest.mark.parametrize("raw, message", [
    ([1], "t.yaml: the configuration must be a YAML mapping, expected a mapping, got a list"),
    ("text", "t.yaml: the configuration must be a YAML mapping, expected a mapping, got a string"),
    ({"llm_providers": [A], "model_providers": [A]},
     "t.yaml: llm_providers: give the providers once: model_providers (Plano v0.4) or llm_providers (older files), "
     "not both"),
    ({"llm_providers": [A, {"model": "groq/*", "access_key": "k",
                            "routing_preferences": [{"name": "r", "description": "d"}]}]},
     "t.yaml: llm_providers[1].routing_preferences[0]: groq/* is a wildcard entry: a route needs a model"),
    ({"llm_providers": [{"model": "openai/a", "access_key": "k", "routing_preferences": [{"name": "r", "description": "d"}]}]},
     "t.yaml: llm_providers: routing_preferences are configured but no provider is default: true (the default "
     "serves requests that no route fits)"),
    ({"llm_providers": [A, {"model": "openai/p", "passthrough_auth": True}], "gateway": {"client_keys": ["ck"]}},
     "t.yaml: llm_providers[1].passthrough_auth: cannot be used with gateway.client_keys: the client's one "
     "credential would be both its key to this gateway and the key sent to the provider"),
    ({"llm_providers": [{"model": "openai/z", "access_key": "k"}, A, {"model": "openai/b", "access_key": "k", "default": True}]},
     "t.yaml: llm_providers[2].default: two providers are default: true (openai/a and openai/b)"),
    ({"llm_providers": [A, {"model": "openai/b", "access_key": "k", "provider_interface": "soap"}]},
     "t.yaml: llm_providers[1].provider_interface: 'soap' is not one of openai, azure_openai, anthropic, echo, "
     "chatgpt, claude, deepseek, digitalocean, gemini, groq, mistral, moonshotai, openrouter, plano, vercel, xiaomi"),
    ({"llm_providers": [A, {"model": "nowhere/a", "access_key": "k"}]},
     "t.yaml: llm_providers[1].model: unknown provider 'nowhere': set base_url for an OpenAI-compatible server "
     "(known providers: anthropic, azure_openai, chatgpt, deepseek, digitalocean, echo, edenai, gemini, groq, "
     "mistral, moonshotai, ollama, openai, openrouter, qwen, together_ai, vercel, xai, xiaomi, zhipu)"),
    # White space after a '?' is still a query mark.
    ({"llm_providers": [{"model": "openai/a", "base_url": "https://x.example/v1? ", "access_key": "k"}]},
     "t.yaml: llm_providers[0].base_url: 'https://x.example/v1? ' has a query or fragment, which a base URL cannot "
     "carry"),
])
def test_file_errors_word_for_word(raw, message):
    assert error_of(raw) == message


def test_plano_top_level_sections_switchyard_ignores_are_named_with_what_they_are():
    config = parse_config({"llm_providers": [A], "tracing": {}, "mode": "x"}, "t.yaml", {})
    assert config.warnings == (
        "t.yaml: tracing: ignored — Plano's tracing settings (Switchyard's are gateway.tracing), which Switchyard "
        "does not implement",
        "t.yaml: mode: ignored — Plano's mode, which Switchyard does not implement")
    assert config.path == "t.yaml"


def test_a_passthrough_entry_says_its_access_key_is_not_used():
    config = parse_config({"llm_providers": [A, {"model": "openai/p", "passthrough_auth": True, "access_key": "k"}]},
                          "t.yaml", {})
    assert config.warnings == ("t.yaml: llm_providers[1].access_key: ignored — passthrough_auth forwards the "
                               "client's own credential instead",)
    assert config.providers[1].access_key is None


def test_the_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("SWITCHYARD_TEST_EDGE_KEY", "from-env")
    config = parse_config({"llm_providers": [{"model": "openai/a", "access_key": "$SWITCHYARD_TEST_EDGE_KEY"}]}, "t.yaml")
    assert config.providers[0].access_key.reveal() == "from-env"


# -- providers -----------------------------------------------------------------------------------

def test_a_base_url_path_is_kept_as_written_but_its_trailing_slashes():
    config = parse_config({"llm_providers": [{"model": "openai/a", "base_url": "https://x.example/apiX", "access_key": "k"},
                                             {"model": "openai/b", "base_url": "https://x.example/api//", "access_key": "k"}]},
                          "t.yaml", {})
    assert [p.upstream.path_prefix for p in config.providers] == ["/apiX", "/api"]


def test_cluster_names_keep_the_letters_case():
    config = parse_config({"llm_providers": [{"model": "anthropic/Claude-X.1", "access_key": "k"}]}, "t.yaml", {})
    assert config.providers[0].cluster == "provider_anthropic_Claude-X.1"


def headers(provider):
    return [(name, value.reveal(), value.source) for name, value in provider.headers]


def test_a_providers_default_headers_fill_in_what_the_entry_does_not_set():
    env = {"CHATGPT_ACCOUNT_ID": "acct-1"}
    own = parse_config({"llm_providers": [A, {"model": "chatgpt/gpt-5", "headers": {"originator": "me"}}]}, "t.yaml", env)
    assert headers(own.providers[1]) == [("originator", "me", "literal"),
                                         ("chatgpt-account-id", "acct-1", "$CHATGPT_ACCOUNT_ID")]
    defaults = parse_config({"llm_providers": [A, {"model": "chatgpt/gpt-5"}]}, "t.yaml", env)
    assert headers(defaults.providers[1]) == [("originator", "codex_cli_rs", "literal"),
                                              ("chatgpt-account-id", "acct-1", "$CHATGPT_ACCOUNT_ID")]
    unset = parse_config({"llm_providers": [A, {"model": "chatgpt/gpt-5"}]}, "t.yaml", {})
    assert headers(unset.providers[1]) == [("originator", "codex_cli_rs", "literal")]


def test_api_versions_default_per_provider_or_as_given():
    entries = [A, {"model": "azure_openai/d", "base_url": "https://az.example", "access_key": "k"},
               {"model": "azure_openai/e", "base_url": "https://az.example", "access_key": "k", "api_version": "2025-01-01"},
               {"model": "anthropic/c", "access_key": "k", "anthropic_version": "2024-01-01"}]
    config = parse_config({"llm_providers": entries}, "t.yaml", {})
    assert [(p.azure_api_version, p.anthropic_version) for p in config.providers] == [
        ("2024-10-21", "2023-06-01"), ("2024-10-21", "2023-06-01"), ("2025-01-01", "2023-06-01"),
        ("2024-10-21", "2024-01-01")]


def test_every_route_of_a_provider_is_a_route():
    config = parse_config({"llm_providers": [A, {"model": "openai/b", "access_key": "k", "routing_preferences": [
        {"name": "r1", "description": "d1"}, {"name": "r2", "description": "d2"}]}]}, "t.yaml", {})
    assert {name: [p.slug for p in pool.models] for name, pool in config.route_pools.items()} == {
        "r1": ["openai/b"], "r2": ["openai/b"]}


# -- aliases and their failover -------------------------------------------------------------------

def test_aliases_to_slugs_and_their_failover_chains():
    config = parse_config({
        "llm_providers": [A, {"model": "openai/b", "access_key": "k", "fallbacks": ["openai/c"]},
                          {"model": "openai/c", "access_key": "k"}],
        "model_aliases": {"fast": {"target": "openai/b"}, "smart": {"target": "openai/c", "fallbacks": ["a", "openai/b"]},
                          "plain": {"target": "openai/a"}}}, "t.yaml", {})
    assert {name: p.slug for name, p in config.aliases.items()} == {"fast": "openai/b", "smart": "openai/c",
                                                                   "plain": "openai/a"}
    # An alias with fallbacks of its own fails over along them; one without, like its target.
    assert {name: [p.slug for p in chain.members] for name, chain in config.alias_chains.items()} == {
        "smart": ["openai/c", "openai/a", "openai/b"], "fast": ["openai/b", "openai/c"]}
    assert config.alias_chains["fast"].name == "failover_openai_b__openai_c"
    assert sorted(config.by_model_id) == ["a", "b", "c"]


def test_an_alias_named_like_a_bare_model_id_is_reported_as_never_used():
    config = parse_config({"llm_providers": [A, {"model": "openai/b", "access_key": "k"}],
                           "model_aliases": {"a": {"target": "openai/b"}}}, "t.yaml", {})
    assert config.warnings == ("t.yaml: model_aliases.a: never used — 'a' is the model id of openai/a, which a "
                               "request naming it gets",)


def test_an_alias_fallback_naming_nothing_is_refused_at_its_path():
    assert error_of({"llm_providers": [A], "model_aliases": {"fast": {"target": "openai/a", "fallbacks": ["nope"]}}}) \
        == "t.yaml: model_aliases.fast.fallbacks[0]: 'nope' matches no configured provider or alias"


# -- routing defaults ------------------------------------------------------------------------------

def test_routing_model_and_unknown_model_defaults_and_given():
    default = parse_config({"llm_providers": [A]}, "t.yaml", {}).routing
    assert (default.model, default.unknown_model, default.endpoint_credential) == ("Arch-Router", "reject", None)
    given = parse_config({"llm_providers": [A], "routing": {"unknown_model": "route"}}, "t.yaml", {}).routing
    assert given.unknown_model == "route"

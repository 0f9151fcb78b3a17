"""Plano's configuration formats (v0.3 and v0.4), the keys Switchyard reports as ignored, and the
settings of this round (sessions, store, client keys, limits), as `switchyard validate` sees them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from filter.config import ConfigError, load_config, parse_config
from filter.providers import Interface

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "plano-configs"
PLANO_ENV = {name: f"test-{name.lower()}" for name in (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY",
    "GROK_API_KEY", "TOGETHER_API_KEY", "AZURE_API_KEY", "AWS_BEARER_TOKEN_BEDROCK", "MOONSHOT_API_KEY",
    "DB_PASSWORD")}


def parse(raw: dict, env: dict | None = None):
    return parse_config(raw, "gw.yaml", env if env is not None else PLANO_ENV)


def error_of(raw: dict, env: dict | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(raw, env)
    return str(caught.value)


V04 = {
    "version": "v0.4.0",
    "listeners": [{"type": "model", "name": "model_listener", "port": 12000}],
    "model_providers": [
        {"model": "openai/gpt-4o-mini", "access_key": "$OPENAI_API_KEY", "default": True},
        {"model": "openai/gpt-4o", "access_key": "$OPENAI_API_KEY"},
        {"model": "anthropic/claude-sonnet-4-6", "access_key": "$ANTHROPIC_API_KEY"},
    ],
    "routing_preferences": [
        {"name": "complex_reasoning", "description": "multi-step analysis", "models": ["openai/gpt-4o", "openai/gpt-4o-mini"]},
        {"name": "code_generation", "description": "writing functions", "models": ["anthropic/claude-sonnet-4-6", "gpt-4o"],
         "selection_policy": {"prefer": "cheapest"}},
    ],
}


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_published_plano_configuration_validates(path):
    config = load_config(path, env=PLANO_ENV)
    assert config.providers
    # Nothing Plano has is dropped silently: what Switchyard does not implement is named.
    text = path.read_text()
    # (`overrides` is read in part: tests below.)
    for key in ("tracing:", "state_storage:", "model_metrics_sources:", "routing_budget:"):
        if key in text:
            assert any(f": {key[:-1]}: ignored" in w or f".{key[:-1]}: ignored" in w for w in config.warnings), \
                (key, config.warnings)


def test_the_validate_command_prints_one_warning_line_per_ignored_key():
    path = CORPUS / "demos_llm_routing_routing_budget_config.yaml"
    result = subprocess.run([sys.executable, "-m", "filter.runtime.cli", "validate", str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env={**PLANO_ENV, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 3, result.stderr  # routing.routing_budget, model_metrics_sources, tracing
    assert any("routing.routing_budget: ignored" in w for w in warnings)
    assert any("model_metrics_sources: ignored" in w for w in warnings)
    assert any("tracing: ignored" in w for w in warnings)


def test_v04_top_level_routes_are_ranked_pools():
    config = parse(V04)
    reasoning = config.route_pools["complex_reasoning"]
    assert [p.slug for p in reasoning.models] == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    assert reasoning.prefer == "none"
    code = config.route_pools["code_generation"]
    assert [p.slug for p in code.models] == ["anthropic/claude-sonnet-4-6", "openai/gpt-4o"]  # a bare id resolves
    assert code.prefer == "cheapest"
    # prefer: cheapest — gpt-4o ($2.50 + $10 per million tokens in the pinned table) before
    # claude-sonnet-4-6 ($3 + $15): the cheaper model serves, the other is its fallback.
    assert [p.slug for p in code.order] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]
    assert config.route_owner["code_generation"].slug == "openai/gpt-4o"
    assert config.route_owner["complex_reasoning"].slug == "openai/gpt-4o"
    assert [r.name for r in config.routes] == ["complex_reasoning", "code_generation"]
    assert config.listener.port == 12000 and config.version == "v0.4.0"


def test_v03_routes_under_providers_are_pools_of_one_and_also_read_under_v04():
    raw = {**V04, "model_providers": [
        {"model": "openai/gpt-4o-mini", "access_key": "k", "default": True},
        {"model": "openai/gpt-4o", "access_key": "k",
         "routing_preferences": [{"name": "explain", "description": "explaining code"}]}]}
    del raw["routing_preferences"]
    config = parse(raw)
    assert [p.slug for p in config.route_pools["explain"].models] == ["openai/gpt-4o"]


def test_a_v03_route_named_under_several_providers_is_one_pool_in_file_order_as_plano_migrates_it():
    config = parse({"llm_providers": [
        {"model": "openai/gpt-4o-mini", "access_key": "k", "default": True},
        {"model": "openai/gpt-4o", "access_key": "k", "routing_preferences": [{"name": "code", "description": "writing code"}]},
        {"model": "anthropic/claude-sonnet-4-6", "access_key": "k",
         "routing_preferences": [{"name": "code", "description": "code, other words"}]}]})
    pool = config.route_pools["code"]
    assert [p.slug for p in pool.order] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]
    assert pool.route.description == "writing code"
    assert any("llm_providers[2].routing_preferences[0].description: route 'code' is also described at "
               "llm_providers[1].routing_preferences[0].name; the first description is used" in w for w in config.warnings)
    # The pool is a failover chain: Envoy gets an aggregate cluster for it.
    assert [p.slug for p in config.pool_chains[("openai/gpt-4o", "anthropic/claude-sonnet-4-6")].members] == \
        ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]


def test_cheapest_ranks_unpriced_models_last_with_a_warning_and_entry_prices_override_the_table():
    raw = {**V04, "model_providers": [
        {"model": "openai/gpt-4o-mini", "access_key": "k", "default": True},
        {"model": "local/qwen", "base_url": "http://127.0.0.1:8000"},
        {"model": "openai/gpt-4o", "access_key": "k", "prices": {"input": 0.01, "output": 0.02}},
        {"model": "anthropic/claude-sonnet-4-6", "access_key": "k"}],
        "routing_preferences": [{"name": "r", "description": "d", "selection_policy": {"prefer": "cheapest"},
                                 "models": ["local/qwen", "anthropic/claude-sonnet-4-6", "openai/gpt-4o"]}]}
    config = parse(raw)
    assert [p.slug for p in config.route_pools["r"].order] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6", "local/qwen"]
    assert any("routing_preferences[0].selection_policy: no price for local/qwen" in w for w in config.warnings)
    assert [p.slug for p in config.route_pools["r"].models] == ["local/qwen", "anthropic/claude-sonnet-4-6", "openai/gpt-4o"]


def test_fastest_pools_render_every_order_they_may_be_served_in():
    models = [f"openai/m{i}" for i in range(5)]
    raw = {**V04, "model_providers": [{"model": m, "access_key": "k"} for m in models] +
           [{"model": "openai/gpt-4o-mini", "access_key": "k", "default": True}],
           "routing_preferences": [
               {"name": "small", "description": "d", "models": models[:3], "selection_policy": {"prefer": "fastest"}},
               {"name": "big", "description": "e", "models": models, "selection_policy": {"prefer": "fastest"}}]}
    config = parse(raw)
    small = {k for k in config.pool_chains if len(k) == 3}
    assert len(small) == 6  # every permutation of three
    big = {k for k in config.pool_chains if len(k) == 5}
    # Five models: each first once, the others as written.
    assert big == {(m, *[o for o in models if o != m]) for m in models}


def test_top_level_routes_under_v03_are_refused_with_what_to_do():
    message = error_of({**V04, "version": "v0.3.0"})
    assert "routing_preferences: top-level routing_preferences need version: v0.4.0 or later" in message
    assert "this file says v0.3.0" in message


@pytest.mark.parametrize("route, expected", [
    ({"name": "r", "description": "d", "models": []}, "routing_preferences[0].models: must not be empty"),
    ({"name": "r", "description": "d", "models": ["openai/gpt-5"]},
     "routing_preferences[0].models[0]: 'openai/gpt-5' matches no configured provider or alias"),
    ({"name": "r", "description": "d", "models": ["openai/gpt-4o", "gpt-4o"]},
     "routing_preferences[0].models[1]: openai/gpt-4o is already in this route's models"),
    ({"name": "r", "description": "d", "models": ["openai/gpt-4o"], "selection_policy": {"prefer": "best"}},
     "routing_preferences[0].selection_policy.prefer: 'best' is not one of cheapest, fastest, none"),
    ({"name": "r", "description": "d", "models": ["openai/gpt-4o"], "weight": 2},
     "routing_preferences[0].weight: unknown key"),
])
def test_top_level_route_errors_name_the_key(route, expected):
    assert expected in error_of({**V04, "routing_preferences": [route]})


def test_a_route_defined_in_both_places_is_an_error():
    raw = {**V04, "model_providers": [
        {"model": "openai/gpt-4o-mini", "access_key": "k", "default": True,
         "routing_preferences": [{"name": "code_generation", "description": "code"}]},
        {"model": "openai/gpt-4o", "access_key": "k"},
        {"model": "anthropic/claude-sonnet-4-6", "access_key": "k"}]}
    assert "routing_preferences[1].name: route 'code_generation' is already defined at " \
           "model_providers[0].routing_preferences[0].name" in error_of(raw)


def test_both_provider_keys_at_once_is_an_error():
    raw = {"model_providers": [{"model": "openai/a", "access_key": "k"}],
           "llm_providers": [{"model": "openai/b", "access_key": "k"}]}
    assert "give the providers once: model_providers (Plano v0.4) or llm_providers" in error_of(raw)


def test_list_listeners_other_types_are_ignored_and_two_model_listeners_refused():
    raw = {**V04, "listeners": [{"type": "agent", "name": "a", "port": 8001},
                                {"type": "model", "name": "m", "port": 12001, "address": "127.0.0.1", "timeout": "5s"}]}
    config = parse(raw)
    assert (config.listener.port, config.listener.address, config.listener.timeout_s) == (12001, "127.0.0.1", 5.0)
    assert any("listeners[0]: ignored — a listener of type agent" in w for w in config.warnings)
    two = {**V04, "listeners": [{"type": "model", "name": "a", "port": 1}, {"type": "model", "name": "b", "port": 2}]}
    assert "listeners[1]: Switchyard serves one listener of type model" in error_of(two)
    assert "listeners[0].type: is required" in error_of({**V04, "listeners": [{"name": "m", "port": 1}]})
    assert "listeners: unexpected" in error_of({**V04, "listeners": 5}) or \
        "listeners: expected a mapping" in error_of({**V04, "listeners": 5})


def test_plano_routing_keys_map_onto_sessions_and_the_store():
    raw = {**V04, "routing": {"route_on_user_only": False, "session_ttl_seconds": 120, "session_max_entries": 500,
                              "session_cache": {"type": "redis", "url": "redis://redis:6379", "tenant_header": "X-Tenant"}}}
    config = parse(raw)
    routing = config.routing
    assert (routing.turn_pinning, routing.session_ttl_s, routing.session_max_entries) == (False, 120.0, 500)
    assert routing.tenant_header == "x-tenant"
    assert config.gateway.store.url == "redis://redis:6379"
    both = {**V04, "routing": {"session_cache": {"type": "redis", "url": "redis://a"}},
            "gateway": {"store": {"url": "redis://b"}}}
    assert "routing.session_cache: the store is set twice" in error_of(both)
    assert "routing.session_cache.url: is required when session_cache.type is redis" in \
        error_of({**V04, "routing": {"session_cache": {"type": "redis"}}})


def test_session_and_routing_defaults_and_settings():
    config = parse(V04)
    routing = config.routing
    assert routing.turn_pinning is True and routing.session_ttl_s == 600.0 and routing.session_max_entries == 10_000
    assert routing.harness_envelopes == ("system-reminder", "user-prompt-submit-hook", "environment_details")
    assert routing.min_confidence is None
    custom = parse({**V04, "routing": {"turn_pinning": False, "session_ttl": "2m", "min_confidence": 0.35,
                                       "harness_envelopes": ["env"]}}).routing
    assert (custom.turn_pinning, custom.session_ttl_s, custom.min_confidence, custom.harness_envelopes) == \
        (False, 120.0, 0.35, ("env",))
    assert "routing.min_confidence: must be between 0 and 1, got 4.5" in \
        error_of({**V04, "routing": {"min_confidence": 4.5}})
    assert "routing.harness_envelopes[0]: '<x>' is not a tag name" in \
        error_of({**V04, "routing": {"harness_envelopes": ["<x>"]}})
    assert "routing.route_on_user_only: contradicts routing.turn_pinning" in \
        error_of({**V04, "routing": {"turn_pinning": True, "route_on_user_only": False}})


def test_plano_orchestrator_engine_needs_an_endpoint_and_names_its_model():
    assert "routing.endpoint: is required when routing.engine is plano-orchestrator" in \
        error_of({**V04, "routing": {"engine": "plano-orchestrator"}})
    config = parse({**V04, "routing": {"engine": "plano-orchestrator", "endpoint": "http://vllm:8000/v1"}})
    assert config.routing.model == "Plano-Orchestrator"


def test_route_examples_are_read_in_both_forms():
    raw = {**V04, "routing_preferences": [{"name": "r", "description": "d", "models": ["openai/gpt-4o"],
                                           "examples": ["write a sort", "fix this loop"]}]}
    assert parse(raw).route_pools["r"].route.examples == ("write a sort", "fix this loop")
    assert "routing_preferences[0].examples[0]: must not be empty" in error_of(
        {**V04, "routing_preferences": [{"name": "r", "description": "d", "models": ["gpt-4o"], "examples": [" "]}]})


def test_wildcard_providers_pass_any_model_of_that_provider():
    config = load_config(CORPUS / "demos_llm_routing_model_alias_routing_config_with_aliases.yaml", env=PLANO_ENV)
    assert config.wildcards["openai"].slug == "openai/*" and config.wildcards["anthropic"].wildcard
    assert "*" not in config.by_model_id
    assert "openai/gpt-4o-mini/x" not in config.by_slug
    assert "model_providers[0].model: 'openai/gpt-*' : a wildcard" not in error_of(
        {"model_providers": [{"model": "openai/gpt-*", "access_key": "k"}]})
    assert "a wildcard entry is provider/*" in error_of({"model_providers": [{"model": "openai/gpt-*", "access_key": "k"}]})


def test_plano_provider_interfaces_and_provider_keys():
    config = parse({"model_providers": [
        {"model": "acme/claude-x", "base_url": "https://acme.example", "provider_interface": "claude", "access_key": "k",
         "http_host": "api.acme.example:8443"},
        {"model": "acme/other", "base_url": "https://acme.example", "provider_interface": "openrouter",
         "passthrough_auth": True, "headers": {"X-Org": "a", "User-Agent": "$UA"}}]}, {**PLANO_ENV, "UA": "KimiCLI/1.3"})
    claude, other = config.providers
    assert claude.interface is Interface.ANTHROPIC and other.interface is Interface.OPENAI
    assert claude.upstream.authority == "api.acme.example:8443" and claude.upstream.host == "acme.example"
    assert other.passthrough_auth and other.access_key is None
    assert [(n, v.reveal()) for n, v in other.headers] == [("x-org", "a"), ("user-agent", "KimiCLI/1.3")]
    assert not any("ignored" in w for w in config.warnings)
    assert "provider_interface: 'bedrock' is not one of" in error_of(
        {"model_providers": [{"model": "a/b", "base_url": "http://x", "provider_interface": "bedrock"}]})


@pytest.mark.parametrize("entry, expected", [
    ({"headers": {"Authorization": "Bearer x"}}, "headers.Authorization: 'Authorization' is set by the gateway"),
    ({"headers": {"x-switchyard-model": "x"}}, "is set by the gateway"),
    ({"headers": {"bad name": "x"}}, "is not an HTTP header name"),
    ({"headers": {"x-a": "line\nbreak"}}, "must not contain line breaks"),
    ({"headers": {"x-a": "$NOPE"}}, "environment variable $NOPE is not set"),
    ({"http_host": "a b"}, "http_host: 'a b' is not a host name"),
    ({"http_host": "h:0"}, "has an invalid port"),
])
def test_provider_header_settings_are_checked(entry, expected):
    message = error_of({"model_providers": [{"model": "openai/gpt-4o", "access_key": "k", **entry}]})
    assert expected in message


def test_passthrough_auth_ignores_the_key_refuses_chains_and_client_keys():
    config = parse({"model_providers": [{"model": "openai/gpt-4o", "access_key": "k", "passthrough_auth": True}]})
    assert config.providers[0].access_key is None
    assert any("model_providers[0].access_key: ignored — passthrough_auth forwards" in w for w in config.warnings)
    chained = {"model_providers": [{"model": "openai/a", "passthrough_auth": True, "fallbacks": ["openai/b"]},
                                   {"model": "openai/b", "access_key": "k"}]}
    assert "openai/a forwards the client's credential (passthrough_auth) and cannot be part of a failover chain" \
        in error_of(chained)
    keyed = {"model_providers": [{"model": "openai/a", "passthrough_auth": True}], "gateway": {"client_keys": ["ck"]}}
    assert "model_providers[0].passthrough_auth: cannot be used with gateway.client_keys" in error_of(keyed)


def test_chatgpt_entries_forward_the_clients_sign_in_to_the_codex_backend_responses_only():
    config = parse({"model_providers": [{"model": "chatgpt/*"}]}, {"CHATGPT_ACCOUNT_ID": "acct-1"})
    entry = config.wildcards["chatgpt"]
    assert (entry.upstream.host, entry.upstream.path_prefix) == ("chatgpt.com", "/backend-api/codex")
    assert entry.passthrough_auth and entry.access_key is None
    assert [(n, v.reveal()) for n, v in entry.headers] == [("originator", "codex_cli_rs"), ("chatgpt-account-id", "acct-1")]
    keyed = parse({"model_providers": [{"model": "chatgpt/gpt-5.2", "access_key": "tok"}]}, {})
    assert not keyed.providers[0].passthrough_auth and keyed.providers[0].headers == (("originator", keyed.providers[0].headers[0][1]),)


@pytest.mark.parametrize("version, ok", [("v0.1", True), ("v0.1.0", True), ("0.1-beta", True), ("0.2.0", True),
                                         ("v0.3.0", True), ("v0.4.0", True), ("v0.5.1", True), ("latest", False)])
def test_versions(version, ok):
    raw = {"version": version, "model_providers": [{"model": "openai/a", "access_key": "k"}]}
    if ok:
        parse(raw)
    else:
        assert "version: 'latest' is not a configuration version" in error_of(raw)


# --------------------------------------------------------------------------- base_url, as Plano reads it


@pytest.mark.parametrize("model, base_url, expected", [
    ("ollama/llama3.1", "http://localhost:11434", ("localhost", 11434, "/v1")),
    ("custom/m", "http://localhost:11223", ("localhost", 11223, "/v1")),
    ("anthropic/claude-x", "https://proxy.example.com", ("proxy.example.com", 443, "/v1")),
    ("groq/llama", "https://gateway.example.com", ("gateway.example.com", 443, "/openai/v1")),
    ("custom/m", "https://proxy.company.com/ai-gateway/openai", ("proxy.company.com", 443, "/ai-gateway/openai")),
    ("custom/m", "https://vllm.example.com/models/v2/", ("vllm.example.com", 443, "/models/v2")),
    ("custom/m", "http://[::1]:8080", ("::1", 8080, "/v1")),
    ("azure_openai/dep", "https://res.openai.azure.com", ("res.openai.azure.com", 443, "/openai/deployments")),
    ("azure_openai/dep", "https://apim.example.com/aoai", ("apim.example.com", 443, "/aoai")),
])
def test_base_url_with_no_path_means_the_providers_default_path(model, base_url, expected):
    config = parse({"model_providers": [{"model": model, "base_url": base_url, "access_key": "k"}]})
    upstream = config.providers[0].upstream
    assert (upstream.host, upstream.port, upstream.path_prefix) == expected


def test_an_ipv6_upstream_keeps_its_brackets_in_the_host_header():
    config = parse({"model_providers": [{"model": "custom/m", "base_url": "http://[::1]:8080"}]})
    assert config.providers[0].upstream.authority == "[::1]:8080"


@pytest.mark.parametrize("base_url, expected", [
    ("http://user:pw@host", "must not hold credentials"),
    ("http://host/v1?key=abc", "has a query or fragment"),
    ("http://host/v1#frag", "has a query or fragment"),
    ("http://host:0/v1", "has port 0"),
    ("http://host:99999", "has an invalid port"),
    ("ftp://x", "is not an http(s) URL"),
])
def test_base_url_forms_that_would_be_silently_changed_are_refused(base_url, expected):
    message = error_of({"model_providers": [{"model": "custom/m", "base_url": base_url}]})
    assert "model_providers[0].base_url: " in message and expected in message
    assert "pw" not in message.replace(base_url, "") or "user:pw" not in message


# --------------------------------------------------------------------------- client keys, limits, store


def test_named_client_keys_limits_budgets_and_models():
    env = {**PLANO_ENV, "TEAM_KEY": "sk-team-123"}
    config = parse({**V04, "gateway": {
        "client_keys": ["plain-one", {"name": "team-a", "key": "$TEAM_KEY", "limits": {"rpm": 60, "tpm": 100000},
                                      "budget": {"usd": 50, "period": "day"}, "models": ["gpt-4o", "code_generation", "auto"]}],
        "limits": {"default": {"rpm": 10}, "fail_closed": True}}}, env)
    plain, team = config.gateway.client_keys
    assert (plain.name, plain.key.reveal(), plain.limits, plain.models) == ("key-1", "plain-one", None, None)
    assert (team.name, team.key.reveal(), team.limits.rpm, team.limits.tpm) == ("team-a", "sk-team-123", 60, 100000)
    assert (team.budget.usd, team.budget.period) == (50.0, "day")
    assert team.models == ("gpt-4o", "code_generation", "auto")
    assert config.gateway.default_limits.rpm == 10 and config.gateway.default_limits.tpm is None
    assert config.gateway.limits_fail_closed is True
    assert "sk-team-123" not in repr(config.gateway)


@pytest.mark.parametrize("client_keys, env, expected", [
    ("$X", {"X": ","}, "gateway.client_keys: $X holds an empty key"),
    ("$X", {"X": " "}, "gateway.client_keys: must not be empty"),
    ("", {}, "gateway.client_keys: expected a string, got a string") ,
    ([], {}, "gateway.client_keys: is an empty list"),
    (["a", "a"], {}, "the key named 'key-2' is given twice"),
    ([{"name": "x", "key": "k1"}, {"name": "x", "key": "k2"}], {}, "two keys are named 'x'"),
    ([{"name": "x", "key": "k1", "models": ["gpt-9"]}], {}, "gateway.client_keys[0].models[0]: 'gpt-9' is not a configured"),
    ([{"name": "x"}], {}, "gateway.client_keys[0].key: is required"),
    ([{"name": "x", "key": "k", "budget": {"usd": 0}}], {}, "gateway.client_keys[0].budget.usd: must be between"),
    ([{"name": "x", "key": "k", "limits": {"rpm": 0}}], {}, "gateway.client_keys[0].limits.rpm: must be at least 1"),
    (["has space"], {}, "gateway.client_keys[0]: the key contains whitespace"),
])
def test_client_keys_fail_closed(client_keys, env, expected):
    message = error_of({**V04, "gateway": {"client_keys": client_keys}}, {**PLANO_ENV, **env})
    if expected.endswith("got a string"):  # an empty literal
        assert "gateway.client_keys: must not be empty" in message
    else:
        assert expected in message


@pytest.mark.parametrize("store, expected", [
    ({"url": "http://redis"}, "gateway.store.url: 'http://redis' is not a redis://, rediss:// or unix:// URL"),
    ({"url": "redis://:secret@redis"}, "must not hold a password"),
    ({"url": "unix://"}, "has no socket path"),
])
def test_store_settings(store, expected):
    assert expected in error_of({**V04, "gateway": {"store": store}})


def test_store_defaults_to_embedded_and_reads_its_password_from_env():
    assert parse(V04).gateway.store.url is None
    config = parse({**V04, "gateway": {"store": {"url": "rediss://redis:6380/2", "key_prefix": "team-a:",
                                                 "password": "$REDIS_PW"}}}, {**PLANO_ENV, "REDIS_PW": "pw-1"})
    store = config.gateway.store
    assert (store.url, store.key_prefix, store.password.reveal()) == ("rediss://redis:6380/2", "team-a:", "pw-1")


def test_provider_limits_prices_and_model_info_overrides():
    config = parse({"model_providers": [{"model": "openai/gpt-4o", "access_key": "k", "limits": {"tpm": 5000},
                                         "prices": {"input": 2.5, "output": 10, "cached_input": 1.25},
                                         "model_info": {"context_window": 128000, "max_output_tokens": 16384,
                                                        "unsupported_params": ["reasoning_effort"]}}]})
    p = config.providers[0]
    assert (p.limits.rpm, p.limits.tpm) == (None, 5000)
    assert (p.prices.input, p.prices.output, p.prices.cached_input) == (2.5, 10.0, 1.25)
    assert (p.model_info.context_window, p.model_info.max_output_tokens, p.model_info.unsupported_params) == \
        (128000, 16384, ("reasoning_effort",))
    assert "model_providers[0].prices.input: must be between 0 and 1e+06, got -1" in error_of(
        {"model_providers": [{"model": "openai/gpt-4o", "access_key": "k", "prices": {"input": -1}}]})


def test_connection_settings_and_ephemeral_ports():
    config = parse({**V04, "listeners": [{"type": "model", "name": "m", "port": 0}],
                    "gateway": {"admin_port": 0, "metrics_port": 0, "max_connections": 100,
                                "request_headers_timeout": "5s", "idle_timeout": "1m", "max_response_bytes": 2048,
                                "metrics_address": "0.0.0.0", "socket_dir": "/run/switchyard"}})
    g = config.gateway
    assert (config.listener.port, g.admin_port, g.metrics_port) == (0, 0, 0)
    assert (g.max_connections, g.request_headers_timeout_s, g.idle_timeout_s, g.max_response_bytes) == (100, 5.0, 60.0, 2048)
    assert (g.metrics_address, g.socket_dir) == ("0.0.0.0", "/run/switchyard")
    assert parse(V04).gateway.metrics_address == "127.0.0.1"


def test_the_loader_keeps_load_config_errors_one_line(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(V04) + "gateway:\n  workers: 2\ngateway:\n  workers: 3\n")
    with pytest.raises(ConfigError, match=r"g.yaml: not accepted as YAML: duplicate key 'gateway' at line \d+"):
        load_config(path, env=PLANO_ENV)


def test_llm_routing_model_naming_a_provider_entry_is_the_plano_orchestrator_router():
    # Plano's local-router demo: the router is the Ollama entry the override names.
    config = load_config(CORPUS / "demos_llm_routing_preference_based_routing_plano_config_local.yaml", env=PLANO_ENV)
    routing = config.routing
    assert (routing.engine, routing.endpoint, routing.model) == \
        ("plano-orchestrator", "http://localhost:11434/v1", "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M")
    assert routing.endpoint_credential is None
    assert not any("llm_routing_model" in w for w in config.warnings)


def test_llm_routing_model_without_such_an_entry_is_reported_and_routing_settings_win():
    config = load_config(CORPUS / "demos_llm_routing_openclaw_routing_config.yaml", env=PLANO_ENV)
    assert config.routing.engine == "embedded"
    assert any("overrides.llm_routing_model: ignored — 'Plano-Orchestrator' names no configured provider entry"
               in w for w in config.warnings)
    raw = {**V04, "model_providers": [*V04["model_providers"], {"model": "plano/router", "base_url": "https://r.example/v2",
                                                                 "access_key": "rk"}],
           "overrides": {"llm_routing_model": "plano/router", "orchestrator_model_context_length": 4096,
                         "upstream_connect_timeout": "5s"}}
    routed = parse(raw).routing
    assert (routed.engine, routed.endpoint, routed.model, routed.token_budget) == \
        ("plano-orchestrator", "https://r.example/v2", "router", 4096)
    assert routed.endpoint_credential[0] == "authorization" and routed.endpoint_credential[1].reveal() == "Bearer rk"
    assert any("overrides.upstream_connect_timeout: ignored" in w for w in parse(raw).warnings)
    explicit = parse({**raw, "routing": {"engine": "arch-router", "endpoint": "http://ar:8000/v1"}})
    assert (explicit.routing.engine, explicit.routing.endpoint) == ("arch-router", "http://ar:8000/v1")


def test_the_v04_example_is_a_working_plano_file():
    config = load_config(REPO / "examples" / "plano-v04.yaml", env=PLANO_ENV)
    assert config.routing.engine == "plano-orchestrator"
    assert config.routing.endpoint == "http://plano-orchestrator:8000/v1" and config.routing.model == "Plano-Orchestrator"
    assert [p.slug for p in config.route_pools["complex reasoning"].order] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]
    assert "openai" in config.wildcards and config.warnings == ()


@pytest.mark.parametrize("model, host, prefix", [
    ("moonshotai/kimi-k2", "api.moonshot.ai", "/v1"),
    ("zhipu/glm-4.6", "open.bigmodel.cn", "/api/paas/v4"),
    ("openrouter/anthropic/claude-sonnet-4", "openrouter.ai", "/api/v1"),
    ("digitalocean/llama3.3-70b-instruct", "inference.do-ai.run", "/v1"),
    ("vercel/openai/gpt-5", "ai-gateway.vercel.sh", "/v1"),
    ("xiaomi/mimo-v2", "api.xiaomimimo.com", "/v1"),
    ("edenai/openai/gpt-4o", "api.edenai.run", "/v3"),
])
def test_the_providers_plano_knows_need_no_base_url_either(model, host, prefix):
    provider = parse({"model_providers": [{"model": model, "access_key": "k"}]}).providers[0]
    assert (provider.upstream.host, provider.upstream.path_prefix) == (host, prefix)


def test_qwen_needs_a_base_url_and_a_host_alone_gets_dashscopes_path():
    assert "model_providers[0].base_url: is required for provider 'qwen'" in error_of(
        {"model_providers": [{"model": "qwen/qwen-plus", "access_key": "k"}]})
    qwen = parse({"model_providers": [{"model": "qwen/qwen-plus", "access_key": "k",
                                       "base_url": "https://dashscope-intl.aliyuncs.com"}]}).providers[0]
    assert qwen.upstream.path_prefix == "/compatible-mode/v1"

"""The precedence rules as pure functions, without Envoy."""

from __future__ import annotations

import pytest

from filter.config import parse_config
from filter.errors import GatewayError
from filter.inbound import RequestPreference
from filter.resolve import Decision, DecisionKind, RoutingPlan, decide_route, resolve
from router_model.engine import Route


def make(unknown_model="reject", routes=True, default=True, routed=("auto",)):
    providers = [
        {"model": "openai/gpt-4o", "access_key": "k", "default": default},
        {"model": "openai/shared", "access_key": "k"},
        {"model": "groq/shared", "access_key": "k"},
        {"model": "anthropic/claude", "access_key": "k"},
    ]
    if routes:
        providers[3]["routing_preferences"] = [{"name": "code", "description": "writing code"}]
    return parse_config(
        {"llm_providers": providers, "model_aliases": {"smart": {"target": "anthropic/claude"}},
         "routing": {"unknown_model": unknown_model, "routed_models": list(routed)}},
        "t.yaml", {},
    )


def test_literal_slug_and_bare_id():
    config = make()
    assert resolve(config, "openai/gpt-4o", None) == Decision(config.by_slug["openai/gpt-4o"], DecisionKind.LITERAL)
    assert resolve(config, "claude", None).provider.slug == "anthropic/claude"


def test_a_bare_id_shared_by_two_providers_is_not_guessed():
    config = make()
    with pytest.raises(GatewayError) as caught:
        resolve(config, "shared", None)
    assert caught.value.status == 404
    assert resolve(config, "groq/shared", None).provider.slug == "groq/shared"


def test_alias_resolves_to_its_target():
    decision = resolve(make(), "smart", None)
    assert (decision.provider.slug, decision.kind) == ("anthropic/claude", DecisionKind.ALIAS)


@pytest.mark.parametrize("model", [None, "", "auto"])
def test_no_model_or_a_routed_name_asks_the_router_when_routes_exist(model):
    config = make()
    plan = resolve(config, model, None)
    assert isinstance(plan, RoutingPlan)
    assert [r.name for r in plan.routes] == ["code"]
    assert plan.fallback.slug == "openai/gpt-4o"


@pytest.mark.parametrize("model", [None, "", "auto"])
def test_without_routes_the_default_serves(model):
    decision = resolve(make(routes=False), model, None)
    assert (decision.provider.slug, decision.kind) == ("openai/gpt-4o", DecisionKind.DEFAULT)


def test_without_routes_or_default_a_missing_model_is_400():
    with pytest.raises(GatewayError) as caught:
        resolve(make(routes=False, default=False), None, None)
    assert caught.value.status == 400
    assert "openai/gpt-4o" in caught.value.message


def test_unknown_model_policies():
    with pytest.raises(GatewayError) as caught:
        resolve(make(), "claude-3-opus-20240229", None)
    assert caught.value.status == 404 and "smart" in caught.value.message
    assert isinstance(resolve(make(unknown_model="route"), "claude-3-opus-20240229", None), RoutingPlan)
    assert resolve(make(unknown_model="default"), "claude-3-opus-20240229", None).kind is DecisionKind.DEFAULT


def test_router_answers_become_decisions():
    plan = resolve(make(), None, None)
    assert decide_route(plan, "code") == Decision(plan.owners["code"], DecisionKind.PREFERENCE, "code")
    assert decide_route(plan, None).kind is DecisionKind.DEFAULT
    assert decide_route(plan, "not-a-route").provider.slug == "openai/gpt-4o"


def test_per_request_preferences_replace_the_configured_routes():
    prefs = (RequestPreference(Route("chat", "small talk"), ("gpt-4o",)),
             RequestPreference(Route("deep", "hard maths"), ("smart",)))
    plan = resolve(make(), "auto", prefs)
    assert [r.name for r in plan.routes] == ["chat", "deep"]
    assert plan.owners["deep"].slug == "anthropic/claude"


def test_per_request_preferences_naming_an_unknown_model_is_400_that_says_which():
    prefs = (RequestPreference(Route("chat", "small talk"), ("gpt-99",)),)
    with pytest.raises(GatewayError) as caught:
        resolve(make(), None, prefs)
    assert caught.value.status == 400
    assert "'gpt-99'" in caught.value.message and "'chat'" in caught.value.message


def test_a_bare_model_id_beats_an_alias_of_the_same_name():
    """Rule 2 before rule 3: `gpt-4o` is the model id of openai/gpt-4o, so an alias named
    `gpt-4o` never applies (the configuration says so in a warning)."""
    config = parse_config({
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "default": True},
                          {"model": "openai/gpt-4o-mini", "access_key": "k"}],
        "model_aliases": {"gpt-4o": {"target": "gpt-4o-mini"}, "cheap": {"target": "gpt-4o-mini"}},
    }, "t.yaml", {})
    decision = resolve(config, "gpt-4o", None)
    assert (decision.provider.slug, decision.kind) == ("openai/gpt-4o", DecisionKind.LITERAL)
    assert resolve(config, "cheap", None).kind is DecisionKind.ALIAS
    assert config.warnings == ("t.yaml: model_aliases.gpt-4o: never used — 'gpt-4o' is the model id of "
                               "openai/gpt-4o, which a request naming it gets",)


def test_an_alias_named_like_a_shared_model_id_picks_one_of_them():
    """`shared` is the id of two entries (rule 2 does not guess): an alias of that name decides."""
    config = parse_config({
        "llm_providers": [{"model": "openai/shared", "access_key": "k", "default": True},
                          {"model": "groq/shared", "access_key": "k"}],
        "model_aliases": {"shared": {"target": "groq/shared"}},
    }, "t.yaml", {})
    decision = resolve(config, "shared", None)
    assert (decision.provider.slug, decision.kind) == ("groq/shared", DecisionKind.ALIAS)
    assert config.warnings == ()


# --------------------------------------------------------------------------- wildcards and ranked pools


def wildcards():
    return parse_config({"model_providers": [
        {"model": "openai/gpt-4o", "access_key": "k", "default": True},
        {"model": "openai/*", "access_key": "wild-key"},
        {"model": "anthropic/*", "access_key": "k"},
    ], "model_aliases": {"fast": {"target": "gpt-4o"}}, "routing": {"unknown_model": "reject"}}, "t.yaml", {})


def test_a_wildcard_entry_serves_any_id_of_its_provider_after_literals_and_aliases():
    config = wildcards()
    exact = resolve(config, "openai/gpt-4o", None)
    assert exact.provider is config.by_slug["openai/gpt-4o"] and not exact.provider.wildcard
    assert resolve(config, "fast", None).kind is DecisionKind.ALIAS
    wild = resolve(config, "openai/gpt-5.2-codex", None)
    assert (wild.kind, wild.provider.slug, wild.provider.model_id) == (DecisionKind.LITERAL, "openai/gpt-5.2-codex", "gpt-5.2-codex")
    assert wild.provider.wildcard and wild.provider.cluster == config.wildcards["openai"].cluster
    assert wild.provider.access_key.reveal() == "wild-key"
    # A bare id is never guessed onto a wildcard, nor a provider without one.
    with pytest.raises(GatewayError) as caught:
        resolve(config, "gpt-5.2-codex", None)
    assert caught.value.status == 404
    with pytest.raises(GatewayError):
        resolve(config, "groq/llama", None)


@pytest.mark.parametrize("model", ["openai/", "openai/ spaced", "openai/" + "x" * 129, "openai/a\nb"])
def test_a_wildcard_id_that_is_no_model_id_is_a_400(model):
    with pytest.raises(GatewayError) as caught:
        resolve(wildcards(), model, None)
    assert caught.value.status in (400, 404) and caught.value.param == "model"


def pools_config(prefer="none"):
    return parse_config({"version": "v0.4.0", "model_providers": [
        {"model": "openai/gpt-4o-mini", "access_key": "k", "default": True},
        {"model": "openai/gpt-4o", "access_key": "k"},
        {"model": "anthropic/claude-sonnet-4-6", "access_key": "k"},
        {"model": "local/qwen", "base_url": "http://127.0.0.1:9"},
    ], "routing_preferences": [{"name": "code", "description": "writing code", "selection_policy": {"prefer": prefer},
                                "models": ["anthropic/claude-sonnet-4-6", "local/qwen", "openai/gpt-4o"]}]},
        "t.yaml", {})


def test_a_routed_pool_serves_its_first_model_with_the_others_as_its_failover_chain():
    config = pools_config()
    decision = decide_route(resolve(config, None, None), "code")
    assert decision.provider.slug == "anthropic/claude-sonnet-4-6"
    assert [p.slug for p in decision.chain.members] == ["anthropic/claude-sonnet-4-6", "local/qwen", "openai/gpt-4o"]
    assert [p.slug for p in decision.candidates] == ["anthropic/claude-sonnet-4-6", "local/qwen", "openai/gpt-4o"]
    assert decide_route(resolve(config, None, None), None).candidates == (config.by_slug["openai/gpt-4o-mini"],)


def test_fastest_orders_by_observed_latency_unobserved_models_last():
    config = pools_config("fastest")
    unobserved = decide_route(resolve(config, None, None), "code")
    assert unobserved.provider.slug == "anthropic/claude-sonnet-4-6"  # nothing observed: as written
    latency = {"openai/gpt-4o": 0.4, "local/qwen": 0.1}
    decision = decide_route(resolve(config, None, None, latency), "code")
    assert [p.slug for p in decision.chain.members] == ["local/qwen", "openai/gpt-4o", "anthropic/claude-sonnet-4-6"]
    assert decision.chain.name in {c.name for c in config.chains}  # Envoy has that aggregate cluster


def test_cheapest_puts_the_lowest_price_first_and_unpriced_last():
    decision = decide_route(resolve(pools_config("cheapest"), None, None), "code")
    # gpt-4o $2.50 + $10, claude-sonnet-4-6 $3 + $15 per million (pinned table); qwen has no price.
    assert [p.slug for p in decision.candidates] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6", "local/qwen"]


def test_a_request_with_its_own_routes_is_routed_and_the_model_it_names_serves_when_none_fits():
    config = make()
    prefs = (RequestPreference(Route("deep", "hard maths"), ("smart",)),)
    plan = resolve(config, "openai/gpt-4o", prefs)
    assert isinstance(plan, RoutingPlan)
    assert decide_route(plan, "deep").provider.slug == "anthropic/claude"
    fallback = decide_route(plan, None)
    assert (fallback.provider.slug, fallback.kind) == ("openai/gpt-4o", DecisionKind.LITERAL)
    assert decide_route(resolve(config, "smart", prefs), None).kind is DecisionKind.ALIAS
    # Without routes of its own, a named model is served as named.
    assert resolve(config, "openai/gpt-4o", None).kind is DecisionKind.LITERAL


def test_a_requests_own_pool_follows_its_selection_policy():
    config = pools_config()
    prefs = (RequestPreference(Route("code", "writing code"), ("anthropic/claude-sonnet-4-6", "openai/gpt-4o"), "cheapest"),)
    decision = decide_route(resolve(config, None, prefs), "code")
    assert [p.slug for p in decision.candidates] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]
    fastest = (RequestPreference(Route("code", "writing code"), ("anthropic/claude-sonnet-4-6", "openai/gpt-4o"), "fastest"),)
    decision = decide_route(resolve(config, None, fastest, {"openai/gpt-4o": 0.2, "anthropic/claude-sonnet-4-6": 0.9}), "code")
    assert decision.provider.slug == "openai/gpt-4o"

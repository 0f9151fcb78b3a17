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

"""Exactly what each precedence rule hands on: the failover chain Envoy walks, the ranked pool,
the error a client reads. Fixed expected values (slugs, messages), never the config's own objects."""

from __future__ import annotations

import pytest

from filter.config import parse_config
from filter.errors import GatewayError
from filter.inbound import RequestPreference
from filter.resolve import DecisionKind, RoutingPlan, decide_route, resolve
from router_model.engine import Route


def config_of(**extra):
    raw = {
        "version": "v0.4.0",
        "model_providers": [
            {"model": "openai/a", "access_key": "k", "default": True, "fallbacks": ["openai/b"]},
            {"model": "openai/b", "access_key": "k"},
            {"model": "openai/c", "access_key": "k", "fallbacks": ["openai/a"]},
            {"model": "groq/*", "access_key": "k"},
        ],
        "model_aliases": {"x": {"target": "openai/b", "fallbacks": ["openai/c"]}, "y": {"target": "openai/c"}},
        "routing_preferences": [
            {"name": "pair", "description": "two models", "models": ["openai/b", "openai/c"]},
            {"name": "solo", "description": "one model", "models": ["openai/c"]},
        ],
    }
    raw.update(extra)
    return parse_config(raw, "t.yaml", {})


def chain(decision) -> list[str] | None:
    return None if decision.chain is None else [p.slug for p in decision.chain.members]


def slugs(providers) -> list[str]:
    return [p.slug for p in providers]


# ---------------------------------------------------------------- the chain each rule carries


def test_literal_names_carry_the_models_own_fallbacks():
    config = config_of()
    for name in ("openai/a", "a"):
        decision = resolve(config, name, None)
        assert (decision.provider.slug, decision.kind, chain(decision)) == ("openai/a", DecisionKind.LITERAL,
                                                                             ["openai/a", "openai/b"])
    assert chain(resolve(config, "openai/b", None)) is None


def test_an_alias_carries_its_own_fallbacks_or_else_its_targets():
    config = config_of()
    assert chain(resolve(config, "x", None)) == ["openai/b", "openai/c"]
    assert chain(resolve(config, "y", None)) == ["openai/c", "openai/a"]


def test_the_default_carries_its_fallbacks():
    config = parse_config({
        "model_providers": [{"model": "openai/a", "access_key": "k", "default": True, "fallbacks": ["openai/b"]},
                            {"model": "openai/b", "access_key": "k"}],
        "routing": {"unknown_model": "default"}}, "t.yaml", {})
    for name in (None, "auto", "no-such-model"):
        decision = resolve(config, name, None)
        assert (decision.provider.slug, decision.kind, chain(decision)) == ("openai/a", DecisionKind.DEFAULT,
                                                                             ["openai/a", "openai/b"])


# ---------------------------------------------------------------- configured route pools


def test_a_routed_pool_of_two_serves_its_first_and_fails_over_to_the_second():
    plan = resolve(config_of(), "auto", None)
    decision = decide_route(plan, "pair")
    assert (decision.provider.slug, decision.kind, decision.route) == ("openai/b", DecisionKind.PREFERENCE, "pair")
    assert chain(decision) == ["openai/b", "openai/c"]
    assert slugs(decision.models) == ["openai/b", "openai/c"]
    assert slugs(decision.candidates) == ["openai/b", "openai/c"]


def test_a_routed_pool_of_one_keeps_that_models_own_fallbacks():
    decision = decide_route(resolve(config_of(), "auto", None), "solo")
    assert decision.provider.slug == "openai/c"
    assert chain(decision) == ["openai/c", "openai/a"] and decision.models == ()
    assert slugs(decision.candidates) == ["openai/c", "openai/a"]


def test_no_route_serves_the_default_with_its_fallbacks():
    plan = resolve(config_of(), "auto", None)
    for answer in (None, "other", "no-such-route"):
        decision = decide_route(plan, answer)
        assert (decision.provider.slug, decision.kind, decision.route) == ("openai/a", DecisionKind.DEFAULT, None)
        assert chain(decision) == ["openai/a", "openai/b"] and decision.models == ()


def test_a_pinned_model_that_is_not_the_pools_first_gets_no_pool_of_its_own():
    plan = resolve(config_of(), "auto", None)
    c = next(p for p in plan.pools["pair"] if p.slug == "openai/c")
    decision = plan.decision(DecisionKind.PREFERENCE, "pair", c)
    assert (decision.provider.slug, decision.route, decision.models) == ("openai/c", "pair", ())
    assert chain(decision) == ["openai/c", "openai/a"]


def test_a_pinned_route_that_a_reload_removed_serves_its_model_alone():
    plan = resolve(config_of(), "auto", None)
    b = plan.owners["pair"]
    decision = plan.decision(DecisionKind.PREFERENCE, "gone", b)
    assert (decision.provider.slug, decision.route, decision.models, decision.chain) == ("openai/b", "gone", (), None)


# ---------------------------------------------------------------- routes sent with the request


def prefs(*routes: tuple[str, tuple[str, ...]]):
    return tuple(RequestPreference(Route(name, f"about {name}"), models) for name, models in routes)


def test_a_requests_pool_in_a_configured_order_fails_over_in_that_order():
    plan = resolve(config_of(), None, prefs(("mine", ("b", "c"))))
    decision = decide_route(plan, "mine")
    assert decision.provider.slug == "openai/b"
    assert chain(decision) == ["openai/b", "openai/c"] and slugs(decision.models) == ["openai/b", "openai/c"]


def test_a_requests_pool_in_an_order_not_configured_has_no_chain_of_its_own():
    decision = decide_route(resolve(config_of(), None, prefs(("mine", ("c", "b")))), "mine")
    assert decision.provider.slug == "openai/c"
    assert chain(decision) == ["openai/c", "openai/a"]  # the first model's own fallbacks


def test_a_requests_single_model_route_keeps_that_models_fallbacks():
    decision = decide_route(resolve(config_of(), None, prefs(("mine", ("a",)))), "mine")
    assert (decision.provider.slug, chain(decision), decision.models) == ("openai/a", ["openai/a", "openai/b"], ())


def test_without_a_default_the_requests_first_route_serves_what_no_route_fits():
    config = parse_config({"llm_providers": [{"model": "openai/a", "access_key": "k"},
                                             {"model": "openai/b", "access_key": "k"}]}, "t.yaml", {})
    plan = resolve(config, None, prefs(("first", ("b",)), ("second", ("a",))))
    assert isinstance(plan, RoutingPlan)
    decision = decide_route(plan, None)
    assert (decision.provider.slug, decision.kind) == ("openai/b", DecisionKind.DEFAULT)


def test_with_a_default_the_default_serves_what_no_route_of_the_request_fits():
    decision = decide_route(resolve(config_of(), None, prefs(("mine", ("c",)))), None)
    assert (decision.provider.slug, decision.kind, chain(decision)) == ("openai/a", DecisionKind.DEFAULT,
                                                                        ["openai/a", "openai/b"])


def test_a_named_model_serves_what_no_route_of_the_request_fits_with_its_rule_and_chain():
    plan = resolve(config_of(), "x", prefs(("mine", ("b",))))
    decision = decide_route(plan, None)
    assert (decision.provider.slug, decision.kind, decision.route) == ("openai/b", DecisionKind.ALIAS, None)
    assert chain(decision) == ["openai/b", "openai/c"]
    routed = decide_route(plan, "mine")
    assert (routed.provider.slug, routed.kind, routed.route) == ("openai/b", DecisionKind.PREFERENCE, "mine")


def test_a_route_given_twice_is_a_400_that_says_which():
    with pytest.raises(GatewayError) as caught:
        resolve(config_of(), None, prefs(("twice", ("a",)), ("twice", ("b",))))
    error = caught.value
    assert (error.status, error.param, error.message) == (400, "routing_preferences",
                                                          "routing preference 'twice' is given twice")


def test_a_requests_route_naming_an_unknown_model_is_a_400_listing_the_known_ones():
    with pytest.raises(GatewayError) as caught:
        resolve(config_of(), None, prefs(("mine", ("openai/a", "nope"))))
    error = caught.value
    assert (error.status, error.param) == (400, "routing_preferences")
    assert error.message == ("routing preference 'mine' names model 'nope', which is not configured; "
                             "known models and aliases: openai/a, openai/b, openai/c, groq/*, x, y")


def test_a_requests_route_may_name_slugs_bare_ids_and_aliases():
    plan = resolve(config_of(), None, prefs(("s", ("openai/c",)), ("i", ("c",)), ("a", ("y",))))
    assert [plan.owners[name].slug for name in ("s", "i", "a")] == ["openai/c"] * 3


# ---------------------------------------------------------------- errors a client reads


def test_an_unknown_model_is_a_404_naming_it_and_every_known_name():
    with pytest.raises(GatewayError) as caught:
        resolve(config_of(), "gpt-9", None)
    error = caught.value
    assert (error.status, error.param, error.code) == (404, "model", "model_not_found")
    assert error.message == ("model 'gpt-9' is not configured; known models and aliases: "
                             "openai/a, openai/b, openai/c, groq/*, x, y")


def test_no_model_and_no_default_is_a_400_naming_the_known_models():
    config = parse_config({"llm_providers": [{"model": "openai/a", "access_key": "k"},
                                             {"model": "openai/b", "access_key": "k"}]}, "t.yaml", {})
    with pytest.raises(GatewayError) as caught:
        resolve(config, None, None)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, "model", None)
    assert error.message == "no model given and no default model is configured; known models: openai/a, openai/b"


# ---------------------------------------------------------------- wildcard entries


def test_a_wildcard_entry_passes_any_id_of_its_provider_through():
    config = config_of()
    decision = resolve(config, "groq/llama-3.3-70b", None)
    assert (decision.provider.slug, decision.provider.model_id, decision.kind) == ("groq/llama-3.3-70b",
                                                                                   "llama-3.3-70b", DecisionKind.LITERAL)
    nested = resolve(config, "groq/meta-llama/Llama-4", None)
    assert (nested.provider.slug, nested.provider.model_id) == ("groq/meta-llama/Llama-4", "meta-llama/Llama-4")


def test_a_wildcard_provider_name_alone_is_not_a_model():
    with pytest.raises(GatewayError) as caught:
        resolve(config_of(), "groq", None)
    assert caught.value.status == 404


def test_a_bad_id_for_a_wildcard_entry_is_a_400_that_says_why():
    with pytest.raises(GatewayError) as caught:
        resolve(config_of(), "groq/bad id!", None)
    error = caught.value
    assert (error.status, error.param) == (400, "model")
    assert error.message == ("model 'groq/bad id!': 'bad id!' is not a model id (letters, digits and ._:@+/-, "
                             "at most 128 characters)")

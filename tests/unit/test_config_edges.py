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

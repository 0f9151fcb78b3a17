"""Governance's pure parts and the workers' side of it: which limits apply to whom, which models a
key may use, the wire format with Envoy's extension, confirmations against real stores (the
embedded one and a real Redis), and what is rendered for Envoy."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filter.config import parse_config
from filter.errors import ClientApi, GatewayError, error_body
from filter.governance import ModelAccess, policies
from filter.governance.protocol import Call, Delta, ProtocolError, encode_name, parse_call
from filter.governance.service import Governance, request_window
from filter.metrics import Metrics
from filter.render.governance import fast_route_clients, governance_metadata, settings_text
from filter.resolve import Decision, RoutingPlan, decide_route, resolve
from filter.state.embedded import EmbeddedStore
from filter.state.redis_store import RedisStore
from prometheus_client import CollectorRegistry
from tests.redis_server import RedisServer


def config(keys, **gateway):
    return parse_config({
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "k", "default": True, "limits": {"rpm": 100, "tpm": 5000}},
            {"model": "openai/gpt-4o-mini", "access_key": "k", "prices": {"input": 1, "output": 2}},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "k",
             "routing_preferences": [{"name": "code_generation", "description": "code"}]},
            {"model": "groq/llama-3.3-70b-versatile", "access_key": "k",
             "routing_preferences": [{"name": "chit_chat", "description": "small talk"}]},
            {"model": "together_ai/*", "access_key": "k", "prices": {"input": 0.5, "output": 0.5}},
        ],
        "model_aliases": {"fast-model": {"target": "gpt-4o-mini"}, "smart": {"target": "gpt-4o"}},
        "routing": {"engine": "none"},
        "gateway": {"client_keys": keys, **gateway},
    }, "test.yaml", env={})


def key(name, **settings):
    return {"name": name, "key": "secret-" + "".join(c if c.isalnum() else "-" for c in name), **settings}


# ---------------------------------------------------------------- policies


def test_a_key_has_its_own_limits_or_else_the_default_and_models_their_own():
    found = policies(config([key("own", limits={"rpm": 5}), key("plain"), key("budget", budget={"usd": 3})],
                            limits={"default": {"tpm": 900}}))
    assert (found["c:own"].rpm, found["c:own"].tpm) == (5, None)  # own limits replace the default
    assert (found["c:plain"].rpm, found["c:plain"].tpm) == (None, 900)
    assert (found["c:budget"].usd, found["c:budget"].period, found["c:budget"].tpm) == (3, "month", 900)
    assert (found["m:openai/gpt-4o"].rpm, found["m:openai/gpt-4o"].tpm) == (100, 5000)
    assert "m:openai/gpt-4o-mini" not in found


def test_keys_without_limits_or_budget_and_without_a_default_count_nothing():
    assert set(policies(config([key("a"), key("b")]))) == {"m:openai/gpt-4o"}


# ---------------------------------------------------------------- the models a key may use


def decide(cfg, client, model):
    access = ModelAccess(cfg)
    outcome = access.narrow(client, model, resolve(cfg, model, None))
    decision = outcome if isinstance(outcome, Decision) else decide_route(outcome, None)
    access.check(client, model, decision)
    return decision


def test_a_listed_model_may_be_named_any_way_and_a_listed_alias_only_by_its_name():
    cfg = config([key("m", models=["openai/gpt-4o"]), key("a", models=["fast-model"])])
    for name in ("openai/gpt-4o", "gpt-4o", "smart"):
        assert decide(cfg, "m", name).provider.slug == "openai/gpt-4o"
    assert decide(cfg, "a", "fast-model").provider.slug == "openai/gpt-4o-mini"
    for client, name in (("m", "gpt-4o-mini"), ("a", "openai/gpt-4o-mini"), ("a", "gpt-4o")):
        with pytest.raises(GatewayError) as denied:
            decide(cfg, client, name)
        assert denied.value.status == 403 and denied.value.code == "model_not_allowed"
    assert decide(cfg, "unrestricted-name-not-a-key", "gpt-4o-mini").provider.slug == "openai/gpt-4o-mini"


def test_a_wildcard_entry_is_listed_under_its_own_name():
    cfg = config([key("w", models=["together_ai/*"])])
    assert decide(cfg, "w", "together_ai/meta-llama/Llama-3-70b").provider.model_id == "meta-llama/Llama-3-70b"
    with pytest.raises(GatewayError):
        decide(cfg, "w", "gpt-4o")


def test_a_routed_request_is_routed_among_the_routes_the_key_may_use():
    cfg = config([key("code", models=["code_generation"]), key("by-model", models=["groq/llama-3.3-70b-versatile"]),
                  key("auto", models=["auto"]), key("none", models=["gpt-4o-mini"])])
    plan = ModelAccess(cfg).narrow("code", "auto", resolve(cfg, "auto", None))
    assert isinstance(plan, RoutingPlan) and [r.name for r in plan.routes] == ["code_generation"]
    # The router's "other": the default model, unless the key may not use it.
    assert decide(cfg, "code", "auto").provider.slug == "anthropic/claude-sonnet-4-5"
    assert decide(cfg, "by-model", None).provider.slug == "groq/llama-3.3-70b-versatile"
    assert decide(cfg, "auto", "auto").provider.slug == "openai/gpt-4o"  # `auto` listed: every route
    with pytest.raises(GatewayError) as denied:
        decide(cfg, "none", "auto")
    assert "'none' may not use 'auto'" in denied.value.message and "gpt-4o-mini" in denied.value.message


def test_a_pinned_or_routed_model_the_key_may_not_use_is_refused():
    cfg = config([key("code", models=["code_generation"])])
    plan = resolve(cfg, "auto", None)
    assert isinstance(plan, RoutingPlan)
    chit_chat = decide_route(plan, "chit_chat")  # e.g. a session pinned before the key was restricted
    with pytest.raises(GatewayError):
        ModelAccess(cfg).check("code", "auto", chit_chat)


# ---------------------------------------------------------------- the wire format


def test_a_call_is_read_back_as_written():
    name = "c:team a/%;ü"
    raw = (f"switchyard-governance 1\nnow 1796121159723\ncheck {encode_name(name)}\n"
           f"e {encode_name(name)} 29935352 2 180 1796169600 0.0223\n").encode()
    call = parse_call(raw)
    assert call.now_ms == 1796121159723 and call.checks == [name]
    assert call.deltas == [Delta(name, 29935352, 2.0, 180.0, 1796169600, 0.0223)]


@pytest.mark.parametrize("raw", [
    b"",
    b"hello\nnow 1\n",
    b"switchyard-governance 1\n",
    b"switchyard-governance 1\ncheck c:a\n",  # no time first
    b"switchyard-governance 1\nnow 1\ne c:a 1 -1 0 0 0\n",
    b"switchyard-governance 1\nnow 1\ne c:a 1 nan 0 0 0\n",
    b"switchyard-governance 1\nnow 1\ne c:a 1 1e13 0 0 0\n",
    b"switchyard-governance 1\nnow 1\ne x:a 1 1 0 0 0\n",
    b"switchyard-governance 1\nnow 1\ne c:a 1.5 1 0 0 0\n",
    b"switchyard-governance 1\nnow 1\nrm -rf /\n",
    b"switchyard-governance 1\nnow 1\n" + b"check c:a\n" * 20_001,
])
def test_calls_that_are_not_well_formed_are_refused(raw):
    with pytest.raises(ProtocolError):
        parse_call(raw)


# ---------------------------------------------------------------- the workers' side, real stores


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


STORE_DEADLINE_S = 30.0


@pytest.fixture(params=["embedded", "redis"])
def stores(request, tmp_path):
    """A factory of stores that share their data (two workers, or two replicas on one Redis)."""
    made = []
    prefix = f"g{time.monotonic_ns()}:"

    def make():
        # These tests count; a store operation missing its production deadline (250 ms) on a loaded
        # machine is the outage path, tested on its own (test_state.py, the e2e outage tests).
        if request.param == "embedded":
            store = EmbeddedStore(tmp_path, timeout_s=STORE_DEADLINE_S)
        else:
            store = RedisStore(request.getfixturevalue("redis_server").url, key_prefix=prefix,
                               timeout_s=STORE_DEADLINE_S)
        made.append(store)
        return store

    return make


NOW = datetime(2026, 12, 31, 23, 59, 30, tzinfo=timezone.utc).timestamp()


def answer_lines(raw: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in raw.decode().splitlines()[1:]:
        head, *rest = line.split(" ")
        out.setdefault(head, []).append(" ".join(rest))
    return out


def checking(entity: str, minute: int, period_end: int = 0) -> Call:
    return Call(int(NOW * 1000), [entity], [Delta(entity, minute, 0, 0, period_end, 0)])


def test_confirmations_from_many_workers_at_once_admit_exactly_the_limit(stores):
    cfg = config([key("team", limits={"rpm": 7})])
    workers = [Governance(cfg, stores(), Metrics(CollectorRegistry()), clock=lambda: NOW) for _ in range(3)]
    minute = int(NOW // 60)

    async def scenario():
        answers = await asyncio.gather(*(workers[i % 3].answer(checking("c:team", minute)) for i in range(20)))
        total = (await workers[0].store.read([request_window("c:team", minute).key]))[0]
        return [answer_lines(a)["verdict"][0] for a in answers], total

    verdicts, total = asyncio.run(scenario())
    assert verdicts.count("admit") == 7
    assert verdicts.count("refuse c:team requests") == 13
    assert total == 7  # a refused request was taken back out: the count is the limit, not 20


def test_tokens_and_spend_pushed_by_envoy_count_until_the_limit_or_the_budget(stores):
    cfg = config([key("team", limits={"tpm": 100}, budget={"usd": 1.0, "period": "day"})])
    worker = Governance(cfg, stores(), Metrics(CollectorRegistry()), clock=lambda: NOW)
    minute, day_end = int(NOW // 60), int(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())

    async def scenario():
        pushed = await worker.answer(Call(0, [], [Delta("c:team", minute, 3, 99, day_end, 0.6)]))
        first = await worker.answer(checking("c:team", minute, day_end))
        await worker.answer(Call(0, [], [Delta("c:team", minute, 0, 1, day_end, 0.0)]))
        second = await worker.answer(checking("c:team", minute, day_end))
        await worker.answer(Call(0, [], [Delta("c:team", minute, 0, 0, day_end, 0.5)]))
        third = await worker.answer(checking("c:team", minute, day_end))
        return pushed, first, second, third

    pushed, first, second, third = asyncio.run(scenario())
    # No rpm for this key: its requests are not counted, its tokens and spend are.
    assert answer_lines(pushed)["t"] == [f"c:team {minute} 0 99 {day_end} 0.59999999999999998"]
    assert answer_lines(first)["verdict"] == ["admit"]  # 99 < 100 tokens
    assert answer_lines(second)["verdict"] == ["refuse c:team tokens"]  # 100 ≥ 100
    assert answer_lines(third)["verdict"] == ["refuse c:team budget"]  # the budget first: 1.1 ≥ 1.0
    assert answer_lines(third)["now"] == [str(int(NOW * 1000))]


def test_a_confirmation_counts_in_the_workers_minute_and_period_whatever_envoys_clock_says(stores):
    cfg = config([key("team", limits={"rpm": 1}, budget={"usd": 1.0, "period": "month"})])
    worker = Governance(cfg, stores(), Metrics(CollectorRegistry()), clock=lambda: NOW)
    month_end = int(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    answer = asyncio.run(worker.answer(checking("c:team", 12345, 42)))
    assert answer_lines(answer)["t"] == [f"c:team {int(NOW // 60)} 1 0 {month_end} 0"]


def test_a_store_that_cannot_answer_says_so_and_is_counted(tmp_path):
    registry = CollectorRegistry()
    cfg = config([key("team", limits={"rpm": 3})])
    worker = Governance(cfg, RedisStore(f"unix://{tmp_path}/nothing.sock"), Metrics(registry), clock=lambda: NOW)
    answer = asyncio.run(worker.answer(checking("c:team", int(NOW // 60))))
    assert answer_lines(answer)["store"] == ["down"] and "verdict" not in answer_lines(answer)
    assert registry.get_sample_value("switchyard_limits_store_errors_total") == 1


# ---------------------------------------------------------------- what Envoy is given


def settings_lines(cfg) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for line in settings_text(cfg).splitlines():
        head, *words = line.split(" ")
        out.setdefault(head, []).append(words)
    return out


def test_envoy_gets_every_limit_and_price_and_never_a_key():
    cfg = config([key("team a; 50%", limits={"rpm": 5}, budget={"usd": 2.5, "period": "day"})],
                 limits={"fail_closed": True})
    lines = settings_lines(cfg)
    assert lines["fail_closed"] == [["1"]]
    assert ["c:team%20a%3B%2050%25", "5.0", "-", "2.5", "day"] in lines["limit"]
    assert ["m:openai/gpt-4o", "100.0", "5000.0", "-", "-"] in lines["limit"]
    prices = {words[0]: [float(w) for w in words[1:]] for words in lines["price"]}
    # USD per token; the entry overrides the table field by field (the table's cached input stays).
    assert prices["openai/gpt-4o-mini"] == pytest.approx([1e-6, 2e-6, 0.075e-6])
    assert prices["together_ai/%2A"] == [0.5e-6, 0.5e-6, 0.5e-6]  # a wildcard entry: its own prices only
    assert "secret-" not in settings_text(cfg)
    metadata = governance_metadata(cfg)
    assert metadata["version"] != governance_metadata(config([key("other", limits={"rpm": 5})]))["version"]


@given(message=st.text(max_size=200))
@settings(max_examples=50, deadline=None)
def test_the_error_bodies_envoy_fills_in_are_the_gateways_own(message):
    """prefix + the message as a JSON string's inside + suffix = the filter's error body."""
    from urllib.parse import unquote

    lines = {(words[0], words[1]): (unquote(words[2]), unquote(words[3]))
             for words in settings_lines(config([key("k")]))["body"]}
    inside = orjson.dumps(message).decode()[1:-1]
    for api in ClientApi:
        prefix, suffix = lines[(api.value, "rate")]
        assert orjson.loads(prefix + inside + suffix) == orjson.loads(
            error_body(api, GatewayError(429, message, code="rate_limit_exceeded")))
        prefix, suffix = lines[(api.value, "quota")]
        body = orjson.loads(prefix + inside + suffix)
        if api is ClientApi.MESSAGES:
            assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
        else:
            assert body == {"error": {"message": message, "type": "insufficient_quota", "param": None,
                                      "code": "insufficient_quota"}}


def test_a_fast_route_lists_the_keys_that_may_take_it_only_when_some_may_not():
    cfg = config([key("all"), key("mini", models=["fast-model"])])
    assert fast_route_clients(cfg, "fast-model", resolve(cfg, "fast-model", None)) is None
    assert fast_route_clients(cfg, "gpt-4o", resolve(cfg, "gpt-4o", None)) == ["all"]
    assert fast_route_clients(cfg, "openai/gpt-4o-mini", resolve(cfg, "openai/gpt-4o-mini", None)) == ["all"]


def test_spend_envoy_counted_before_a_period_ended_counts_in_that_period_not_the_new_one(stores):
    """A push that arrives just after midnight: its spend was yesterday's."""
    cfg = config([key("team", budget={"usd": 1.0, "period": "day"})])
    after_midnight = datetime(2027, 1, 1, 0, 0, 0, 200_000, tzinfo=timezone.utc).timestamp()
    worker = Governance(cfg, stores(), Metrics(CollectorRegistry()), clock=lambda: after_midnight)
    new_year = int(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    minute = int(after_midnight // 60)

    async def scenario():
        late = await worker.answer(Call(0, [], [Delta("c:team", minute - 1, 0, 0, new_year, 0.7)]))
        today = await worker.answer(checking("c:team", minute, new_year + 86400))
        return late, today

    late, today = asyncio.run(scenario())
    assert answer_lines(late)["t"] == [f"c:team {minute - 1} 0 0 {new_year} 0.69999999999999996"]
    assert answer_lines(today)["t"] == [f"c:team {minute} 0 0 {new_year + 86400} 0"]  # a new day starts at 0

"""The worker's router: decision cache, deadline, failures, and routes compiled at start-up.

A scripted engine stands in for the model: it answers what the test says and records what it was
asked, so each test sees exactly which decisions reached the engine.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from filter.config import Routing, parse_config
from filter.routing import Router
from filter.runtime import worker
from router_model.engine import Route, RouterError

CODE = (Route("code", "writing code"),)
POEMS = (Route("poems", "writing poems"),)
OTHER = object()  # the engine's "no route fits"
ASK = [{"role": "user", "content": "write something for me"}]


class ScriptedEngine:
    """Answers the first route of the list it is given (or what `answer` says); records calls."""

    name = "scripted"

    def __init__(self, answer=None):
        self.answer = answer
        self.calls: list[tuple[tuple[str, ...], str]] = []
        self.compiled: list[tuple[str, ...]] = []
        self.closed = False

    def index_for(self, routes):
        self.compiled.append(tuple(r.name for r in routes))

    async def choose(self, routes, messages):
        self.calls.append((tuple(r.name for r in routes), messages[-1]["content"]))
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer is OTHER:
            return None
        if isinstance(self.answer, asyncio.Event):
            await self.answer.wait()  # never set: the router's deadline must end the wait
        return self.answer if self.answer is not None else routes[0].name

    async def aclose(self):
        self.closed = True


def decide(router: Router, routes, messages=ASK):
    return asyncio.run(router.choose(routes, messages))


def test_the_same_conversation_with_another_route_list_is_decided_anew():
    engine = ScriptedEngine()
    router = Router(engine, Routing(cache_size=16))
    first, second = decide(router, CODE), decide(router, POEMS)
    assert (first.route, second.route) == ("code", "poems")
    assert second.outcome == "route"  # not the first list's cached answer
    assert engine.calls == [(("code",), "write something for me"), (("poems",), "write something for me")]


def test_an_identical_decision_comes_from_the_cache():
    engine = ScriptedEngine()
    router = Router(engine, Routing(cache_size=16))
    assert decide(router, CODE).outcome == "route"
    again = decide(router, CODE, [dict(ASK[0])])
    assert (again.route, again.outcome) == ("code", "cached")
    assert len(engine.calls) == 1
    other = decide(router, CODE, [{"role": "user", "content": "something else"}])
    assert other.outcome == "route" and len(engine.calls) == 2


def test_cache_size_zero_asks_the_engine_every_time():
    engine = ScriptedEngine()
    router = Router(engine, Routing(cache_size=0))
    outcomes = [decide(router, CODE).outcome for _ in range(3)]
    assert outcomes == ["route", "route", "route"]
    assert len(engine.calls) == 3


def test_the_cache_is_bounded_and_forgets_the_oldest_decision():
    engine = ScriptedEngine()
    router = Router(engine, Routing(cache_size=2))
    conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
    for conversation in conversations:
        decide(router, CODE, conversation)
    assert decide(router, CODE, conversations[2]).outcome == "cached"
    assert decide(router, CODE, conversations[1]).outcome == "cached"
    assert decide(router, CODE, conversations[0]).outcome == "route"  # evicted first
    assert len(engine.calls) == 4


def test_other_is_remembered_too():
    engine = ScriptedEngine(answer=OTHER)
    router = Router(engine, Routing(cache_size=4))
    first, second = decide(router, CODE), decide(router, CODE)
    assert (first.route, first.outcome) == (None, "other")
    assert (second.route, second.outcome) == (None, "cached")
    assert len(engine.calls) == 1


def test_a_missed_deadline_is_no_route_and_is_not_cached():
    never = asyncio.Event()
    engine = ScriptedEngine(answer=never)
    router = Router(engine, Routing(timeout_s=0.05, cache_size=16))
    answer = decide(router, CODE)
    assert (answer.route, answer.outcome) == (None, "timeout")
    engine.answer = None
    assert decide(router, CODE).outcome == "route"  # asked again: a timeout is not an answer


def test_an_engine_error_is_no_route_and_is_not_cached():
    engine = ScriptedEngine(answer=RouterError("connection refused"))
    router = Router(engine, Routing(cache_size=16))
    answer = decide(router, CODE)
    assert (answer.route, answer.outcome) == (None, "error")
    engine.answer = None
    assert decide(router, CODE).outcome == "route"


CONFIG = {
    "llm_providers": [
        {"model": "echo/general", "default": True},
        {"model": "echo/coder", "routing_preferences": [{"name": "code", "description": "writing code"},
                                                          {"name": "debug", "description": "fixing bugs"}]},
    ],
    "routing": {"engine": "embedded"},
}


def test_a_worker_compiles_its_configured_routes_before_it_serves(monkeypatch):
    """The embedded engine needs seconds to compile a route list: a worker does it at start-up,
    so no request waits for it (or misses its deadline because of it)."""
    engine = ScriptedEngine()
    monkeypatch.setattr("filter.routing.build_engine", lambda settings: engine)
    config = parse_config(CONFIG, "t.yaml", {})
    router = asyncio.run(worker.start_router(config))
    assert router is not None and router.engine is engine
    assert engine.compiled == [("code", "debug")]
    assert engine.calls == []


def test_a_worker_without_routing_has_no_router(monkeypatch):
    config = parse_config({**CONFIG, "routing": {"engine": "none"}}, "t.yaml", {})
    assert asyncio.run(worker.start_router(config)) is None


@pytest.mark.parametrize("cache_size", [0, 1])
def test_router_settings_reach_the_router(cache_size):
    router = Router(ScriptedEngine(), replace(Routing(), timeout_s=0.25, cache_size=cache_size))
    assert router.timeout_s == 0.25
    decide(router, CODE)
    assert (decide(router, CODE).outcome == "cached") is (cache_size > 0)

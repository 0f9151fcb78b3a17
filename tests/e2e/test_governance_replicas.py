"""Limits across replicas: two `switchyard up` on one real Redis hold one limit together; a Redis
outage fails open (logged, counted) or, with gateway.limits.fail_closed, refuses limited keys
with 503 — and both recover when Redis answers again."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.test_governance import HELLO, fresh_minute, metric
from tests.gateway import Gateway, eventually
from tests.governance_clock import GatewayClock
from tests.redis_server import RedisServer

KEYS = {"probe": {"rpm": 10}, "shared": {"rpm": 4}, "outage": {"rpm": 3}, "closed": {"rpm": 100}, "free": None,
        "busy": {"rpm": 1_000_000}}


def secret(name: str) -> str:
    return f"sk-replica-{name}-77c1"


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clock(tmp_path_factory):
    return GatewayClock(tmp_path_factory.mktemp("clock"))


def config(upstream, redis, **limits) -> dict:
    keys = [{"name": name, "key": secret(name), **({"limits": dict(rpm)} if rpm else {})} for name, rpm in KEYS.items()]
    return {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "sk-up", "base_url": f"{upstream.url}/v1",
                           "default": True}],
        "routing": {"engine": "none"},
        "gateway": {"client_keys": keys, "store": {"url": redis.url}, "limits": limits},
    }


@pytest.fixture(scope="module")
def replicas(upstream, redis, clock, tmp_path_factory):
    """Two replicas behind one Service, sharing the clock as machines synced by NTP do."""
    tmp = tmp_path_factory.mktemp("replicas")
    with Gateway(config(upstream, redis), tmp, env=clock.env) as a, Gateway(config(upstream, redis), tmp, env=clock.env) as b:
        yield a, b


@pytest.fixture(scope="module")
def closed(upstream, redis, clock, tmp_path_factory):
    with Gateway(config(upstream, redis, fail_closed=True), tmp_path_factory.mktemp("closed"), env=clock.env) as gw:
        yield gw


def ask(gateway, key: str):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret(key), max_retries=0)
    return client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)


def test_two_gateways_on_one_redis_hold_one_limit(replicas, clock, fresh):
    a, b = replicas
    fresh_minute(a, clock, ask)
    fresh_minute(b, clock, ask)
    fresh.clear()
    remaining = [ask(gateway, "shared").headers["x-ratelimit-remaining-requests"] for gateway in (a, b, a, b)]
    assert remaining == ["3", "2", "1", "0"]  # each replica sees the other's requests
    for gateway in (a, b):
        with pytest.raises(openai.RateLimitError):
            ask(gateway, "shared")
    assert len(fresh.received) == 4


def test_far_from_a_limit_what_one_replica_counts_on_its_own_reaches_the_other(replicas, clock):
    """A key far from its limit is judged and counted by each Envoy thread on its own copy of the
    counts (no shared memory, no round trip); those counts still reach the store and the other
    replica within a fraction of a second."""
    a, b = replicas
    fresh_minute(a, clock, ask)
    fresh_minute(b, clock, ask)
    limit, made = 1_000_000, 0

    def remaining(gateway) -> int:
        nonlocal made
        made += 1
        return int(ask(gateway, "busy").headers["x-ratelimit-remaining-requests"])

    remaining(b)
    for _ in range(5):
        remaining(a)
    # Without a's five, b would see at most its own requests and a's first: more left than this.
    eventually(lambda: _assert(remaining(b) <= limit - made), timeout=5)
    assert made < 40  # seen within a few tenths of a second, not at the minute's end


def test_a_redis_outage_fails_open_and_is_logged_and_counted(replicas, redis, clock):
    a, _ = replicas
    fresh_minute(a, clock, ask)
    redis.stop()
    try:
        before = metric(a, "switchyard_limits_unchecked_total")
        ask(a, "outage")  # admitted on this gateway's own count
        eventually(lambda: _assert(metric(a, "switchyard_limits_unchecked_total") > before))
        assert metric(a, "switchyard_limits_store_errors_total") >= 1
        assert "rate limits and budgets cannot reach the shared store" in a.output()
        # The limit still holds on this gateway's own counts.
        ask(a, "outage")
        ask(a, "outage")
        with pytest.raises(openai.RateLimitError):
            ask(a, "outage")
    finally:
        redis.start()


def test_fail_closed_refuses_limited_keys_with_503_while_redis_is_down(closed, redis, clock):
    ask(closed, "closed")
    redis.stop()
    try:
        def refused():
            # Admitted until this gateway learns of the outage (its next call to a worker, within 0.2 s).
            try:
                ask(closed, "closed")
            except openai.InternalServerError as error:
                return error
            raise AssertionError("admitted while the store is down")

        error = eventually(refused, timeout=10)
        assert error.status_code == 503 and error.code == "limits_unavailable"
        assert error.response.headers["retry-after"] == "1"
        assert ask(closed, "free").status_code == 200  # keys without limits are not held back
    finally:
        redis.start()
    eventually(lambda: ask(closed, "closed"), timeout=15, exceptions=(openai.InternalServerError,))


def _assert(condition: bool) -> None:
    assert condition

"""The compiled governance extension (envoy/switchyard_governance.c) on inputs Envoy cannot be made
to produce on demand: any instant (period ends, reset times), odd key names in error bodies,
exact costs, and the round trips it makes or saves. It runs in wasmtime under
tests/governance_wasm_host.py, every test twice: the governance module alone (what Envoy runs
with gateway.usage_metrics off) and the default one module with the metrics
(envoy/switchyard_extension.c); the end-to-end tests run it in Envoy."""

from __future__ import annotations

import functools
import math
import struct
from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from filter.catalog import ModelPrices
from filter.config import ConfigError, parse_config
from filter.governance.protocol import encode_name
from filter.render.governance import settings_text
from filter.state.windows import calendar_period
from tests.governance_wasm_host import COMBINED_EXTENSION, GOVERNANCE_EXTENSION, GovernanceHost

START = datetime(1971, 1, 1, tzinfo=timezone.utc).timestamp()
END = datetime(2199, 12, 31, tzinfo=timezone.utc).timestamp()
PRICES = {"input": 3.0, "output": 15.0, "cached_input": 0.3}


@pytest.fixture(autouse=True, params=[GOVERNANCE_EXTENSION, COMBINED_EXTENSION], ids=["alone", "with-metrics"])
def module(request, monkeypatch):
    monkeypatch.setattr(GovernanceHost, "module", request.param)


def gateway_settings(keys: list[dict], **providers) -> str:
    config = parse_config({
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "k", "default": True, "prices": dict(PRICES), **providers},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "k", "prices": dict(PRICES)},
        ],
        "routing": {"engine": "none"},
        "gateway": {"client_keys": keys} if keys else {},
    }, "t.yaml", env={})
    return settings_text(config)


def decision(client: str, model: str = "openai/gpt-4o", api: str = "openai", upstream_api: str = "openai") -> dict:
    return {"api": api, "model": model, "client": client, "upstream_api": upstream_api, "provider": model.split("/")[0]}


def worker_answer(call, *, verdict: str | None = "admit", requests=1, tokens=0, usd=0.0, store="ok",
                  now_ms: int | None = None) -> str:
    """What a worker answers: the totals of each entity the call named, in the minute and period
    the call named."""
    lines = ["switchyard-governance 1", f"store {store}"]
    if now_ms is not None:
        lines.append(f"now {now_ms}")
    if verdict is not None and call.lines("check"):
        lines.append(f"verdict {verdict}")
    for entity, minute, _, _, period, _ in call.lines("e"):
        lines.append(f"t {entity} {minute} {requests} {tokens} {period} {usd}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- calendar and clock


@functools.cache
def budget_host(period: str) -> GovernanceHost:
    """One VM for many examples (instantiating one takes a quarter of a second)."""
    return GovernanceHost(gateway_settings([{"name": "k", "key": "s", "budget": {"usd": 5, "period": period}}]))


@given(moment=st.floats(START, END), period=st.sampled_from(["day", "month"]))
@settings(max_examples=300, deadline=None)
def test_the_period_a_budget_counts_in_is_the_workers_calendar_period(moment, period):
    host = budget_host(period)
    host.now_ns = int(moment * 1000) * 1_000_000
    host.shared.clear()  # this entity's record of the last example: not known here
    host.start(decision("k"))
    (entity, minute, _, _, period_end, _), = host.calls[-1].lines("e")
    now = host.now_ns / 1e9
    assert entity == "c:k" and int(minute) == math.floor(now / 60)
    assert int(period_end) == calendar_period("x", period, now).resets_at


def go_duration(ms: int) -> str:
    """Go's time.Duration.String() at millisecond precision, as OpenAI writes x-ratelimit-reset-*."""
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def limits_host() -> GovernanceHost:
    return _limits_host(GovernanceHost.module)


@functools.cache
def _limits_host(_module) -> GovernanceHost:
    return GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 50, "tpm": 999}}]))


@given(into_minute_ms=st.integers(0, 59_999), minute=st.integers(29_000_000, 31_000_000))
@settings(max_examples=200, deadline=None)
def test_reset_headers_say_when_the_minute_ends_in_openais_format(into_minute_ms, minute):
    host = limits_host()
    host.now_ns = (minute * 60_000 + into_minute_ms) * 1_000_000
    host.shared.clear()
    request = host.start(decision("k"))
    host.answer(host.calls[-1], worker_answer(host.calls[-1], requests=1, tokens=30))
    headers = host.finish(request)
    left = 60_000 - into_minute_ms
    assert headers["x-ratelimit-reset-requests"] == go_duration(left) == headers["x-ratelimit-reset-tokens"]
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("50", "49")
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"]) == ("999", "969")


def test_envoy_follows_the_workers_clock():
    host = GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 5}}]), now_ms=1_796_000_000_000)
    request = host.start(decision("k"))
    day_later = 1_796_000_000_000 + 86_400_000
    host.answer(host.calls[0], worker_answer(host.calls[0], now_ms=day_later))
    host.finish(request)
    host.start(decision("k"))
    assert int(host.calls[1].lines("e")[0][1]) == day_later // 60_000


def test_every_thread_follows_the_clock_another_thread_learned():
    """The workers' clock jumped (a test's clock, or a worker's corrected one): a thread that did
    not get the answer counts in the workers' minute from its very next request near a limit."""
    a = GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 5}}]))
    b = GovernanceHost(a.settings.decode(), shared=a.shared, now_ms=a.now_ns // 1_000_000)
    request = a.start(decision("k"))
    day_later = a.now_ns // 1_000_000 + 86_400_000
    a.answer(a.calls[0], worker_answer(a.calls[0], now_ms=day_later))
    a.finish(request)
    b.start(decision("k"))
    assert int(b.calls[-1].lines("e")[0][1]) == day_later // 60_000


# ---------------------------------------------------------------- refusals


@given(name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
       api=st.sampled_from(["openai", "anthropic", "responses"]))
@settings(max_examples=25, deadline=None)
def test_a_refusal_names_the_key_exactly_in_the_clients_json(name, api):
    try:
        text = gateway_settings([{"name": name, "key": "s", "limits": {"rpm": 1}}])
    except ConfigError:  # a name the configuration refuses (empty, padded)
        reject()
    host = GovernanceHost(text)
    request = host.start(decision(name, api=api))
    host.answer(host.calls[0], worker_answer(host.calls[0], verdict=f"refuse {encode_name('c:' + name)} requests"))
    body = orjson.loads(request.reply.body)
    message = body["error"]["message"]
    assert request.reply.status == 429 and f"key '{name}': 1 requests per minute" in message
    if api == "anthropic":
        assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    else:
        assert body["error"]["code"] == "rate_limit_exceeded"
    assert request.reply.headers["x-switchyard-limited"] == "key_requests"
    assert "x-switchyard-limited" in request.request_headers  # the local-reply mapper keeps the body


def test_a_key_at_its_limit_is_refused_here_without_asking_anyone():
    host = GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 2}}]))
    for _ in range(2):
        request = host.start(decision("k"))
        host.answer(host.calls[-1], worker_answer(host.calls[-1], requests=len(host.calls)))
        assert request.continued
        host.finish(request)
    calls = len(host.calls)
    refused = host.start(decision("k"))
    assert refused.reply.status == 429 and len(host.calls) == calls
    assert 0 < int(refused.reply.headers["retry-after"]) <= 60


# ---------------------------------------------------------------- round trips made and saved


def test_far_from_a_limit_requests_are_admitted_here_and_within_a_tenth_of_it_confirmed():
    host = GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 100}}]))
    request = host.start(decision("k"))  # the first of the minute: the store's count is not known
    host.answer(host.calls[0], worker_answer(host.calls[0], requests=1))
    host.finish(request)
    admitted_here = 0
    while True:
        request = host.start(decision("k"))
        if not request.continued:
            break
        admitted_here += 1
        host.finish(request)
    # 89 more on this Envoy's count alone (1 + 89 = 90 = 100 minus the margin of 10), then a call.
    assert admitted_here == 89 and len(host.calls) == 2 and host.calls[1].lines("check") == [["c:k"]]


def threads(limits: dict, count: int = 2) -> list[GovernanceHost]:
    """`count` worker threads of one Envoy (one VM each, one shared data), every one of which has
    served the key's first request of the minute (so each knows the store's count)."""
    first = GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": limits}]))
    hosts = [first] + [GovernanceHost(first.settings.decode(), shared=first.shared, now_ms=first.now_ns // 1_000_000)
                       for _ in range(count - 1)]
    for host in hosts:
        request = host.start(decision("k"))
        if host.calls:
            host.answer(host.calls[-1], worker_answer(host.calls[-1], requests=1))
        host.finish(request)
    return hosts


def remaining(host: GovernanceHost, kind: str = "requests") -> int:
    request = host.start(decision("k"))
    assert request.continued
    return int(host.finish(request)[f"x-ratelimit-remaining-{kind}"])


def test_far_from_a_limit_each_thread_counts_alone_and_the_others_see_it_after_a_tick():
    a, b = threads({"rpm": 1_000_000})  # a's first request, then b's (which saw a's)
    before = dict(a.shared)
    assert [remaining(a) for _ in range(5)] == [10**6 - n for n in (2, 3, 4, 5, 6)]  # without b's first
    assert a.shared == before  # five requests, no shared data read or written
    assert remaining(b) == 10**6 - 3  # b has not seen a's five yet
    a.tick()  # a writes what it counted
    b.tick()  # b reads the shared counts again
    assert remaining(b) == 10**6 - 9  # all of them
    assert a.tick_period_ms == b.tick_period_ms == 100  # Envoy ticks every 0.1 s: that long at most


def test_near_a_limit_every_thread_sees_every_request_at_once():
    a, b = threads({"rpm": 50})  # 50 requests, shared by threads: too few to count alone
    assert [remaining(host) for host in (a, b, a, b)] == [47, 46, 45, 44]  # after the two first ones


def test_far_from_a_token_limit_tokens_are_counted_alone_near_it_at_once():
    a, b = threads({"tpm": 10_000_000})
    start = remaining(b, "tokens")
    request = a.start(decision("k"))
    a.finish(request, usage={"input_tokens": 1000, "output_tokens": 500})
    assert remaining(b, "tokens") == start  # not yet
    a.tick(), b.tick()
    assert remaining(b, "tokens") == start - 1500
    a, b = threads({"tpm": 100_000})
    start = remaining(b, "tokens")
    request = a.start(decision("k"))
    a.finish(request, usage={"input_tokens": 1000, "output_tokens": 500})
    assert remaining(b, "tokens") == start - 1500  # at once


def test_what_envoy_counted_alone_is_pushed_once_and_kept_when_the_push_fails():
    host = GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 1000}}]))
    first = host.start(decision("k"))
    host.answer(host.calls[0], worker_answer(host.calls[0], requests=1))
    host.finish(first)
    for _ in range(5):
        host.finish(host.start(decision("k")), usage={"input_tokens": 10, "output_tokens": 2})
    host.tick()
    push = host.calls[-1]
    assert push.lines("check") == [] and [float(x) for x in push.lines("e")[0][2:4]] == [5, 60]
    host.answer(push, None)  # the worker never answered
    host.advance(300)
    host.tick()
    assert [float(x) for x in host.calls[-1].lines("e")[0][2:4]] == [5, 60]  # sent again
    host.answer(host.calls[-1], worker_answer(host.calls[-1], verdict=None, requests=6, tokens=60))
    host.advance(300)
    host.tick()
    assert [float(x) for x in host.calls[-1].lines("e")[0][2:4]] == [0, 0]  # nothing counted twice


def test_fail_closed_refuses_with_503_when_the_store_cannot_confirm():
    text = gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 5}}]).replace("fail_closed 0", "fail_closed 1")
    host = GovernanceHost(text)
    request = host.start(decision("k"))
    host.answer(host.calls[0], worker_answer(host.calls[0], store="down"))
    assert request.reply.status == 503
    assert orjson.loads(request.reply.body)["error"]["code"] == "limits_unavailable"
    calls = len(host.calls)
    assert host.start(decision("k")).reply.status == 503 and len(host.calls) == calls  # no call per request
    assert host.start(decision("other-key-without-limits")).continued


def test_fail_open_admits_on_this_envoys_count_when_the_store_cannot_answer():
    host = GovernanceHost(gateway_settings([{"name": "k", "key": "s", "limits": {"rpm": 2}}]))
    request = host.start(decision("k"))
    host.answer(host.calls[0], None)
    assert request.continued
    host.finish(request)
    assert host.start(decision("k")).continued  # the outage is known: no call, admitted
    assert host.start(decision("k")).reply.status == 429  # this Envoy's own count still holds
    assert host.stats_value("switchyard_limits_unchecked_total") == 2


# ---------------------------------------------------------------- cost


def cost_host() -> GovernanceHost:
    return _cost_host(GovernanceHost.module)


@functools.cache
def _cost_host(_module) -> GovernanceHost:
    return GovernanceHost(gateway_settings([]))


@given(prompt=st.integers(0, 2_000_000), cached=st.integers(0, 2_000_000), written=st.integers(0, 100_000),
       output=st.integers(0, 200_000), anthropic=st.booleans())
@settings(max_examples=200, deadline=None)
def test_each_answer_costs_its_tokens_at_the_model_tables_prices(prompt, cached, written, output, anthropic):
    host = cost_host()
    model = "anthropic/claude-sonnet-4-5" if anthropic else "openai/gpt-4o"
    request = host.start(decision("", model=model, upstream_api="anthropic" if anthropic else "openai"))
    usage = {"input_tokens": prompt, "output_tokens": output, "cached_tokens": cached, "cache_write_tokens": written}
    # Anthropic's input_tokens leaves out cache reads and writes; OpenAI's prompt tokens include them.
    all_prompt = prompt + cached + written if anthropic else prompt
    expected = ModelPrices(PRICES["input"], PRICES["output"], PRICES["cached_input"], "config").cost(
        all_prompt, output, cached)
    labels = {"client": "", "provider": model.split("/")[0], "model": model}
    before = host.stats_value("switchyard_cost_usd_total", **labels)
    host.finish(request, usage=usage)
    assert host.stats_value("switchyard_cost_usd_total", **labels) - before == pytest.approx(round(expected * 1e9), abs=1)


def test_spend_of_a_fallback_is_priced_at_the_model_that_served():
    host = GovernanceHost(gateway_settings([]))
    request = host.start(decision("team", model="openai/gpt-4o"))
    host.finish(request, usage={"input_tokens": 1000, "output_tokens": 0}, served="anthropic/claude-sonnet-4-5")
    assert host.stats_value("switchyard_cost_usd_total", client="team", provider="anthropic",
                            model="anthropic/claude-sonnet-4-5") == 3_000_000  # 1000 × 3 USD/M = 0.003 USD, in nano-USD


def test_in_the_default_module_the_metrics_count_the_same_requests():
    """One filter, both parts: each request is counted by the metrics and priced by the
    governance (with the metrics off the governance runs alone: nothing else to count)."""
    host = GovernanceHost(gateway_settings([{"name": "team", "key": "s", "limits": {"rpm": 100}}]))
    request = host.start(decision("team"))
    host.answer(host.calls[0], worker_answer(host.calls[0], requests=1))
    request.properties[b"response\0code"] = struct.pack("<q", 200)
    host.finish(request, usage={"input_tokens": 1000, "output_tokens": 10})
    assert host.stats_value("switchyard_cost_usd_total", client="team", provider="openai", model="openai/gpt-4o") \
        == 3_150_000  # 1000 × 3 + 10 × 15 USD/M, in nano-USD
    host.tick()  # the metrics' flush
    counted = host.stats_value("switchyard_requests_total", client_api="openai", provider="openai", model="openai/gpt-4o",
                               decision="", route="", status_class="2xx", client="team")
    assert counted == (1 if GovernanceHost.module == COMBINED_EXTENSION else 0)

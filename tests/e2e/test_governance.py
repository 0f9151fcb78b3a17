"""Governance through the real Envoy with the official SDKs: named client keys, the models a key may
use, requests and tokens per minute (per key, per model, the default), budgets, cost, and the
x-ratelimit-* headers OpenAI clients read. One gateway on the embedded store; `make test` runs it
with the fast path on (the default) and off.

The gateway's clock is stepped forward by the test (tests/governance_clock.py) to the next minute,
day or month, where a real deployment would wait for it.
"""

from __future__ import annotations

import json
import math
import re
import signal
import threading

import anthropic
import httpx
import openai
import pytest

from tests.gateway import Gateway, eventually
from tests.governance_clock import GatewayClock
from tests.standins import openai_reply

PRICES = {"input": 1000.0, "output": 2000.0, "cached_input": 100.0}  # USD per million tokens
# The stand-in's usage: OpenAI 11 prompt tokens (3 of them cached) and 7 completion tokens;
# Anthropic 12 input + 4 cache reads and 9 output tokens.
OPENAI_TOKENS, ANTHROPIC_TOKENS = 11 + 7, 12 + 4 + 9
OPENAI_COST = ((11 - 3) * PRICES["input"] + 3 * PRICES["cached_input"] + 7 * PRICES["output"]) / 1e6  # 0.0223
MANY = {"limits": {"rpm": 1000}}  # keys other than default-key have their own limits: no default for them
KEYS = {
    "probe": {"limits": {"rpm": 10}},  # always confirmed with the workers: teaches Envoy a stepped clock
    "rpm-key": {"limits": {"rpm": 3}},
    "tpm-key": {"limits": {"tpm": 40}},
    "stream-key": {"limits": {"tpm": 30}},
    "default-key": {},
    "model-a": MANY, "model-b": MANY,
    "budget-key": {**MANY, "budget": {"usd": 0.05, "period": "day"}},
    "month-key": {**MANY, "budget": {"usd": 0.03, "period": "month"}},
    "translated-key": {"limits": {"rpm": 1}},
    "restricted": {**MANY, "models": ["fast-model", "code_generation"]},
    "claude-only": {**MANY, "models": ["anthropic/claude-sonnet-4-5"]},
    "responses-a": MANY, "responses-b": MANY,
    "headers-key": {"limits": {"rpm": 50, "tpm": 100_000}},
}


def secret(name: str) -> str:
    return f"sk-client-{name}-0f3a9"


@pytest.fixture(scope="module")
def clock(tmp_path_factory):
    return GatewayClock(tmp_path_factory.mktemp("clock"))


@pytest.fixture(scope="module")
def gateway(upstream, clock, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "sk-up-openai", "base_url": f"{upstream.url}/v1", "default": True,
             "prices": dict(PRICES)},
            {"model": "openai/gpt-4o-mini", "access_key": "sk-up-openai", "base_url": f"{upstream.url}/v1",
             "limits": {"rpm": 2}},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-up-anthropic", "base_url": f"{upstream.url}/v1",
             "prices": dict(PRICES), "routing_preferences": [{"name": "code_generation", "description": "writing code"}]},
            {"model": "local/qwen", "base_url": f"{upstream.url}/v1"},  # Chat Completions only: Responses translated
        ],
        "model_aliases": {"fast-model": {"target": "gpt-4o-mini"}},
        "routing": {"engine": "none"},
        "gateway": {
            "client_keys": [{"name": name, "key": secret(name), **json.loads(json.dumps(settings))}
                            for name, settings in KEYS.items()],
            "limits": {"default": {"rpm": 2}},
        },
    }
    with Gateway(config, tmp_path_factory.mktemp("governance"), env=clock.env) as gw:
        yield gw


def chat(gateway, key: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret(key), max_retries=kw.pop("max_retries", 0), **kw)


def claude(gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=secret(key), max_retries=0)


HELLO = [{"role": "user", "content": "hello"}]


def ask(gateway, key: str, model: str = "gpt-4o"):
    return chat(gateway, key).chat.completions.with_raw_response.create(model=model, messages=HELLO)


def fresh_minute(gateway, clock, ask=None) -> None:
    """Step the gateway into the first second of a new minute; the probe key's confirmation
    brings Envoy the workers' new clock."""
    clock.step_to(clock.next_minute() + 0.5)
    (ask or globals()["ask"])(gateway, "probe")


def admitted_soon(request, timeout: float = 5.0):
    """`request()` once Envoy has the stepped clock (the next answer from the workers brings it,
    within a sync period): until then it may still count the old minute."""
    return eventually(request, timeout, exceptions=(openai.RateLimitError,))


def seconds(duration: str) -> float:
    """OpenAI's reset format: 250ms, 12.5s, 6m0s."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:([\d.]+)s)?(?:(\d+)ms)?", duration)
    assert match and duration, duration
    minutes, secs, millis = match.groups()
    return int(minutes or 0) * 60 + float(secs or 0) + int(millis or 0) / 1000


def metric(gateway, name: str, **labels) -> float:
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- requests per minute


def test_a_key_over_its_requests_per_minute_gets_429_until_the_minute_ends(gateway, clock, fresh):
    fresh_minute(gateway, clock)
    fresh.clear()
    remaining = []
    for _ in range(3):
        raw = ask(gateway, "rpm-key")
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert 50 < seconds(raw.headers["x-ratelimit-reset-requests"]) <= 60
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        ask(gateway, "rpm-key")
    error = refused.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert "'rpm-key'" in error.message and "3 requests per minute" in error.message
    headers = error.response.headers
    assert 50 < int(headers["retry-after"]) <= 60
    assert_waits_agree(headers, "requests")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fresh.received) == 3  # the refused request never reached the provider

    # The next minute: admitted again, with the whole allowance.
    clock.step_to(clock.next_minute() + 0.5)
    raw = admitted_soon(lambda: ask(gateway, "rpm-key"))
    assert raw.headers["x-ratelimit-remaining-requests"] == "2"
    assert len(fresh.received) == 4


def assert_waits_agree(headers, kind: str) -> None:
    """retry-after (whole seconds, rounded up), retry-after-ms (what the OpenAI SDKs prefer) and
    x-ratelimit-reset-<kind> name the same moment: the end of the minute."""
    wait_ms = int(headers["retry-after-ms"])
    assert int(headers["retry-after"]) == max(1, math.ceil(wait_ms / 1000)), dict(headers)
    assert abs(seconds(headers[f"x-ratelimit-reset-{kind}"]) - wait_ms / 1000) < 0.0015, dict(headers)


def test_successful_answers_carry_the_limit_headers_whichever_path_serves_them(gateway, clock):
    """A literal model is served by Envoy alone when the fast path is on; a routed request (`auto`)
    and a Chat Completions request on an Anthropic model (translated, streamed or not) always go
    through the filter. Every answer carries the x-ratelimit-* headers, counted together."""
    fresh_minute(gateway, clock)
    client = chat(gateway, "headers-key")
    answers = [ask(gateway, "headers-key", "gpt-4o"), ask(gateway, "headers-key", "auto"),
               ask(gateway, "headers-key", "claude-sonnet-4-5"),
               claude(gateway, "headers-key").messages.with_raw_response.create(
                   model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)]
    with client.chat.completions.with_streaming_response.create(model="claude-sonnet-4-5", messages=HELLO,
                                                                stream=True) as streamed:
        assert "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    answers.append(streamed)
    assert answers[2].parse().choices[0].message.content  # the translated body is intact
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["49", "48", "47", "46", "45"]
    for answer in answers:
        headers = answer.headers
        assert headers["x-ratelimit-limit-requests"] == "50" and headers["x-ratelimit-limit-tokens"] == "100000"
        # Tokens count when each answer ends: at most the four before this one.
        assert 100_000 - 4 * ANTHROPIC_TOKENS <= int(headers["x-ratelimit-remaining-tokens"]) <= 100_000
        for kind in ("requests", "tokens"):
            assert 50 < seconds(headers[f"x-ratelimit-reset-{kind}"]) <= 60, dict(headers)


def test_a_key_without_limits_of_its_own_gets_the_default(gateway, clock):
    fresh_minute(gateway, clock)
    for _ in range(2):
        assert ask(gateway, "default-key").headers["x-ratelimit-limit-requests"] == "2"
    with pytest.raises(openai.RateLimitError):
        ask(gateway, "default-key")


def test_a_model_limit_holds_for_every_key_together(gateway, clock):
    fresh_minute(gateway, clock)
    ask(gateway, "model-a", "gpt-4o-mini")
    ask(gateway, "model-b", "fast-model")  # the alias names the same model
    with pytest.raises(openai.RateLimitError) as refused:
        ask(gateway, "model-a", "openai/gpt-4o-mini")
    assert "model 'openai/gpt-4o-mini' (all keys together): 2 requests per minute" in refused.value.message
    assert 50 < int(refused.value.response.headers["retry-after"]) <= 60
    assert_waits_agree(refused.value.response.headers, "requests")
    ask(gateway, "model-a", "gpt-4o")  # other models are not held back


# ---------------------------------------------------------------- tokens per minute


def test_tokens_per_minute_count_input_and_output_of_the_answers(gateway, clock):
    """Admitted on the tokens spent so far this minute, as the peers do: 0, then 25 < 40, then 50."""
    fresh_minute(gateway, clock)
    client = claude(gateway, "tpm-key")
    remaining = []
    for _ in range(2):
        raw = client.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)
        assert raw.headers["x-ratelimit-limit-tokens"] == "40"
        remaining.append(raw.headers["x-ratelimit-remaining-tokens"])
    assert remaining == ["40", str(40 - ANTHROPIC_TOKENS)]
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)
    body = refused.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "40 tokens per minute" in body["error"]["message"]
    headers = refused.value.response.headers
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert 50 < int(headers["retry-after"]) <= 60
    assert_waits_agree(headers, "tokens")


def test_a_stream_counts_its_tokens_when_it_ends(gateway, clock, fresh):
    """A stream's usage is known at its end: while it runs, the key has spent nothing."""
    fresh_minute(gateway, clock)
    held = {}

    def behaviour(request):
        reply = openai_reply(request)
        if request.json.get("stream") and "held" not in held:
            reply.hold_after = 2
            held["reply"] = reply
        return reply

    fresh.behaviour = behaviour
    client = chat(gateway, "stream-key")
    chunks = []

    def stream():
        with client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,
                                            stream_options={"include_usage": True}) as events:
            held["headers"] = events.response.headers
            chunks.extend(events)

    first = threading.Thread(target=stream)
    first.start()
    try:
        eventually(lambda: _assert("reply" in held and held["reply"].sent.is_set()), timeout=10)
        # The stream is open: its tokens are not counted yet.
        assert ask(gateway, "stream-key").headers["x-ratelimit-remaining-tokens"] == "30"
    finally:
        held["reply"].release.set()
        first.join(10)
    assert chunks and chunks[-1].usage.total_tokens == OPENAI_TOKENS
    assert held["headers"]["x-ratelimit-limit-tokens"] == "30"  # on streamed answers too
    # Both ended: 36 tokens ≥ 30.
    with pytest.raises(openai.RateLimitError):
        ask(gateway, "stream-key")


def _assert(condition: bool) -> None:
    assert condition


# ---------------------------------------------------------------- budgets and cost


def test_a_budget_stops_the_key_at_its_spend_until_the_day_ends(gateway, clock, fresh):
    """Each request costs 0.0223 USD at the configured prices: the fourth finds 0.0669 ≥ 0.05."""
    fresh_minute(gateway, clock)
    before = metric(gateway, "switchyard_cost_usd_total", client="budget-key", model="openai/gpt-4o")
    fresh.clear()
    for _ in range(3):
        ask(gateway, "budget-key")
    # Retries allowed: the SDK must not retry a spent budget (x-should-retry: false).
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gateway, "budget-key", max_retries=2).chat.completions.create(model="gpt-4o", messages=HELLO)
    error = refused.value
    assert error.code == "insufficient_quota" and error.body["type"] == "insufficient_quota"
    day_end = clock.next_day()
    reset = re.search(r"resets at (\S+Z)", error.message).group(1)
    assert reset == _iso(day_end)
    assert error.response.headers["x-should-retry"] == "false"
    assert abs(int(error.response.headers["retry-after"]) - (day_end - clock.now())) <= 3
    assert len(fresh.received) == 3
    assert metric(gateway, "switchyard_rate_limited_total", client="budget-key", limit="budget") == 1
    eventually(lambda: _close(metric(gateway, "switchyard_cost_usd_total", client="budget-key", model="openai/gpt-4o",
                                     provider="openai") - before, 3 * OPENAI_COST))

    clock.step_to(day_end + 1)
    admitted_soon(lambda: ask(gateway, "budget-key"))


def test_a_monthly_budget_resets_on_the_first_of_the_month(gateway, clock):
    fresh_minute(gateway, clock)
    ask(gateway, "month-key")
    ask(gateway, "month-key")  # 0.0223 < 0.03
    with pytest.raises(openai.RateLimitError) as refused:
        ask(gateway, "month-key")
    month_end = clock.next_month()
    assert "USD 0.03 per month" in refused.value.message and _iso(month_end) in refused.value.message
    clock.step_to(clock.next_day() + 1)  # a new day is not a new month
    fresh_minute(gateway, clock)
    with pytest.raises(openai.RateLimitError):
        ask(gateway, "month-key")
    clock.step_to(month_end + 1)
    admitted_soon(lambda: ask(gateway, "month-key"))


def test_spend_is_counted_per_key_and_model_from_each_answers_tokens(gateway, clock):
    fresh_minute(gateway, clock)
    labels = {"client": "model-b", "provider": "anthropic", "model": "anthropic/claude-sonnet-4-5"}
    before = metric(gateway, "switchyard_cost_usd_total", **labels)
    claude(gateway, "model-b").messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)
    # Anthropic: 12 input, 4 cache reads (priced as cached input), 9 output.
    expected = (12 * PRICES["input"] + 4 * PRICES["cached_input"] + 9 * PRICES["output"]) / 1e6
    eventually(lambda: _close(metric(gateway, "switchyard_cost_usd_total", **labels) - before, expected))
    # Every spend series is labelled by the key's name, the provider and the model; never a key.
    spend = series(gateway, "switchyard_cost_usd_total")
    assert spend and all(set(labels) == {"client", "provider", "model"} for labels in spend), spend
    assert {labels["client"] for labels in spend} <= set(KEYS), spend


def series(gateway, name: str) -> list[dict[str, str]]:
    """The label sets of one metric's series on /metrics."""
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found.append(dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line[len(name):line.rindex("}") + 1])))
    return found


def _close(value: float, expected: float) -> None:
    assert abs(value - expected) < 1e-9, (value, expected)


def _iso(moment: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- the models a key may use


def test_a_key_restricted_to_some_models_gets_403_in_its_clients_format(gateway, fresh):
    fresh.clear()
    with pytest.raises(openai.PermissionDeniedError) as denied:
        ask(gateway, "restricted", "gpt-4o")
    assert denied.value.code == "model_not_allowed"
    assert "fast-model" in denied.value.message and "code_generation" in denied.value.message
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        claude(gateway, "restricted").messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HELLO)
    assert denied.value.body["error"]["type"] == "permission_error"
    assert fresh.received == []

    assert ask(gateway, "restricted", "fast-model").headers["x-switchyard-model"] == "openai/gpt-4o-mini"
    # A routed request is routed among the routes the key may use; with no router here the
    # default model would serve, which this key may not use: its one route's model serves.
    routed = ask(gateway, "restricted", "auto")
    assert routed.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-5"
    assert ask(gateway, "probe", "auto").headers["x-switchyard-model"] == "openai/gpt-4o"


def test_a_model_a_fast_route_serves_is_refused_to_keys_that_may_not_use_it(gateway, fresh):
    fresh.clear()
    client = claude(gateway, "claude-only")
    client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HELLO)  # Envoy alone, or the filter
    with pytest.raises(openai.PermissionDeniedError):
        ask(gateway, "claude-only", "gpt-4o")
    assert [r.path for r in fresh.received] == ["/v1/messages"]


def test_a_model_a_key_may_not_use_is_refused_in_every_api_it_speaks(gateway, fresh):
    """Chat Completions, Messages, Responses and embeddings: a 403 in that API's own error format."""
    fresh.clear()
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        claude(gateway, "claude-only").messages.create(model="gpt-4o", max_tokens=10, messages=HELLO)
    assert denied.value.body["type"] == "error" and denied.value.body["error"]["type"] == "permission_error"
    assert "'claude-only'" in denied.value.body["error"]["message"]
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(gateway, "claude-only").responses.create(model="gpt-4o", input="hello")
    assert denied.value.code == "model_not_allowed" and "'claude-only'" in denied.value.message
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(gateway, "restricted").embeddings.create(model="gpt-4o", input="hello")
    assert denied.value.code == "model_not_allowed"
    assert fresh.received == []


# ---------------------------------------------------------------- names, formats, stored answers


def test_the_key_name_labels_logs_and_metrics_and_the_key_never_shows(gateway):
    ask(gateway, "model-a")
    lines = [json.loads(line) for line in gateway.output().splitlines() if line.startswith("{")]
    assert any(entry.get("client") == "model-a" and entry["status"] == 200 for entry in lines)
    eventually(lambda: _assert(metric(gateway, "switchyard_requests_total", client="model-a") >= 1))
    scraped = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    for name in KEYS:
        assert secret(name) not in gateway.output() and secret(name) not in scraped


def test_without_limits_or_budgets_spend_is_still_counted_per_key_and_model(upstream, tmp_path):
    """No key or model has a limit or a budget: the governance has nothing to enforce (under
    `switchyard up` Envoy then leaves its filter out and the request metrics count the cost), and
    the spend is counted as with limits: by key, provider and model, from each answer's tokens,
    streamed answers included."""
    config = {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True,
             "prices": dict(PRICES)},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "k", "base_url": f"{upstream.url}/v1",
             "prices": dict(PRICES)},
            {"model": "local/qwen", "base_url": f"{upstream.url}/v1"},  # no price: the model table has none
        ],
        "routing": {"engine": "none"},
        "gateway": {"client_keys": [{"name": name, "key": secret(name)} for name in ("team-a", "team-b")]},
    }
    with Gateway(config, tmp_path) as gw:
        ask(gw, "team-a")
        claude(gw, "team-b").messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)
        with chat(gw, "team-b").chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,
                                                         stream_options={"include_usage": True}) as stream:
            for _ in stream:
                pass
        ask(gw, "team-a", model="local/qwen")
        anthropic_cost = (12 * PRICES["input"] + 4 * PRICES["cached_input"] + 9 * PRICES["output"]) / 1e6
        eventually(lambda: _close(metric(gw, "switchyard_cost_usd_total", client="team-a", model="openai/gpt-4o"),
                                  OPENAI_COST))
        eventually(lambda: _close(metric(gw, "switchyard_cost_usd_total", client="team-b",
                                         model="anthropic/claude-sonnet-4-5"), anthropic_cost))
        assert metric(gw, "switchyard_cost_usd_total", client="team-b", model="openai/gpt-4o") > 0  # the stream
        assert metric(gw, "switchyard_cost_usd_total", model="local/qwen") == 0  # no price, no spend
        assert {s["client"] for s in series(gw, "switchyard_cost_usd_total")} == {"team-a", "team-b"}


def test_plain_keys_are_named_by_their_place_in_the_list_and_get_the_default(upstream, tmp_path):
    """Today's plain list keeps working: the second key is `key-2` in the metrics and the access
    log, limited by `gateway.limits.default`."""
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1",
                           "default": True, "prices": dict(PRICES)}],
        "routing": {"engine": "none"},
        "gateway": {"client_keys": [secret("plain-1"), secret("plain-2")], "limits": {"default": {"rpm": 5}}},
    }
    with Gateway(config, tmp_path) as gw:
        raw = ask(gw, "plain-2")
        assert raw.headers["x-ratelimit-limit-requests"] == "5"
        eventually(lambda: _close(metric(gw, "switchyard_cost_usd_total", client="key-2", model="openai/gpt-4o"),
                                  OPENAI_COST))
        assert metric(gw, "switchyard_cost_usd_total", client="key-1") == 0
        eventually(lambda: _assert(any(json.loads(line).get("client") == "key-2"
                                       for line in gw.output().splitlines() if line.startswith("{"))))
        scraped = httpx.get(f"http://127.0.0.1:{gw.metrics_port}/metrics").text
        for name in ("plain-1", "plain-2"):
            assert secret(name) not in scraped and secret(name) not in gw.output()


def test_a_translated_request_over_its_limit_gets_the_429_in_its_clients_format(gateway, clock):
    """A Chat Completions client on an Anthropic model: the refusal is OpenAI's, not translated."""
    fresh_minute(gateway, clock)
    ask(gateway, "translated-key", "claude-sonnet-4-5")
    with pytest.raises(openai.RateLimitError) as refused:
        ask(gateway, "translated-key", "claude-sonnet-4-5")
    assert refused.value.code == "rate_limit_exceeded" and "'translated-key'" in refused.value.message


def test_stored_responses_belong_to_the_key_that_made_them(gateway, fresh):
    first = chat(gateway, "responses-a").responses.create(model="local/qwen", input="remember the word kiwi")
    with pytest.raises(openai.BadRequestError) as unknown:
        chat(gateway, "responses-b").responses.create(model="local/qwen", input="which word?",
                                                      previous_response_id=first.id)
    assert unknown.value.param == "previous_response_id"
    fresh.clear()
    chat(gateway, "responses-a").responses.create(model="local/qwen", input="which word?",
                                                  previous_response_id=first.id)
    sent = fresh.received[-1].json["messages"]
    assert any("kiwi" in json.dumps(m) for m in sent)


def test_a_reload_changes_limits_at_once_and_keeps_what_was_counted(upstream, clock, tmp_path):
    from tests.e2e.test_reload import rewrite_keeping_mtime, wait_for

    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1",
                           "default": True}],
        "routing": {"engine": "none"},
        "gateway": {"client_keys": [{"name": "team", "key": secret("team"), "limits": {"rpm": 2}}]},
    }
    with Gateway(config, tmp_path, env=clock.env) as gw:
        fresh_minute(gw, clock, lambda g, _: None)
        ask(gw, "team")
        ask(gw, "team")
        with pytest.raises(openai.RateLimitError):
            ask(gw, "team")
        reloaded = json.loads(json.dumps(gw.config))
        reloaded["gateway"]["client_keys"] = [{"name": "team", "key": secret("team"), "limits": {"rpm": 3}},
                                              {"name": "new", "key": secret("new"), "limits": {"rpm": 1}}]
        rewrite_keeping_mtime(gw, reloaded)
        gw.process.send_signal(signal.SIGHUP)
        wait_for(gw, "configuration reloaded")
        raw = ask(gw, "team")  # the third of three: the two counted before the reload still count
        assert raw.headers["x-ratelimit-limit-requests"] == "3" and raw.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError):
            ask(gw, "team")
        assert ask(gw, "new").headers["x-ratelimit-limit-requests"] == "1"


def test_the_request_span_names_the_key_and_never_holds_it(upstream, tmp_path):
    from tests.e2e.test_tracing import Collector
    from tests.standins import StandIn

    collector = Collector()
    with StandIn(collector) as otlp:
        config = {
            "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1",
                               "default": True}],
            "routing": {"engine": "none"},
            "gateway": {"client_keys": [{"name": "traced-team", "key": secret("traced-team")}],
                        "tracing": {"otlp_endpoint": f"{otlp.url}/v1/traces"}},
        }
        with Gateway(config, tmp_path) as gw:
            ask(gw, "traced-team")

            def request_span():
                spans = [s for s in collector.spans if s["name"] == "switchyard.request" and
                         {"key": "url.path", "value": {"stringValue": "/v1/chat/completions"}} in s["attributes"]]
                assert spans
                return spans[0]

            span = eventually(request_span, timeout=10)
    attributes = {a["key"]: a["value"].get("stringValue") for a in span["attributes"]}
    assert attributes["switchyard.client"] == "traced-team"
    assert secret("traced-team") not in json.dumps(collector.spans)

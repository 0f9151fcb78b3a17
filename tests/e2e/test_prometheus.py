"""The Grafana dashboard's queries against a real Prometheus scraping a real gateway.

Prometheus (Debian's) scrapes the gateway's one `/metrics` every second while clients with two
named keys send a mix twice (a counter's rate needs its series in two scrapes); then every
panel's PromQL must be a query Prometheus accepts, and the panels the mix feeds must show it:
spend and requests by key, the pin rate, refusals by limit, failovers, tokens, first-token time.
"""

from __future__ import annotations

import json

import openai
import pytest

from tests.dashboard_metrics import dashboard_metric_names
from tests.gateway import REPO, Gateway, eventually
from tests.prometheus_server import PrometheusServer
from tests.standins import StandIn, code_generation_router, provider_down

KEYS = {"team-a": "sk-team-a-client", "team-b": "sk-team-b-client"}
DASHBOARD = REPO / "deploy" / "grafana" / "switchyard-dashboard.json"

@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    with StandIn(code_generation_router) as router, StandIn(provider_down) as broken:
        config = {
            "llm_providers": [
                {"model": "openai/gpt-4o-mini", "access_key": "sk-upstream", "base_url": f"{upstream.url}/v1",
                 "default": True},
                {"model": "openai/gpt-4o", "access_key": "sk-upstream", "base_url": f"{upstream.url}/v1",
                 "routing_preferences": [{"name": "code_generation", "description": "writing code"}]},
                {"model": "local/flaky", "base_url": f"{broken.url}/v1", "fallbacks": ["openai/gpt-4o-mini"]},
                {"model": "local/limited", "base_url": f"{upstream.url}/v1", "limits": {"rpm": 1}},
            ],
            "routing": {"engine": "arch-router", "endpoint": f"{router.url}/v1", "timeout": "1s"},
            "failover": {"retries": 0},
            "gateway": {"client_keys": [{"name": name, "key": key} for name, key in KEYS.items()]},
        }
        with Gateway(config, tmp_path_factory.mktemp("prometheus-gateway")) as gw:
            yield gw


def send_mix(gateway, round_: int) -> int:
    """One round of the mix; returns how many requests it sent."""
    sent = 0
    for name, key in KEYS.items():
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        hello = [{"role": "user", "content": f"hello from {name}, round {round_}"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=hello)
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=hello, stream=True,
                                                stream_options={"include_usage": True}):
            pass
        sent += 2
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS["team-a"], max_retries=0)
    tools = [{"type": "function", "function": {"name": "run", "parameters": {"type": "object", "properties": {}}}}]
    task = [{"role": "user", "content": f"write a function that adds two numbers ({round_})"}]
    client.chat.completions.create(model="auto", messages=task, tools=tools)  # a new user turn: routed
    step = task + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{round_}", "type": "function", "function": {"name": "run", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": f"call_{round_}", "content": "ok"}]
    client.chat.completions.create(model="auto", messages=step, tools=tools)  # its tool step: pinned
    client.chat.completions.create(model="local/flaky", messages=task)  # fails over
    sent += 3
    for attempt in range(3):  # rpm 1: at most one per minute is served, so one of three is refused
        sent += 1
        try:
            client.chat.completions.create(model="local/limited", messages=task)
        except openai.RateLimitError:
            break
    else:
        raise AssertionError("three requests in a row under rpm 1 and none refused")
    return sent


def panel_queries() -> dict[str, list[str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.setdefault(panel["title"], []).append(target["expr"].replace("$__rate_interval", "5m"))
    return queries


@pytest.fixture(scope="module")
def prometheus(gateway, tmp_path_factory):
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{gateway.metrics_port}"]) as prom:
        eventually(lambda: _assert_scraped(prom), timeout=30)
        total = 0
        for round_ in (1, 2):
            total += send_mix(gateway, round_)
            eventually(lambda: _assert_counted(prom, total), timeout=30)
        yield prom


def _assert_scraped(prom):
    up = prom.query('up{job="switchyard"}')
    assert up and up[0]["value"][1] == "1", up


def _assert_counted(prom, total):
    counted = prom.query("sum(switchyard_requests_total)")
    assert counted and float(counted[0]["value"][1]) >= total, counted


def values(prom, expr: str) -> dict[tuple, float]:
    return {tuple(sorted(series["metric"].items())): float(series["value"][1]) for series in prom.query(expr)}


def test_every_panel_query_is_one_prometheus_accepts_on_metrics_it_scraped(prometheus):
    queries = panel_queries()
    assert len(queries) >= 25
    for title, exprs in queries.items():
        for expr in exprs:
            prometheus.query(expr)  # raises with Prometheus' error on a query it refuses
    scraped = {name for (name,) in (tuple(s["metric"].values()) for s in prometheus.query(
        'group by (__name__) ({job="switchyard"})'))}
    bases = {name.removesuffix(suffix) for name in scraped for suffix in ("_bucket", "_sum", "_count", "")}
    assert dashboard_metric_names(DASHBOARD) <= bases, dashboard_metric_names(DASHBOARD) - bases


def test_the_spend_and_key_panels_show_each_key_by_its_name(prometheus):
    queries = panel_queries()
    spend = values(prometheus, queries["Spend USD/h by key"][0])
    assert {dict(k).get("client") for k, v in spend.items() if v > 0} == set(KEYS)
    by_model = values(prometheus, queries["Spend USD/h by model"][0])
    assert any(dict(k).get("model") == "openai/gpt-4o-mini" and v > 0 for k, v in by_model.items()), by_model
    requests = values(prometheus, queries["Requests/s by key"][0])
    assert {dict(k).get("client") for k, v in requests.items() if v > 0} == set(KEYS)
    for key in KEYS.values():  # names label the series, never the keys
        assert key not in json.dumps(prometheus.query("{__name__=~\"switchyard_.*|gen_ai_.*\"}"))


def test_the_pin_rate_panel_shows_the_pinned_tool_steps(prometheus):
    queries = panel_queries()
    (pin_rate,) = values(prometheus, queries["Pin rate"][0]).values()
    assert 0 < pin_rate < 1  # one routed user turn and one pinned tool step per round
    outcomes = values(prometheus, queries["Session decisions/s by outcome"][0])
    assert {dict(k)["outcome"] for k, v in outcomes.items() if v > 0} >= {"routed", "pinned"}


def test_refusals_failovers_tokens_and_first_tokens_are_on_their_panels(prometheus):
    queries = panel_queries()
    refused = values(prometheus, queries["Refused by limits/s"][0])
    assert any(v > 0 for v in refused.values()), refused
    failovers = values(prometheus, queries["Failovers/s by reason"][0])
    assert any(v > 0 for v in failovers.values()), failovers
    (tokens,) = values(prometheus, queries["Tokens/s"][0]).values()
    assert tokens > 0
    first = values(prometheus, queries["Time to first token by model"][0])
    assert any(dict(k).get("gen_ai_request_model") == "openai/gpt-4o-mini" for k in first), first

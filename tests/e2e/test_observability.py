"""Metrics across several workers, the access log, and Envoy's own stats, from a real run."""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dashboard_metrics import dashboard_metric_names
from tests.gateway import REPO, Gateway, eventually
from tests.standins import StandIn, code_generation_router, provider_down

KEY = "sk-observability-upstream-key"


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    with StandIn(code_generation_router) as router, StandIn(provider_down) as broken:
        config = {
            "llm_providers": [
                {"model": "openai/gpt-4o-mini", "access_key": KEY, "base_url": f"{upstream.url}/v1", "default": True},
                {"model": "local/flaky", "base_url": f"{broken.url}/v1", "fallbacks": ["openai/gpt-4o-mini"]},
                {"model": "openai/gpt-4o", "access_key": KEY, "base_url": f"{upstream.url}/v1",
                 "routing_preferences": [{"name": "code_generation", "description": "writing code"}]},
                {"model": "anthropic/claude-sonnet-4-5", "access_key": KEY, "base_url": f"{upstream.url}/v1"},
                # One request per minute, all clients together: the traffic's second one is refused.
                {"model": "local/limited", "base_url": f"{upstream.url}/v1", "limits": {"rpm": 1}},
            ],
            "routing": {"engine": "arch-router", "endpoint": f"{router.url}/v1", "timeout": "1s"},
            "failover": {"retries": 0},
        }
        with Gateway(config, tmp_path_factory.mktemp("observability"), workers=2) as gw:
            yield gw


def scrape(gateway) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, val) in ls for k, val in labels.items()))


@pytest.fixture(scope="module")
def traffic(gateway):
    """A known mix of requests, sent once; the tests read what it left behind."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client", max_retries=0)
    hello = [{"role": "user", "content": "hello"}]
    for _ in range(6):  # spread across both workers
        client.chat.completions.create(model="gpt-4o-mini", messages=hello)
    for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=hello, stream=True,
                                                stream_options={"include_usage": True}):
        pass
    client.chat.completions.create(model="claude-sonnet-4-5", messages=hello)  # translated
    for chunk in client.chat.completions.create(model="claude-sonnet-4-5", messages=hello, stream=True):
        assert len(chunk.choices) == 1  # no usage chunk unless asked for (stream_options.include_usage)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "write a function"}])
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "how are you"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=hello)
    client.chat.completions.create(model="local/flaky", messages=hello)  # fails over to gpt-4o-mini
    client.chat.completions.create(model="local/limited", messages=hello)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="local/limited", messages=hello)
    return client


def test_requests_are_counted_by_model_decision_route_and_status(gateway, traffic):
    def check():
        s = scrape(gateway)
        assert total(s, "switchyard_requests_total", model="openai/gpt-4o-mini", decision="literal", status_class="2xx") == 7
        assert total(s, "switchyard_requests_total", model="openai/gpt-4o", decision="preference",
                     route="code_generation", client_api="openai") == 1
        assert total(s, "switchyard_requests_total", model="openai/gpt-4o-mini", decision="default") == 1
        # The unknown model's 404 and local/limited's 429.
        assert total(s, "switchyard_requests_total", status_class="4xx") == 2
        assert total(s, "switchyard_requests_total", model="local/limited", status_class="4xx") == 1
        assert total(s, "switchyard_requests_total", model="anthropic/claude-sonnet-4-5", status_class="2xx") == 2
    eventually(check)


def test_only_client_requests_are_counted(gateway, traffic):
    """The traffic's 15 requests, and not the gateway's own readiness check at start-up."""
    def check():
        assert total(scrape(gateway), "switchyard_requests_total") == 15
    eventually(check)


def test_router_outcomes_and_latency(gateway, traffic):
    s = scrape(gateway)
    assert total(s, "switchyard_router_decisions_total", engine="arch-router", outcome="route") == 1
    assert total(s, "switchyard_router_decisions_total", engine="arch-router", outcome="other") == 1
    assert total(s, "switchyard_routing_decision_duration_seconds_count", engine="arch-router") == 2


def test_token_usage_is_read_from_json_and_streamed_responses_in_both_wire_formats(gateway, traffic):
    def check():
        s = scrape(gateway)
        # Nine answers from gpt-4o-mini (6 JSON, 1 streamed, 1 routed to the default, 1 fallback), each
        # reporting 11 prompt (3 cached) and 7 completion tokens.
        mini = {"gen_ai_request_model": "openai/gpt-4o-mini"}
        assert total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **mini) == 11 * 9
        assert total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="output", **mini) == 7 * 9
        assert total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="cached_input", **mini) == 3 * 9
        # The Anthropic stand-in, a JSON answer and a stream that sent the client no usage: each
        # 12 input + 4 cache reads, 9 output.
        claude = {"gen_ai_request_model": "anthropic/claude-sonnet-4-5", "gen_ai_provider_name": "anthropic"}
        assert total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **claude) == 2 * 16
        assert total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="cached_input", **claude) == 2 * 4
        assert total(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="output", **claude) == 2 * 9
    eventually(check)


def test_upstream_duration_and_time_to_first_token(gateway, traffic):
    def check():
        s = scrape(gateway)
        mini = {"gen_ai_request_model": "openai/gpt-4o-mini"}
        assert total(s, "gen_ai_client_operation_duration_seconds_count", **mini) == 9
        assert total(s, "gen_ai_server_time_to_first_token_seconds_count", **mini) == 9
    eventually(check)


def test_failovers_are_counted_and_the_fallback_is_labelled(gateway, traffic):
    def check():
        s = scrape(gateway)
        assert total(s, "switchyard_failovers_total", from_model="local/flaky", to_model="openai/gpt-4o-mini",
                     reason="http_503") == 1
        assert total(s, "switchyard_requests_total", model="openai/gpt-4o-mini", decision="fallback") == 1
    eventually(check)


def test_every_metric_the_dashboard_queries_is_exported(gateway, traffic):
    queried = dashboard_metric_names(REPO / "deploy" / "grafana" / "switchyard-dashboard.json")
    assert queried, "the dashboard queries no metric"

    def check():
        exported = set()
        for url in (f"http://127.0.0.1:{gateway.metrics_port}/metrics",
                    f"http://127.0.0.1:{gateway.admin_port}/stats/prometheus"):
            for family in text_string_to_metric_families(httpx.get(url).text):
                exported.update(sample.name for sample in family.samples)
                exported.add(family.name)
        missing = {name for name in queried if not {name, name + "_total", name + "_bucket", name + "_count"} & exported}
        assert missing == set()
    eventually(check)


def test_metrics_carry_no_keys_and_envoy_stats_stay_available(gateway, traffic):
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    assert KEY not in text
    envoy = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/stats/prometheus").text
    assert "envoy_http_downstream_rq_total" in envoy
    assert "envoy_cluster_upstream_rq_total" in envoy


def test_access_log_has_one_json_line_per_request_without_content_or_keys(gateway, traffic):
    def lines():
        found = []
        for line in gateway.output().splitlines():
            if line.startswith("{") and '"decision"' in line:
                found.append(json.loads(line))
        return found

    def check():
        entries = lines()
        # Envoy flushes its log every 500 ms: wait until every request of the traffic is in it.
        assert len(entries) >= 15
        assert len([e for e in entries if e["model"] == "openai/gpt-4o-mini" and e["decision"] == "literal"]) == 8
        return entries

    entries = eventually(check)
    routed = [e for e in entries if e["route"] == "code_generation"]
    assert routed and routed[0]["model"] == "openai/gpt-4o" and routed[0]["decision"] == "preference"
    assert routed[0]["status"] == 200 and routed[0]["client_api"] == "openai"
    # Six JSON answers, one streamed answer and one fallback (its second attempt served): token
    # counts for every kind.
    plain = [e for e in entries if e["model"] == "openai/gpt-4o-mini" and e["decision"] == "literal"]
    assert len(plain) == 8 and sorted(e["attempts"] for e in plain) == [1] * 7 + [2]
    assert all((e["input_tokens"], e["output_tokens"], e["cached_tokens"]) == (11, 7, 3) for e in plain)
    # The Anthropic answers (JSON and streamed): input counted as the metrics count it, every
    # prompt token (12 + 4 cache reads), not Anthropic's own input_tokens (12).
    claude = [e for e in entries if e["model"] == "anthropic/claude-sonnet-4-5"]
    assert [(e["input_tokens"], e["output_tokens"], e["cached_tokens"]) for e in claude] == [(16, 9, 4)] * 2
    assert all(isinstance(e["duration_ms"], int) for e in entries)
    log = gateway.output()
    assert KEY not in log and "write a function" not in log and "hello" not in log


def test_usage_metrics_off_serves_requests_without_streaming_the_access_log(upstream, fresh, tmp_path):
    """`gateway.usage_metrics: false`: Envoy counts no requests or tokens (no metrics extension,
    and no gRPC access log either); the JSON access log and the answers are unchanged."""
    config = {"llm_providers": [{"model": "openai/gpt-4o", "access_key": KEY, "base_url": f"{upstream.url}/v1",
                                 "default": True}],
              "routing": {"engine": "none"}, "gateway": {"usage_metrics": False}}
    with Gateway(config, tmp_path) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client", max_retries=0)
        hello = [{"role": "user", "content": "hello"}]
        assert client.chat.completions.create(model="gpt-4o", messages=hello).usage.prompt_tokens == 11
        assert "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="gpt-4o", messages=hello, stream=True) if c.choices)

        def logged():
            lines = [json.loads(line) for line in gateway.output().splitlines()
                     if line.startswith("{") and '"decision":"literal"' in line]
            assert len(lines) == 2
        eventually(logged, timeout=10)
        envoy = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/stats?filter=grpc_access_log").text
        assert envoy.strip() == ""  # no gRPC access logger at all
        s = scrape(gateway)
        assert total(s, "switchyard_requests_total") == 0
        assert total(s, "gen_ai_client_token_usage_sum") == 0


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_metrics_listen_on_loopback_and_idle_connections_take_no_thread(gateway, traffic):
    port = gateway.metrics_port
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only: gateway.metrics_address's default
    supervisor = gateway.process.pid

    def threads() -> int:
        status = open(f"/proc/{supervisor}/status").read()
        return int(status.split("Threads:")[1].split()[0])

    before = threads()
    idle = []
    try:
        for _ in range(300):  # connections that never send a request
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scraped.status_code == 200 and "switchyard_requests_total" in scraped.text
        assert threads() <= before + 2
        assert httpx.post(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 405
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404
    finally:
        for connection in idle:
            connection.close()

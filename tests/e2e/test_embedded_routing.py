"""The default engine end to end: `make run`'s demo configuration routes by preference offline."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
import yaml

from tests.gateway import REPO, Gateway


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config = yaml.safe_load((REPO / "examples" / "demo.yaml").read_text())
    config.pop("listeners")  # the test picks free ports
    config.pop("gateway")
    with Gateway(config, tmp_path_factory.mktemp("demo"), workers=2) as gateway:
        yield gateway


@pytest.mark.parametrize(
    "question, model, route",
    [
        ("write a python function that reverses a linked list", "echo/coder", "code_generation"),
        ("why does this stack trace say NoneType has no attribute 'get'?", "echo/coder", "code_understanding"),
        ("write a short poem about autumn leaves", "echo/writer", "creative_writing"),
    ],
)
def test_demo_routes_by_preference_with_the_embedded_engine(demo, question, model, route):
    client = openai.OpenAI(base_url=f"{demo.url}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": question}])
    assert raw.headers["x-switchyard-model"] == model
    assert raw.headers["x-switchyard-route"] == route
    assert raw.parse().choices[0].message.content.startswith(f"[{model} (route: {route})]")


def test_small_talk_goes_to_the_default(demo):
    decision = httpx.post(f"{demo.url}/routing/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "thanks, have a nice weekend!"}]}).json()
    assert decision["model"] == "echo/general" and decision["route"] is None


def test_first_decision_is_fast_because_routes_are_compiled_at_start_up(demo):
    start = time.monotonic()
    decision = httpx.post(f"{demo.url}/routing/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "implement binary search in rust"}]}).json()
    assert decision["decision"] == "preference"
    assert decision["router_ms"] < 500  # a cold route list takes seconds to compile
    assert time.monotonic() - start < 2

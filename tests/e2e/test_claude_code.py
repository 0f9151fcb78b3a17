"""Claude Code (the real CLI, pinned in tests/clients) completing prompts through Switchyard.

Claude Code sends its own model name, about 50-90 KB bodies with a dozen tools, `?beta=true` and
Anthropic headers. With `unknown_model: route` preference routing picks the provider: an
OpenAI-compatible model (the gateway translates both ways, streaming) or an Anthropic one.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.gateway import Gateway
from tests.pinned import require_client
from tests.standins import StandIn, anthropic_reply, json_reply, openai_reply



@pytest.fixture(scope="module", autouse=True)
def claude_cli() -> Path:
    """Claude Code itself: without it these tests skip, and fail under CI."""
    return require_client("claude")


def router_behaviour(request):
    """A stand-in Arch-Router: poems go to the Anthropic route, everything else to the coding route."""
    prompt = request.json["messages"][0]["content"]
    conversation = prompt.split("<conversation>")[1]
    route = "creative_writing" if "poem" in conversation else "code_generation"
    return json_reply(200, {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                  "content": json.dumps({"route": route})}}]})


def provider_behaviour(request):
    if request.path.split("?")[0].endswith("/messages"):
        return anthropic_reply(request, text="ANTHROPIC-SERVED")
    return openai_reply(request, text="OPENAI-SERVED")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("claude-code")
    with StandIn(provider_behaviour) as providers, StandIn(router_behaviour) as router:
        config = {
            "llm_providers": [
                {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-ant-upstream", "base_url": f"{providers.url}/v1",
                 "default": True,
                 "routing_preferences": [{"name": "creative_writing", "description": "poems and stories"}]},
                {"model": "openai/gpt-4o", "access_key": "sk-openai-upstream", "base_url": f"{providers.url}/v1",
                 "routing_preferences": [{"name": "code_generation", "description": "writing code"}]},
            ],
            "routing": {"engine": "arch-router", "endpoint": f"{router.url}/v1", "timeout": "2s", "unknown_model": "route"},
        }
        with Gateway(config, tmp) as gateway:
            yield gateway, providers, tmp


def claude(gateway: Gateway, tmp: Path, prompt: str) -> subprocess.CompletedProcess:
    cli = require_client("claude")
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": "sk-client-side-key",
        "ANTHROPIC_MODEL": "claude-opus-4-1",  # not configured: routed by preference
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
    }
    return subprocess.run([str(cli), "-p", prompt], env=env, cwd=tmp, capture_output=True, text=True, timeout=120)


def completes(setup, prompt: str, served_by: str):
    """Run `claude -p`, check it printed the chosen provider's answer; the request that provider got."""
    gateway, providers, tmp = setup
    providers.clear()
    result = claude(gateway, tmp, prompt)
    assert result.returncode == 0, result.stderr
    assert served_by in result.stdout
    request = providers.received[-1]
    assert "sk-client-side-key" not in json.dumps(request.headers)
    return request


def test_claude_code_routed_to_an_openai_compatible_model(setup):
    request = completes(setup, "write a python function that adds two numbers", "OPENAI-SERVED")
    assert request.path == "/v1/chat/completions"
    body = request.json
    assert body["model"] == "gpt-4o" and body["stream"] is True
    assert len(body["tools"]) >= 5 and len(request.body) > 20_000  # real agent traffic
    assert request.headers["authorization"] == "Bearer sk-openai-upstream"
    # What the real gpt-4o accepts (the stand-in refuses anything else): at most 16,384 output
    # tokens and no reasoning parameters, whatever Claude Code asked of its own model.
    assert body["max_completion_tokens"] <= 16_384
    assert "reasoning_effort" not in body and "max_tokens" not in body


def test_claude_code_routed_to_an_anthropic_model(setup):
    request = completes(setup, "write a short poem about the sea", "ANTHROPIC-SERVED")
    assert request.path == "/v1/messages?beta=true"
    assert request.json["model"] == "claude-sonnet-4-5"
    assert request.headers["x-api-key"] == "sk-ant-upstream"
    assert "anthropic-beta" in request.headers

"""Plano's twelve published gateway and routing configurations start as they are: `switchyard
up` on each (only the listener's address and port changed, to loopback and a port the system
picks), then the gateway answers `/v1/models` with the file's models and aliases."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway import Gateway
from tests.unit.test_config_formats import CORPUS, PLANO_ENV

pytestmark = pytest.mark.timeout(180)


def on_loopback(raw: dict) -> dict:
    config = dict(raw)
    listeners = config.get("listeners")
    if isinstance(listeners, list):
        config["listeners"] = [{**item, "address": "127.0.0.1", "port": 0} if item.get("type") == "model" else item
                               for item in listeners]
    else:
        egress = (listeners or {}).get("egress_traffic") or {}
        config["listeners"] = {**(listeners or {}), "egress_traffic": {**egress, "address": "127.0.0.1", "port": 0}}
    return config


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_published_plano_configuration_starts_and_serves(path: Path, tmp_path):
    raw = yaml.safe_load(path.read_text())
    with Gateway(on_loopback(raw), tmp_path, env=PLANO_ENV) as gateway:
        listed = httpx.get(f"{gateway.url}/v1/models", timeout=10).json()
    providers = raw.get("model_providers") or raw.get("llm_providers")
    names = {entry["model"] for entry in providers} | set(raw.get("model_aliases") or {})
    assert {model["id"] for model in listed["data"]} == names

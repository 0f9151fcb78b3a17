"""Parsing client bodies and per-request preferences, without Envoy."""

from __future__ import annotations

import json

import pytest

from filter.errors import ClientApi, GatewayError
from filter.inbound import parse_client_request

MESSAGES = [{"role": "user", "content": "hi"}]


def parse(body) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_client_request(ClientApi.CHAT, raw)


def test_a_plain_request():
    request = parse({"model": "m", "messages": MESSAGES, "stream": True})
    assert (request.model, request.stream, request.preferences) == ("m", True, None)


def test_metadata_preferences_as_a_list_are_taken_out_of_the_body():
    request = parse({"messages": MESSAGES, "metadata": {"archgw_preference_config": [
        {"model": "openai/gpt-4o", "routing_preferences": [{"name": "code", "description": "writing code"}]}],
        "trace": "keep-me"}})
    (pref,) = request.preferences
    assert (pref.route.name, pref.models) == ("code", ("openai/gpt-4o",))
    assert request.body["metadata"] == {"trace": "keep-me"}


@pytest.mark.parametrize("text", [
    json.dumps([{"model": "a", "routing_preferences": [{"name": "r", "description": "d"}]}]),
    "- model: a\n  routing_preferences:\n    - name: r\n      description: d\n",
])
def test_metadata_preferences_as_a_json_or_yaml_string(text):
    request = parse({"messages": MESSAGES, "metadata": {"archgw_preference_config": text}})
    assert [(p.route.name, p.models) for p in request.preferences] == [("r", ("a",))]
    assert "metadata" not in request.body  # emptied metadata is not sent upstream


def test_top_level_routing_preferences():
    request = parse({"messages": MESSAGES, "routing_preferences": [
        {"name": "r", "description": "d", "models": ["a", "b"]}]})
    assert [(p.route.name, p.models) for p in request.preferences] == [("r", ("a", "b"))]
    assert "routing_preferences" not in request.body


@pytest.mark.parametrize("body", [
    {"messages": MESSAGES, "routing_preferences": "code"},
    {"messages": MESSAGES, "routing_preferences": [{"name": "r", "description": "d"}]},
    {"messages": MESSAGES, "routing_preferences": [{"name": "r", "description": "d", "models": []}]},
    {"messages": MESSAGES, "metadata": {"archgw_preference_config": "{not: [valid"}},
    {"messages": MESSAGES, "metadata": {"archgw_preference_config": [{"routing_preferences": []}]}},
    {"messages": [1]},
])
def test_malformed_input_is_a_400(body):
    with pytest.raises(GatewayError) as caught:
        parse(body)
    assert caught.value.status == 400

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


# ---------------------------------------------------------------- per-request preferences within bounds


def _yaml_routes(count: int, description: str = "writing and fixing code") -> str:
    return "- model: a\n  routing_preferences:\n" + "".join(
        f"    - name: r{i}\n      description: {description}\n" for i in range(count))


def _refused(body) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        parse(body)
    assert caught.value.status == 400
    return caught.value


def test_a_megabyte_of_preference_yaml_is_refused_before_it_is_parsed():
    text = _yaml_routes(20_000)  # ~1 MB: parsed on the event loop it froze a worker for seconds
    assert len(text) > 1_000_000
    error = _refused({"messages": MESSAGES, "metadata": {"archgw_preference_config": text}})
    assert error.message == "'metadata.archgw_preference_config' is longer than 65536 characters"
    assert error.param == "metadata.archgw_preference_config"


@pytest.mark.parametrize("text", [
    # A "billion laughs": each alias expands the one before (kilobytes in, gigabytes out).
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
    "- &m {model: a, routing_preferences: []}\n- *m\n",
])
def test_preference_yaml_with_anchors_or_aliases_is_refused(text):
    error = _refused({"messages": MESSAGES, "metadata": {"archgw_preference_config": text}})
    assert "anchors and aliases are not accepted" in error.message


def test_preference_yaml_nested_too_deeply_is_refused():
    text = "[" * 40 + "]" * 40  # JSON-looking but not a list of entries; YAML's reader sees it first
    error = _refused({"messages": MESSAGES, "metadata": {"archgw_preference_config": "x: " + text}})
    assert "too large or too deeply nested" in error.message


@pytest.mark.parametrize("body", [
    {"messages": MESSAGES, "metadata": {"archgw_preference_config": _yaml_routes(65)}},
    {"messages": MESSAGES, "routing_preferences": [{"name": f"r{i}", "description": "d", "models": ["a"]} for i in range(65)]},
    {"messages": MESSAGES, "metadata": {"archgw_preference_config": [
        {"model": "a", "routing_preferences": [{"name": f"r{i}", "description": "d"} for i in range(40)]}]},
     "routing_preferences": [{"name": f"s{i}", "description": "d", "models": ["a"]} for i in range(40)]},
])
def test_a_request_brings_at_most_64_routes(body):
    assert _refused(body).message == "a request may bring at most 64 routing preferences"


def test_64_routes_and_long_but_bounded_descriptions_are_accepted():
    request = parse({"messages": MESSAGES, "metadata": {"archgw_preference_config": _yaml_routes(64)}})
    assert len(request.preferences) == 64
    long = "x" * 4000
    request = parse({"messages": MESSAGES, "routing_preferences": [{"name": "r", "description": long, "models": ["a"]}]})
    assert request.preferences[0].route.description == long
    error = _refused({"messages": MESSAGES, "routing_preferences": [{"name": "r", "description": long + "x" * 96,
                                                                     "models": ["a"]}]})
    assert "4096 characters together" in error.message


def test_json_and_yaml_strings_read_the_same_as_before():
    import yaml

    entries = [{"model": "openai/gpt-4o", "routing_preferences": [
        {"name": "code", "description": "writing code: functions, tests"}, {"name": "math", "description": "proofs"}]}]
    for text in (json.dumps(entries), json.dumps(entries, indent=2), yaml.safe_dump(entries),
                 yaml.safe_dump(entries, default_flow_style=True)):
        request = parse({"messages": MESSAGES, "metadata": {"archgw_preference_config": text}})
        assert [(p.route.name, p.route.description, p.models) for p in request.preferences] == [
            ("code", "writing code: functions, tests", ("openai/gpt-4o",)), ("math", "proofs", ("openai/gpt-4o",))]


def test_plano_preference_config_is_removed_and_not_routed_on_as_in_plano():
    request = parse({"messages": MESSAGES, "metadata": {"plano_preference_config": "[...]", "trace": "keep-me"}})
    assert request.preferences is None and request.body["metadata"] == {"trace": "keep-me"}
    alone = parse({"messages": MESSAGES, "metadata": {"plano_preference_config": [{"model": "x"}]}})
    assert "metadata" not in alone.body


def test_a_requests_routes_carry_plano_s_selection_policy():
    request = parse({"messages": MESSAGES, "routing_preferences": [
        {"name": "r", "description": "d", "models": ["a", "b"], "selection_policy": {"prefer": "fastest"}}]})
    assert request.preferences[0].prefer == "fastest"
    with pytest.raises(GatewayError) as caught:
        parse({"messages": MESSAGES, "routing_preferences": [
            {"name": "r", "description": "d", "models": ["a"], "selection_policy": {"prefer": "best"}}]})
    assert caught.value.status == 400 and "selection_policy" in caught.value.message

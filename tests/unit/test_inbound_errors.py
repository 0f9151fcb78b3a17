"""Every refusal of a client body, word for word: status, `param`, `code` and the message a
client reads (the gateway answers these itself; nothing goes upstream). And what is accepted at
the edges of each limit."""

from __future__ import annotations

import json

import pytest

from filter.errors import ClientApi, GatewayError
from filter.inbound import (
    MAX_EMBEDDING_INPUTS,
    client_credentials,
    encode_json,
    parse_client_request,
    parse_embeddings_request,
)

HI = [{"role": "user", "content": "hi"}]
WHERE = "metadata.archgw_preference_config"


def refused(api: ClientApi, body) -> GatewayError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(GatewayError) as caught:
        parse_client_request(api, raw)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    return caught.value


def route(name="r", description="d", **extra):
    return {"name": name, "description": description, **extra}


CASES = [
    # (body, param, message)
    (b"", None, "request body is empty: expected a JSON object"),
    (b'{"messages": [', None, None),  # orjson's own words follow "not valid JSON: "
    (b'{"a": "caf\xe9"}', None, "request body is not valid UTF-8"),
    (b"[1]", None, "request body must be a JSON object, got an array"),
    (b"null", None, "request body must be a JSON object, got null"),
    (b'"x"', None, "request body must be a JSON object, got a string"),
    (b"1.5", None, "request body must be a JSON object, got a number"),
    (b"true", None, "request body must be a JSON object, got a boolean"),
    ({"model": 4, "messages": HI}, "model", "'model' must be a string, got a number"),
    ({"model": ["m"], "messages": HI}, "model", "'model' must be a string, got an array"),
    ({"model": {}, "messages": HI}, "model", "'model' must be a string, got an object"),
    ({"model": True, "messages": HI}, "model", "'model' must be a string, got a boolean"),
    ({}, "messages", "'messages' is required"),
    ({"messages": None}, "messages", "'messages' is required"),
    ({"messages": "hi"}, "messages", "'messages' must be an array, got a string"),
    ({"messages": {}}, "messages", "'messages' must be an array, got an object"),
    ({"messages": []}, "messages", "'messages' must contain at least one message"),
    ({"messages": [*HI, 3]}, "messages[1]", "'messages[1]' must be an object, got a number"),
    ({"messages": HI, "stream": "yes"}, "stream", "'stream' must be a boolean, got a string"),
    ({"messages": HI, "stream": 1}, "stream", "'stream' must be a boolean, got a number"),
    ({"messages": HI, "routing_preferences": "code"}, "routing_preferences",
     "'routing_preferences' must be a list of {name, description, models}"),
    ({"messages": HI, "routing_preferences": [route()]}, "routing_preferences",
     "'routing_preferences[0].models' must be a non-empty list of model names"),
    ({"messages": HI, "routing_preferences": [route(models=[])]}, "routing_preferences",
     "'routing_preferences[0].models' must be a non-empty list of model names"),
    ({"messages": HI, "routing_preferences": [route(models=["a", 1])]}, "routing_preferences",
     "'routing_preferences[0].models' must be a non-empty list of model names"),
    ({"messages": HI, "routing_preferences": [route(models="a")]}, "routing_preferences",
     "'routing_preferences[0].models' must be a non-empty list of model names"),
    ({"messages": HI, "routing_preferences": [route(models=["a"]), "x"]}, "routing_preferences[1]",
     "'routing_preferences[1]' must be an object with 'name' and 'description'"),
    ({"messages": HI, "routing_preferences": [{"name": "r", "models": ["a"]}]}, "routing_preferences[0]",
     "'routing_preferences[0]' needs a 'name' and a 'description' string"),
    ({"messages": HI, "routing_preferences": [route(name="", models=["a"])]}, "routing_preferences[0]",
     "'routing_preferences[0]' needs a 'name' and a 'description' string"),
    ({"messages": HI, "routing_preferences": [route(name=3, models=["a"])]}, "routing_preferences[0]",
     "'routing_preferences[0]' needs a 'name' and a 'description' string"),
    ({"messages": HI, "routing_preferences": [route(description=None, models=["a"])]}, "routing_preferences[0]",
     "'routing_preferences[0]' needs a 'name' and a 'description' string"),
    ({"messages": HI, "routing_preferences": [route(name="n" * 2000, description="d" * 2097, models=["a"])]},
     "routing_preferences[0]", "'routing_preferences[0]': name and description may hold 4096 characters together"),
    ({"messages": HI, "routing_preferences": [route(name=f"r{i}", models=["a"]) for i in range(65)]},
     "routing_preferences", "a request may bring at most 64 routing preferences"),
    ({"messages": HI, "metadata": {"archgw_preference_config": {"model": "a"}}}, WHERE,
     f"'{WHERE}' must be a list of {{model, routing_preferences}}"),
    ({"messages": HI, "metadata": {"archgw_preference_config": [{"routing_preferences": []}]}}, WHERE,
     f"'{WHERE}[0]' must be an object with a 'model' string"),
    ({"messages": HI, "metadata": {"archgw_preference_config": [{"model": 1, "routing_preferences": []}]}}, WHERE,
     f"'{WHERE}[0]' must be an object with a 'model' string"),
    ({"messages": HI, "metadata": {"archgw_preference_config": ["x"]}}, WHERE,
     f"'{WHERE}[0]' must be an object with a 'model' string"),
    ({"messages": HI, "metadata": {"archgw_preference_config": [{"model": "a", "routing_preferences": "r"}]}}, WHERE,
     f"'{WHERE}[0].routing_preferences' must be a list"),
    ({"messages": HI, "metadata": {"archgw_preference_config": [{"model": "a", "routing_preferences": [7]}]}},
     f"{WHERE}[0].routing_preferences[0]", f"'{WHERE}[0].routing_preferences[0]' must be an object with 'name' and "
                                           "'description'"),
    ({"messages": HI, "metadata": {"archgw_preference_config": "{not: [valid"}}, WHERE,
     f"'{WHERE}' is not valid JSON or YAML"),
    ({"messages": HI, "metadata": {"archgw_preference_config": "- &a {model: x}\n- *a\n"}}, WHERE,
     f"'{WHERE}': YAML anchors and aliases are not accepted"),
    ({"messages": HI, "metadata": {"archgw_preference_config": "x" * (64 * 1024 + 1)}}, WHERE,
     f"'{WHERE}' is longer than 65536 characters"),
    ({"messages": HI, "metadata": {"archgw_preference_config": "[" * 17 + "]" * 17}}, WHERE, None),
    ({"messages": HI, "metadata": {"archgw_preference_config": "- " * 17 + "x"}}, WHERE,
     f"'{WHERE}' is too large or too deeply nested"),
    ({"messages": HI, "metadata": {"archgw_preference_config": "[" + ", ".join(["x"] * 10_001) + "]x"}}, WHERE,
     f"'{WHERE}' is too large or too deeply nested"),
]


@pytest.mark.parametrize("body, param, message", CASES, ids=range(len(CASES)))
def test_each_refusal_names_the_field_and_says_why(body, param, message):
    error = refused(ClientApi.CHAT, body)
    assert error.param == param
    if message is not None:
        assert error.message == message
    elif isinstance(body, bytes):
        assert error.message.startswith("request body is not valid JSON: ")


def test_a_flow_style_yaml_list_that_is_not_json_is_read_as_yaml():
    request = parse_client_request(ClientApi.CHAT, json.dumps({"messages": HI, "metadata": {
        "archgw_preference_config": "[{model: a, routing_preferences: [{name: r, description: d}]}]"}}).encode())
    assert [(p.route.name, p.route.description, p.models) for p in request.preferences] == [("r", "d", ("a",))]


def test_limits_are_inclusive():
    exactly = route(name="n" * 2000, description="d" * 2096, models=["a"])
    request = parse_client_request(ClientApi.CHAT, json.dumps({"messages": HI, "routing_preferences": [
        exactly, *[route(name=f"r{i}", models=["a"]) for i in range(63)]]}).encode())
    assert len(request.preferences) == 64
    text = json.dumps([{"model": "a", "routing_preferences": [{"name": "r", "description": "d" * 100}]}])
    text += " " * (64 * 1024 - len(text))
    request = parse_client_request(ClientApi.CHAT, json.dumps({"messages": HI, "metadata": {
        "archgw_preference_config": text}}).encode())
    assert [p.route.name for p in request.preferences] == ["r"]
    nested = "- " * 15 + "x"  # 15 levels of lists: within the limit, and not a list of entries
    error = refused(ClientApi.CHAT, {"messages": HI, "metadata": {"archgw_preference_config": nested}})
    assert error.message == f"'{WHERE}[0]' must be an object with a 'model' string"


def test_metadata_preferences_beyond_64_are_refused():
    entry = {"model": "a", "routing_preferences": [route(name=f"r{i}") for i in range(65)]}
    error = refused(ClientApi.CHAT, {"messages": HI, "metadata": {"archgw_preference_config": [entry]}})
    assert (error.param, error.message) == ("routing_preferences", "a request may bring at most 64 routing preferences")
    both = {"messages": HI, "metadata": {"archgw_preference_config": [
        {"model": "a", "routing_preferences": [route(name=f"m{i}") for i in range(40)]}]},
        "routing_preferences": [route(name=f"t{i}", models=["a"]) for i in range(30)]}
    assert refused(ClientApi.CHAT, both).message == "a request may bring at most 64 routing preferences"


def test_metadata_keeps_other_keys_and_loses_only_the_preferences():
    body = {"messages": HI, "metadata": {"archgw_preference_config": [], "user": "u1"}}
    request = parse_client_request(ClientApi.CHAT, json.dumps(body).encode())
    assert request.preferences == () and request.body["metadata"] == {"user": "u1"}
    body = {"messages": HI, "metadata": {"user": "u1"}}
    request = parse_client_request(ClientApi.CHAT, json.dumps(body).encode())
    assert request.preferences is None and request.body["metadata"] == {"user": "u1"}


def test_stream_null_means_no_stream_and_the_body_is_kept_whole():
    body = {"model": "m", "messages": HI, "stream": None, "temperature": 0.5}
    request = parse_client_request(ClientApi.MESSAGES, json.dumps(body).encode())
    assert (request.api, request.model, request.stream, request.preferences) == (ClientApi.MESSAGES, "m", False, None)
    assert request.body == body and request.messages == HI


# ---------------------------------------------------------------- nesting


def test_nesting_up_to_254_levels_is_accepted_and_deeper_is_refused():
    def nested(levels: int) -> bytes:  # the top-level object is level 1
        return b'{"messages": [{"role": "user", "content": "x"}], "x": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"

    assert parse_client_request(ClientApi.CHAT, nested(254)).body["x"]
    for levels in (255, 1100):
        error = refused(ClientApi.CHAT, nested(levels))
        assert (error.param, error.message) == (None, "request body is nested more than 254 levels deep")
    wide = b'{"messages": [{"role": "user", "content": "x"}], "x": [' + b"[], " * 400 + b"[]]}"
    assert len(parse_client_request(ClientApi.CHAT, wide).body["x"]) == 401  # many brackets, shallow


def test_encode_json_refuses_what_it_cannot_write():
    deep: list = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(GatewayError) as caught:
        encode_json({"x": deep})
    assert caught.value.message == "request body is nested more than 254 levels deep"
    assert encode_json({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


# ---------------------------------------------------------------- the Responses API's body


@pytest.mark.parametrize("body, param, message", [
    ({}, "input", "'input' is required"),
    ({"input": 3}, "input", "'input' must be an array, got a number"),
    ({"input": []}, "input", "'input' must contain at least one item"),
    ({"input": ["x"]}, "input[0]", "'input[0]' must be an object, got a string"),
    ({"input": "hi", "previous_response_id": ""}, "previous_response_id",
     "'previous_response_id' must be a non-empty string"),
    ({"input": "hi", "previous_response_id": 5}, "previous_response_id",
     "'previous_response_id' must be a non-empty string"),
])
def test_responses_bodies_are_checked(body, param, message):
    error = refused(ClientApi.RESPONSES, body)
    assert (error.param, error.message) == (param, message)


def test_responses_bodies_that_pass():
    for body in ({"input": "hi"}, {"input": [{"role": "user", "content": "hi"}], "previous_response_id": "resp_1"}):
        request = parse_client_request(ClientApi.RESPONSES, json.dumps(body).encode())
        assert request.body == body and request.stream is False


# ---------------------------------------------------------------- embeddings


@pytest.mark.parametrize("body, param, message", [
    ({"input": "x"}, "model", "'model' is required: name an embedding model or an alias of one"),
    ({"model": "", "input": "x"}, "model", "'model' is required: name an embedding model or an alias of one"),
    ({"model": 1, "input": "x"}, "model", "'model' must be a string, got a number"),
    ({"model": "e"}, "input", "'input' is required"),
    ({"model": "e", "input": []}, "input", "'input' must be a string or a non-empty array of strings or token arrays"),
    ({"model": "e", "input": 5}, "input", "'input' must be a string or a non-empty array of strings or token arrays"),
    ({"model": "e", "input": ["a"] * (MAX_EMBEDDING_INPUTS + 1)}, "input", "'input' may hold at most 2048 items, got 2049"),
    ({"model": "e", "input": ["a", 1]}, "input",
     "'input' must be a string, an array of strings, an array of token ids or an array of token-id arrays"),
    ({"model": "e", "input": [1, True]}, "input",
     "'input' must be a string, an array of strings, an array of token ids or an array of token-id arrays"),
    ({"model": "e", "input": [[1], [2, "x"]]}, "input",
     "'input' must be a string, an array of strings, an array of token ids or an array of token-id arrays"),
    ({"model": "e", "input": [[1], 2]}, "input",
     "'input' must be a string, an array of strings, an array of token ids or an array of token-id arrays"),
])
def test_embeddings_bodies_are_checked(body, param, message):
    with pytest.raises(GatewayError) as caught:
        parse_embeddings_request(json.dumps(body).encode())
    error = caught.value
    assert (error.status, error.code, error.param, error.message) == (400, "invalid_request", param, message)


@pytest.mark.parametrize("data", ["one text", ["a", "b"], [1, 2, 3], [[1, 2], [3]], ["a"] * MAX_EMBEDDING_INPUTS])
def test_embeddings_inputs_openai_accepts(data):
    request = parse_embeddings_request(json.dumps({"model": "e", "input": data}).encode())
    assert (request.api, request.model, request.stream, request.preferences) == (ClientApi.CHAT, "e", False, None)
    assert request.body["input"] == data


# ---------------------------------------------------------------- client credentials


@pytest.mark.parametrize("headers, keys", [
    ({}, []),
    ({"x-api-key": " k1 "}, [b"k1"]),
    ({"x-api-key": "   "}, []),
    ({"authorization": "Bearer k2"}, [b"k2"]),
    ({"authorization": "bearer  k2 "}, [b"k2"]),
    ({"authorization": "BEARER k2"}, [b"k2"]),
    ({"authorization": "Basic k2"}, []),
    ({"authorization": "Bearer "}, []),
    ({"authorization": "k2"}, []),
    ({"x-api-key": "k1", "authorization": "Bearer k2"}, [b"k1", b"k2"]),
])
def test_client_credentials(headers, keys):
    assert client_credentials(headers) == keys


# ---------------------------------------------------------------- the bounds of preference text


def metadata_error(text: str) -> str:
    return refused(ClientApi.CHAT, {"messages": HI, "metadata": {"archgw_preference_config": text}}).message


NOT_AN_ENTRY = f"'{WHERE}[0]' must be an object with a 'model' string"
TOO_LARGE = f"'{WHERE}' is too large or too deeply nested"


def test_json_text_is_read_as_json_whatever_its_size_within_the_byte_limit():
    # 10,001 numbers: more nodes than YAML is allowed, fine for JSON (and refused for what it says).
    numbers = "[" + ",".join(["1"] * 10_001) + "]"
    assert metadata_error(numbers) == NOT_AN_ENTRY
    assert metadata_error("  \n" + numbers) == NOT_AN_ENTRY  # leading blanks are still JSON
    big_object = json.dumps({"k": list(range(10_001))})
    assert metadata_error(big_object) == f"'{WHERE}' must be a list of {{model, routing_preferences}}"


def test_yaml_node_limit_is_10000():
    assert metadata_error("[" + ", ".join(["x"] * 9_999) + "]") == NOT_AN_ENTRY  # 10,000 nodes
    assert metadata_error("[" + ", ".join(["x"] * 10_000) + "]") == TOO_LARGE


def test_yaml_depth_limit_is_16_and_closing_a_collection_goes_back_one_level():
    assert metadata_error("- " * 16 + "x") == NOT_AN_ENTRY
    assert metadata_error("- " * 17 + "x") == TOO_LARGE
    # Eight levels, a two-level excursion closed again, then nine more: 17 deep.
    assert metadata_error("[" * 8 + "[[x]], " + "[" * 9 + "x" + "]" * 9 + "]" * 8) == TOO_LARGE
    # Fifteen levels closed, then sixteen: 17 deep with the outer list.
    assert metadata_error("[" + "[" * 15 + "x" + "]" * 15 + ", " + "[" * 16 + "x" + "]" * 16 + "]") == TOO_LARGE
    assert metadata_error("[" + "[" * 14 + "x" + "]" * 14 + ", " + "[" * 15 + "x" + "]" * 15 + "]") == NOT_AN_ENTRY


def test_a_yaml_anchor_is_refused_even_without_an_alias():
    assert metadata_error("- &a {model: x, routing_preferences: []}\n") == (
        f"'{WHERE}': YAML anchors and aliases are not accepted")


def test_objects_nested_too_deeply_are_refused_too():
    def nested(levels: int) -> bytes:
        return b'{"messages": [{"role": "user", "content": "x"}], "x": ' + b'{"a": ' * (levels - 1) + b"1" + b"}" * (levels - 1) + b"}"

    assert parse_client_request(ClientApi.CHAT, nested(254)).model is None
    assert refused(ClientApi.CHAT, nested(255)).message == "request body is nested more than 254 levels deep"


@pytest.mark.parametrize("policy, prefer", [
    (None, "none"), ({}, "none"), ({"prefer": "cheapest"}, "cheapest"), ({"prefer": "fastest"}, "fastest"),
    ({"prefer": "none"}, "none"),
])
def test_a_requests_route_may_say_how_its_pool_is_ordered(policy, prefer):
    pref = route(models=["a", "b"])
    if policy is not None:
        pref["selection_policy"] = policy
    request = parse_client_request(ClientApi.CHAT, json.dumps({"messages": HI, "routing_preferences": [pref]}).encode())
    assert [(p.route.name, p.models, p.prefer) for p in request.preferences] == [("r", ("a", "b"), prefer)]


@pytest.mark.parametrize("policy", ["cheapest", {"prefer": "random"}, {"prefer": None}, ["cheapest"]])
def test_a_selection_policy_other_than_the_three_is_refused(policy):
    error = refused(ClientApi.CHAT, {"messages": HI, "routing_preferences": [route(models=["a"], selection_policy=policy)]})
    assert (error.param, error.message) == ("routing_preferences",
                                            "'routing_preferences[0].selection_policy' must be {prefer: cheapest|fastest|none}")

"""Every kind of configuration value at its edges, and the message for each wrong one, word for
word (`file: key.path: problem`), as `switchyard validate` prints it. Fixed expected values."""

from __future__ import annotations

import datetime

import pytest

from filter.config import ConfigError, parse_config
from filter.config.loader import YamlLimitError, load_yaml

ENV = {"ACCT": "acct", "ACCT_X": "ax", "KEY": "kv", "SP": "a b"}
A = {"model": "openai/a", "access_key": "k", "default": True}


def build(raw):
    return parse_config(raw, "t.yaml", ENV)


def error(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        build(raw)
    return str(caught.value)


def provider(**fields):
    return build({"llm_providers": [{**A, **fields}]}).providers[0]


def provider_error(**fields):
    return error({"llm_providers": [{**A, **fields}]})


# -- numbers, counts, ports, durations, choices ----------------------------------------------------

@pytest.mark.parametrize("section, message", [
    ({"gateway": {"fast_path": "yes"}}, "gateway.fast_path: expected true or false, got a string"),
    ({"gateway": {"fast_path": 1}}, "gateway.fast_path: expected true or false, got an integer"),
    ({"gateway": {"workers": 0}}, "gateway.workers: must be at least 1, got 0"),
    ({"gateway": {"workers": 65}}, "gateway.workers: must be at most 64, got 65"),
    ({"gateway": {"workers": "2"}}, "gateway.workers: expected an integer, got a string"),
    ({"gateway": {"workers": 2.0}}, "gateway.workers: expected an integer, got a number"),
    ({"gateway": {"workers": True}}, "gateway.workers: expected an integer, got a boolean"),
    ({"gateway": {"workers": None, "admin_port": 65536}}, "gateway.admin_port: port 65536 is out of range 0-65535"),
    ({"gateway": {"admin_port": -1}}, "gateway.admin_port: port -1 is out of range 0-65535"),
    ({"gateway": {"admin_port": "80"}}, "gateway.admin_port: expected a port number, got a string"),
    ({"listeners": [{"type": "model", "port": 5.5}]}, "listeners[0].port: expected a port number, got a number"),
    ({"routing": {"min_confidence": 1.5}}, "routing.min_confidence: must be between 0 and 1, got 1.5"),
    ({"routing": {"min_confidence": -0.1}}, "routing.min_confidence: must be between 0 and 1, got -0.1"),
    ({"routing": {"min_confidence": "x"}}, "routing.min_confidence: expected a number, got a string"),
    ({"routing": {"min_confidence": True}}, "routing.min_confidence: expected a number, got a boolean"),
    ({"routing": {"min_confidence": float("nan")}}, "routing.min_confidence: expected a finite number, got nan"),
    ({"routing": {"min_confidence": float("inf")}}, "routing.min_confidence: expected a finite number, got inf"),
    ({"routing": {"session_ttl": "31d"}}, "routing.session_ttl: bad duration '31d' (use e.g. 500ms, 1s, 1.5s, 2m)"),
    ({"routing": {"session_ttl": "0s"}}, "routing.session_ttl: bad duration '0s' (use e.g. 500ms, 1s, 1.5s, 2m)"),
    ({"routing": {"session_ttl": 0}}, "routing.session_ttl: bad duration 0 (use e.g. 500ms, 1s, 1.5s, 2m)"),
    ({"routing": {"session_ttl": "0.5ms"}}, "routing.session_ttl: duration '0.5ms' is shorter than 1ms"),
    ({"routing": {"session_ttl": "721h"}}, "routing.session_ttl: duration '721h' is longer than the maximum of 720h"),
    ({"listeners": [{"type": "model", "timeout": "25h"}]},
     "listeners[0].timeout: duration '25h' is longer than the maximum of 24h"),
    ({"listeners": [{"type": "model", "timeout": "0.0001"}]}, "listeners[0].timeout: duration '0.0001' is shorter than 1ms"),
    ({"listeners": [{"type": "model", "address": "not a host!"}]},
     "listeners[0].address: 'not a host!' is not an IP address or a host name"),
    ({"routing": {"unknown_model": "guess"}}, "routing.unknown_model: 'guess' is not one of reject, route, default"),
    ({"routing": {"unknown_model": 5}}, "routing.unknown_model: expected a string, got an integer"),
])
def test_a_wrong_value_is_named_with_its_path_and_what_was_expected(section, message):
    assert error({"llm_providers": [A], **section}) == f"t.yaml: {message}"


@pytest.mark.parametrize("section, read", [
    ({"gateway": {"workers": 1}}, lambda c: c.gateway.workers == 1),
    ({"gateway": {"workers": 64}}, lambda c: c.gateway.workers == 64),
    ({"gateway": {"admin_port": 65535}}, lambda c: c.gateway.admin_port == 65535),
    ({"routing": {"min_confidence": 0}}, lambda c: c.routing.min_confidence == 0.0),
    ({"routing": {"min_confidence": 1}}, lambda c: c.routing.min_confidence == 1.0),
    ({"routing": {"session_ttl": "720h"}}, lambda c: c.routing.session_ttl_s == 2_592_000.0),
    ({"listeners": [{"type": "model", "timeout": "24h"}]}, lambda c: c.listener.timeout_s == 86400.0),
    ({"listeners": [{"type": "model", "timeout": 0.001}]}, lambda c: c.listener.timeout_s == 0.001),
    ({"listeners": [{"type": "model", "address": "::1"}]}, lambda c: c.listener.address == "::1"),
    ({"listeners": [{"type": "model", "address": "2001:db8::1"}]}, lambda c: c.listener.address == "2001:db8::1"),
])
def test_values_at_the_edges_are_accepted(section, read):
    assert read(build({"llm_providers": [A], **section}))


# -- strings and free text -------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    (5, "expected a string, got an integer"),
    ("", "must not be empty"),
    (" ", "must not be empty"),
    ("a\nb", "must not contain line breaks or control characters"),
    (datetime.date(2026, 1, 1), "expected a string, got date"),  # YAML reads 2026-01-01 as a date
    (None, None),
])
def test_a_one_line_name(name, message):
    if message is None:
        assert provider(name=name).name is None
    else:
        assert provider_error(name=name) == f"t.yaml: llm_providers[0].name: {message}"


def test_a_name_may_hold_a_tab():
    assert provider(name="a\tb").name == "a\tb"


@pytest.mark.parametrize("description, message", [
    (5, "expected a string, got an integer"),
    ({"a": 1}, "expected a string, got a mapping"),
    ([1], "expected a string, got a list"),
    (1.5, "expected a string, got a number"),
    ("  ", "must not be empty"),
])
def test_a_route_description(description, message):
    assert provider_error(routing_preferences=[{"name": "r", "description": description}]) == \
        f"t.yaml: llm_providers[0].routing_preferences[0].description: {message}"


def test_a_route_description_may_span_lines():
    assert provider(routing_preferences=[{"name": "r", "description": "multi\nline"}]).routes[0].description == "multi\nline"


# -- keys and header values ------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, source", [
    ("${KEY}", "kv", "$KEY"), ("$KEY", "kv", "$KEY"), ("sk-1", "sk-1", "literal"),
])
def test_an_access_key_literal_or_from_the_environment(key, value, source):
    secret = provider(access_key=key).access_key
    assert (secret.reveal(), secret.source) == (value, source)


@pytest.mark.parametrize("key, message", [
    ("a\x01b", "the key contains whitespace or a control character (a trailing newline?); keys must be one word"),
    ("a\x7fb", "the key contains whitespace or a control character (a trailing newline?); keys must be one word"),
    ("a b", "the key contains whitespace or a control character (a trailing newline?); keys must be one word"),
    ("$SP", "the value of $SP contains whitespace or a control character (a trailing newline?); keys must be one word"),
    (" ", "must not be empty"),
    (5, "expected a string, got an integer"),
    ("$NOPE", "environment variable $NOPE is not set"),
])
def test_a_bad_access_key(key, message):
    assert provider_error(access_key=key) == f"t.yaml: llm_providers[0].access_key: {message}"


def header_values(p):
    return [(name, value.reveal(), value.source) for name, value in p.headers]


@pytest.mark.parametrize("value, expected", [
    ("${ACCT}", ("acct", "$ACCT")), ("${ACCT_X}", ("ax", "$ACCT_X")), ("$ACCT", ("acct", "$ACCT")),
    ("a b", ("a b", "literal")), ("a\tb", ("a\tb", "literal")), ("x" * 4096, ("x" * 4096, "literal")),
])
def test_a_header_value_literal_or_from_the_environment(value, expected):
    assert header_values(provider(headers={"X-Team": value})) == [("x-team", *expected)]


@pytest.mark.parametrize("headers, message", [
    ({"X-Team": "a\x7fb"}, "headers.X-Team: must not contain line breaks or control characters"),
    ({"X-Team": "a\x1fb"}, "headers.X-Team: must not contain line breaks or control characters"),
    ({"X-Team": "x" * 4097}, "headers.X-Team: is longer than 4096 characters"),
    ({"X-Team": 5}, "headers.X-Team: expected a string, got an integer"),
    ({"X-Team": "$NOPE"}, "headers.X-Team: environment variable $NOPE is not set"),
    ({"X-Envoy-Foo": "1"},
     "headers.X-Envoy-Foo: 'X-Envoy-Foo' is set by the gateway (credentials: access_key or passthrough_auth; Host: http_host)"),
    ({"x-switchyard-a": "1"},
     "headers.x-switchyard-a: 'x-switchyard-a' is set by the gateway (credentials: access_key or passthrough_auth; Host: "
     "http_host)"),
])
def test_a_bad_header(headers, message):
    assert provider_error(headers=headers) == f"t.yaml: llm_providers[0].{message}"


@pytest.mark.parametrize("host", ["example.com:65535", "example.com:1", "x.example:8080", "[::1]:8080", "[::1]",
                                  "[1::]:443", "example.com"])
def test_a_host_header_that_is_accepted(host):
    assert provider(http_host=host).upstream.host_header == host


@pytest.mark.parametrize("host, message", [
    ("example.com:65536", "'example.com:65536' has an invalid port"),
    ("example.com:0", "'example.com:0' has an invalid port"),
    ("::1", "'::1' is not a host name (optionally :port)"),
    ("bad host", "'bad host' is not a host name (optionally :port)"),
    ("[abc.com", "'[abc.com' is not a host name (optionally :port)"),
    ("[::1]x:80", "'[::1]x:80' is not a host name (optionally :port)"),
])
def test_a_host_header_that_is_refused(host, message):
    assert provider_error(http_host=host) == f"t.yaml: llm_providers[0].http_host: {message}"


# -- the shape of the file: unknown keys, wrong containers -------------------------------------------

@pytest.mark.parametrize("raw, message", [
    ({"llm_providers": [A], "listeners": {"egress_traffic": {"bogus": 1}}},
     "listeners.egress_traffic.bogus: unknown key (allowed: address, message_format, port, timeout)"),
    ({"llm_providers": [A], "listeners": [{"type": "model", "bogus": 1}]},
     "listeners[0].bogus: unknown key (allowed: address, agents, input_filters, max_retries, name, output_filters, port, "
     "router, timeout, type)"),
    ({"llm_providers": [A], "gateway": {"client_keys": [{"name": "a", "key": "k", "bogus": 1}]}},
     "gateway.client_keys[0].bogus: unknown key (allowed: budget, key, limits, models, name)"),
    ({"llm_providers": [A], "gateway": {"client_keys": [{"name": "a", "key": "k", "limits": {"rpm": 1, "bogus": 1}}]}},
     "gateway.client_keys[0].limits.bogus: unknown key (allowed: rpm, tpm)"),
    ({"llm_providers": [A], "gateway": {"client_keys": [5]}}, "gateway.client_keys[0]: expected a string, got an integer"),
    ({"llm_providers": [A], "routing": {"session_cache": {"type": "memory", "bogus": 1}}},
     "routing.session_cache.bogus: unknown key (allowed: tenant_header, type, url)"),
    ({"llm_providers": [{**A, "prices": {"input": 1, "bogus": 2}}]},
     "llm_providers[0].prices.bogus: unknown key (allowed: cached_input, input, output)"),
    ({"llm_providers": [{**A, "bogus": 1}]},
     "llm_providers[0].bogus: unknown key (allowed: access_key, anthropic_version, api_version, base_url, default, "
     "fallbacks, headers, http_host, limits, max_tokens, model, model_info, name, passthrough_auth, prices, "
     "provider_interface, routing_preferences)"),
    ({"llm_providers": [{**A, "routing_preferences": [{"name": "r", "description": "d", "bogus": 1}]}]},
     "llm_providers[0].routing_preferences[0].bogus: unknown key (allowed: description, examples, name)"),
    ({"llm_providers": [A], "model_aliases": {"x": {"target": "openai/a", "bogus": 1}}},
     "model_aliases.x.bogus: unknown key (allowed: fallbacks, target)"),
    ({"llm_providers": [A], "gateway": {"limits": {"default": {"rpm": 1, "bogus": 2}}}},
     "gateway.limits.default.bogus: unknown key (allowed: rpm, tpm)"),
    ({"llm_providers": [A], "gateway": 5}, "gateway: expected a mapping, got an integer"),
    ({"llm_providers": [A], "gateway": {"store": 5}}, "gateway.store: expected a mapping, got an integer"),
    ({"llm_providers": [A], "listeners": [5]}, "listeners[0]: expected a mapping, got an integer"),
    ({"llm_providers": [A], "model_aliases": {"x": 5}}, "model_aliases.x: expected a mapping, got an integer"),
    ({"llm_providers": [{**A, "headers": [1]}]}, "llm_providers[0].headers: expected a mapping, got a list"),
    ({"llm_providers": {"a": 1}}, "llm_providers: expected a list, got a mapping"),
    ({"llm_providers": [A], "model_aliases": {"x": {"target": "openai/a", "fallbacks": "openai/a"}}},
     "model_aliases.x.fallbacks: expected a list, got a string"),
    ({"llm_providers": [A], "model_aliases": {5: {"target": "openai/a"}}}, "model_aliases: names must be strings, got an integer"),
    ({"llm_providers": [{"access_key": "k"}]}, "llm_providers[0].model: is required"),
    ({"llm_providers": [A], "gateway": {"fast_path": None, "limits": None, "tracing": None}, "routing": None}, None),
])
def test_the_files_shape_errors(raw, message):
    if message is None:
        build(raw)
    else:
        assert error(raw) == f"t.yaml: {message}"


# -- the YAML loader's limits ----------------------------------------------------------------------

def test_a_file_of_exactly_the_byte_limit_is_read_and_one_byte_more_is_not():
    text = "a: " + "x" * 7 + "\n"  # 11 bytes
    assert load_yaml(text, max_bytes=11) == {"a": "xxxxxxx"}
    with pytest.raises(YamlLimitError, match=r"^larger than 10 bytes$"):
        load_yaml(text, max_bytes=10)


def test_the_node_limit_is_exact():
    text = "[1, 2, 3]"  # 4 nodes: the list and its items
    assert load_yaml(text, max_nodes=4) == [1, 2, 3]
    with pytest.raises(YamlLimitError) as caught:
        load_yaml(text, max_nodes=3)
    assert str(caught.value) == "more than 3 YAML nodes at line 1, column 8"


def test_the_depth_limit_is_exact_after_siblings_too():
    assert load_yaml("[[1], [[2]]]", max_depth=4) == [[1], [[2]]]
    with pytest.raises(YamlLimitError) as caught:
        load_yaml("[[1], [[2]]]", max_depth=3)
    assert str(caught.value) == "nested deeper than 3 levels at line 1, column 9"
    # Siblings at the limit, then one level too deep: still refused.
    with pytest.raises(YamlLimitError) as caught:
        load_yaml("[[1], [2], [3], [[[4]]]]", max_depth=4)
    assert str(caught.value) == "nested deeper than 4 levels at line 1, column 20"


def test_aliases_anchors_and_duplicate_keys_are_refused_with_their_place():
    with pytest.raises(YamlLimitError) as caught:
        load_yaml("a: 1\nb: *x\n")
    assert str(caught.value) == "YAML aliases (*x) are not accepted at line 2, column 4"
    with pytest.raises(YamlLimitError) as caught:
        load_yaml("a: &x 1\n")
    assert str(caught.value) == "YAML anchors (&x) are not accepted at line 1, column 4"
    with pytest.raises(YamlLimitError) as caught:
        load_yaml("? [1]\n: a\nb: 1\nb: 2\n")
    assert str(caught.value) == "duplicate key 'b' at line 4, column 1"


def test_a_changed_key_or_key_source_makes_a_different_provider():
    # What a reload compares: the same file read twice is equal, a changed key is not.
    same = provider(access_key="$KEY"), provider(access_key="$KEY")
    assert same[0] == same[1]
    assert provider(access_key="k1") != provider(access_key="k2")
    assert provider(access_key="kv") != provider(access_key="$KEY")  # the same text, another source
    assert same[0].access_key != "kv"


def test_depth_is_counted_back_one_level_at_a_time():
    # "1" ends at depth 4; its sibling list is at depth 4 again and its item at 5: too deep.
    with pytest.raises(YamlLimitError) as caught:
        load_yaml("[[[1, [2]]]]", max_depth=4)
    assert str(caught.value) == "nested deeper than 4 levels at line 1, column 8"


def test_a_query_mark_before_white_space_is_still_a_query():
    # urlsplit drops the tab; the bare '?' left over would be lost in the URL the gateway renders.
    assert error({"llm_providers": [{"model": "openai/a", "base_url": "https://x.example/v1?\t", "access_key": "k"}]}) \
        == "t.yaml: llm_providers[0].base_url: 'https://x.example/v1?\\t' has a query or fragment, which a base URL " \
           "cannot carry"


def test_a_required_value_given_as_null():
    assert error({"llm_providers": [{"model": None}]}) == \
        "t.yaml: llm_providers[0].model: expected a string, got nothing (null)"


@pytest.mark.parametrize("raw, message", [
    ({"llm_providers": [A], False: 1}, "t.yaml: keys must be strings, got a boolean (False)"),
    ({"llm_providers": [A], "gateway": {1: 2}}, "t.yaml: gateway: keys must be strings, got an integer (1)"),
])
def test_a_key_that_is_not_a_string_is_named_with_its_type(raw, message):
    assert error(raw) == message

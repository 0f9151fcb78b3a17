"""POST /v1/embeddings: parsing, which model serves it, the provider's request — without Envoy."""

from __future__ import annotations

import json

import pytest

from filter.config import parse_config
from filter.embeddings import build_embeddings_request, embeddings_decision
from filter.errors import GatewayError
from filter.inbound import MAX_EMBEDDING_INPUTS, parse_embeddings_request

CONFIG = parse_config({
    "llm_providers": [
        {"model": "openai/text-embedding-3-small", "access_key": "sk-o", "default": True},
        {"model": "azure_openai/embed-prod", "access_key": "sk-a", "base_url": "https://contoso.openai.azure.com"},
        {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-c"},
    ],
    "model_aliases": {"embedder": {"target": "text-embedding-3-small"}},
    "routing": {"unknown_model": "default"},
}, "t.yaml", {})


def parse(body):
    return parse_embeddings_request(json.dumps(body).encode())


@pytest.mark.parametrize("data", ["one", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_the_input_shapes_openai_takes(data):
    assert parse({"model": "embedder", "input": data}).body["input"] == data


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"), ({"model": 3, "input": "x"}, "model"), ({"model": "m"}, "input"),
    ({"model": "m", "input": []}, "input"), ({"model": "m", "input": ["a", 1]}, "input"),
    ({"model": "m", "input": {"text": "a"}}, "input"),
    ({"model": "m", "input": ["a"] * (MAX_EMBEDDING_INPUTS + 1)}, "input"),
])
def test_bad_bodies_are_400s_naming_the_parameter(body, param):
    with pytest.raises(GatewayError) as caught:
        parse(body)
    assert caught.value.status == 400 and caught.value.param == param


def test_literal_and_alias_names_resolve_and_the_body_goes_to_the_providers_embeddings_path():
    request = parse({"model": "embedder", "input": "hi", "dimensions": 256})
    decision = embeddings_decision(CONFIG, request)
    upstream = build_embeddings_request(request, decision.provider, {"authorization": "Bearer client"}, "")
    headers = dict(upstream.set_headers)
    assert headers[":path"] == "/v1/embeddings" and headers["authorization"] == "Bearer sk-o"
    assert json.loads(upstream.body) == {"model": "text-embedding-3-small", "input": "hi", "dimensions": 256}
    assert upstream.translation is None and upstream.fitted == ()
    azure = parse({"model": "azure_openai/embed-prod", "input": "hi"})
    headers = dict(build_embeddings_request(azure, embeddings_decision(CONFIG, azure).provider, {}, "").set_headers)
    assert headers[":path"] == "/openai/deployments/embed-prod/embeddings?api-version=2024-10-21"
    assert headers["api-key"] == "sk-a"


def test_unknown_and_routed_names_are_404s_even_with_a_default_model():
    for name in ("text-embedding-3-large", "auto"):
        with pytest.raises(GatewayError) as caught:
            embeddings_decision(CONFIG, parse({"model": name, "input": "hi"}))
        assert caught.value.status == 404 and "openai/text-embedding-3-small, azure_openai/embed-prod, embedder" \
            in caught.value.message


def test_an_anthropic_model_has_no_embeddings():
    with pytest.raises(GatewayError) as caught:
        embeddings_decision(CONFIG, parse({"model": "claude-sonnet-4-5", "input": "hi"}))
    assert caught.value.status == 400 and caught.value.code == "model_not_supported"

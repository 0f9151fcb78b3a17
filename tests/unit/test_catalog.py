"""The model table: limits, parameters and prices from the pinned packages, overrides per entry.

Expected values are the providers' published figures (OpenAI's and Anthropic's model and pricing
pages), typed here as the oracle; the gateway reads them from the packages.
"""

from __future__ import annotations

import socket

import pytest

from filter.catalog import Catalog, ModelPrices, build_entry
from filter.config import parse_config


def providers(*entries):
    return parse_config({"llm_providers": [{"access_key": "k", **e} for e in entries]}, "t.yaml", {}).providers


def one(**entry):
    (provider,) = providers(entry)
    return provider


@pytest.mark.parametrize("slug, context, max_output", [
    ("openai/gpt-4o", 128_000, 16_384),
    ("openai/gpt-4o-mini", 128_000, 16_384),
    ("openai/o3", 200_000, 100_000),
    ("openai/gpt-5", 400_000, 128_000),
    ("anthropic/claude-sonnet-4-5", 200_000, 64_000),
    ("anthropic/claude-sonnet-4-5-20250929", 200_000, 64_000),
    ("anthropic/claude-opus-4-1", 200_000, 32_000),
    ("anthropic/claude-3-5-haiku-20241022", 200_000, 8_192),
    ("groq/llama-3.3-70b-versatile", 131_072, 32_768),
])
def test_limits_of_known_models(slug, context, max_output):
    spec = build_entry(one(model=slug)).spec
    assert (spec.context_window, spec.max_output_tokens) == (context, max_output)
    assert spec.source.startswith("models.dev ")


def test_gpt_4o_takes_no_reasoning_parameters_but_sampling_ones():
    spec = build_entry(one(model="openai/gpt-4o")).spec
    assert not spec.takes("reasoning_effort")
    assert spec.takes("temperature") and spec.takes("top_p") and spec.takes("max_tokens")


@pytest.mark.parametrize("slug", ["openai/o3", "openai/gpt-5", "openai/o4-mini"])
def test_openai_reasoning_models_refuse_sampling_parameters_and_max_tokens(slug):
    spec = build_entry(one(model=slug)).spec
    assert spec.takes("reasoning_effort")
    for param in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs", "max_tokens"):
        assert not spec.takes(param), param


def test_claude_with_extended_thinking_takes_reasoning_and_temperature():
    spec = build_entry(one(model="anthropic/claude-sonnet-4-5")).spec
    assert spec.reasoning is True and spec.takes("reasoning_effort") and spec.takes("temperature")
    assert not build_entry(one(model="anthropic/claude-3-5-haiku-20241022")).spec.takes("reasoning_effort")


@pytest.mark.parametrize("slug, prices", [
    ("openai/gpt-4o", (2.50, 10.00, 1.25)),
    ("openai/gpt-4o-mini", (0.15, 0.60, 0.075)),
    ("anthropic/claude-sonnet-4-5", (3.00, 15.00, 0.30)),
    ("anthropic/claude-opus-4-1", (15.00, 75.00, 1.50)),
])
def test_prices_per_million_tokens(slug, prices):
    price = Catalog(providers({"model": slug})).price(one(model=slug))
    assert (price.input, price.output, price.cached_input) == prices
    assert price.source == "model-prices"


def test_cost_prices_cached_input_as_such():
    price = ModelPrices(input=2.50, output=10.00, cached_input=1.25, source="t")
    # 1,000 prompt tokens of which 400 cached, 200 output: 600×2.5 + 400×1.25 + 200×10 per million
    assert price.cost(1_000, 200, 400) == pytest.approx(0.004)
    assert price.per_token == pytest.approx((2.5e-6, 1e-5, 1.25e-6))


def test_a_local_model_has_no_limits_and_no_price():
    entry = build_entry(one(model="local/qwen-coder", base_url="http://127.0.0.1:8080/v1"))
    assert entry.spec.max_output_tokens is None and entry.spec.unsupported_params == frozenset()
    assert entry.prices is None


def test_an_entry_overrides_prices_field_by_field():
    provider = one(model="openai/gpt-4o", prices={"input": 2.0})
    price = build_entry(provider).prices
    assert (price.input, price.output, price.cached_input) == (2.0, 10.0, 1.25)
    assert price.source == "config+model-prices"


def test_a_local_model_priced_in_its_entry_without_a_cache_price_pays_input_for_cached_tokens():
    provider = one(model="local/qwen-coder", base_url="http://127.0.0.1:8080/v1", prices={"input": 0.1, "output": 0.2})
    price = build_entry(provider).prices
    assert (price.input, price.output, price.cached_input, price.source) == (0.1, 0.2, 0.1, "config")
    assert build_entry(one(model="local/qwen-coder", base_url="http://127.0.0.1:8080/v1",
                           prices={"input": 0.1})).prices is None  # no output price: unknown


def test_an_entry_overrides_limits_and_adds_refused_parameters():
    provider = one(model="openai/gpt-4o", model_info={"max_output_tokens": 4096, "unsupported_params": ["top_p"]})
    spec = build_entry(provider).spec
    assert spec.max_output_tokens == 4096 and spec.context_window == 128_000
    assert not spec.takes("top_p") and not spec.takes("reasoning_effort")
    local = build_entry(one(model="local/m", base_url="http://127.0.0.1:8080/v1",
                            model_info={"context_window": 32_768, "max_output_tokens": 8_192})).spec
    assert (local.context_window, local.max_output_tokens, local.source) == (32_768, 8_192, "config")


def test_the_catalog_is_built_per_configuration_and_serves_other_ids_of_a_wildcard_entry():
    gpt, claude = providers({"model": "openai/gpt-4o"}, {"model": "anthropic/claude-sonnet-4-5"})
    catalog = Catalog([gpt, claude])
    assert catalog.spec(gpt).max_output_tokens == 16_384
    assert catalog.spec(claude).max_output_tokens == 64_000
    assert catalog.spec(gpt, "o3").max_output_tokens == 100_000  # another id served by the same entry


def test_building_the_catalog_reaches_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model table must not be fetched at run time")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    catalog = Catalog(providers({"model": "openai/gpt-4o-2024-11-20"}, {"model": "deepseek/deepseek-chat"}))
    assert catalog.price(providers({"model": "deepseek/deepseek-chat"})[0]) is not None

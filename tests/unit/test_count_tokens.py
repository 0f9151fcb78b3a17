"""The count_tokens estimate for non-Anthropic models, against exact o200k counts (quicktok)."""

from __future__ import annotations

import statistics

import pytest

from bench.count_tokens import OTHER_SCRIPTS, corpus, errors
from filter.count_tokens import IMAGE_TOKENS, estimate_input_tokens, text_tokens


def test_english_prose_and_code_are_estimated_within_a_few_per_cent():
    total, each = errors(corpus())
    absolute = sorted(abs(e) for e in each)
    assert abs(total) < 0.06
    assert statistics.median(absolute) < 0.06 and absolute[int(len(absolute) * 0.9)] < 0.15


@pytest.mark.parametrize("language", sorted(OTHER_SCRIPTS))
def test_other_scripts_are_estimated_within_a_fifth(language):
    assert abs(errors([OTHER_SCRIPTS[language]])[0]) < 0.2


def test_openai_chat_overhead_per_message():
    # gpt-4o counts "Hello, world!" as 4 tokens; one user message costs 3 + 1 (role), the reply 3.
    assert text_tokens("Hello, world!") == 4
    assert estimate_input_tokens({"messages": [{"role": "user", "content": "Hello, world!"}]}) == 11
    with_system = estimate_input_tokens({"system": "Hello, world!", "messages": [{"role": "user", "content": "Hello, world!"}]})
    assert with_system == 11 + 3 + 1 + 4


def test_blocks_tools_and_images_count():
    base = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, world!"}]}]}
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    with_image = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, world!"}, image]}]}
    assert estimate_input_tokens(with_image) == estimate_input_tokens(base) + IMAGE_TOKENS
    tool = {"name": "get_weather", "description": "Current weather", "input_schema": {"type": "object"}}
    assert estimate_input_tokens({**base, "tools": [tool]}) > estimate_input_tokens(base) + 8
    loop = {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny, 21 degrees"}]},
    ]}
    assert estimate_input_tokens(loop) > 3 * 4 + 3 + text_tokens("sunny, 21 degrees")

"""Arch-Router prompt text, conversation trimming and answer parsing."""

from __future__ import annotations

import hashlib
import json

import pytest

from router_model.arch_prompt import (
    CUT_MARKER,
    build_prompt,
    conversation_cache_key,
    cut_middle,
    parse_route_answer,
    trim_conversation,
)
from router_model.engine import Route, RouterError
from tests.standins import ARCH_ROUTER_PROMPT

PROMPT_SHA256 = "f890b298642410adf02b08d65ad4e5f1bd6804ee5b31241df0068278ea9650c0"
ROUTES = [Route("code_generation", "generating new code")]
NAMES = {"code_generation", "summarize"}


# --- build_prompt -----------------------------------------------------------------------------


def test_prompt_matches_the_training_prompt_byte_for_byte() -> None:
    prompt = build_prompt(ROUTES, [{"role": "user", "content": "write a rust prime sieve"}])
    assert hashlib.sha256(prompt.encode("utf-8")).hexdigest() == PROMPT_SHA256


def test_the_tests_own_copy_of_the_prompt_is_the_training_prompt() -> None:
    """The stand-in routers compare prompts with tests/standins.py's copy: pin that copy too."""
    prompt = ARCH_ROUTER_PROMPT.format(routes='[{"name": "code_generation", "description": "generating new code"}]',
                                       conversation='[{"role": "user", "content": "write a rust prime sieve"}]')
    assert hashlib.sha256(prompt.encode("utf-8")).hexdigest() == PROMPT_SHA256


def test_prompt_structure_and_default_json_separators() -> None:
    routes = [Route("a", "first"), Route("b", "second")]
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    prompt = build_prompt(routes, conv)
    assert prompt.startswith("\nYou are a helpful assistant designed to find the best suited route.")
    assert f"<routes>\n\n{json.dumps([{'name': 'a', 'description': 'first'}, {'name': 'b', 'description': 'second'}])}\n\n</routes>" in prompt
    assert f"<conversation>\n\n{json.dumps(conv)}\n\n</conversation>\n" in prompt
    assert '{"route": "route_name"} \n' == prompt[-len('{"route": "route_name"} \n') :]
    assert "XML tags.  Follow the instruction:" in prompt


def test_prompt_escapes_non_ascii_like_json_dumps() -> None:
    prompt = build_prompt([Route("übersetzen", "traduire en français")], [{"role": "user", "content": "日本語"}])
    assert "\\u00fcbersetzen" in prompt and "\\u65e5\\u672c\\u8a9e" in prompt
    prompt.encode("ascii")  # only the ASCII template and escaped JSON remain


# --- trim_conversation ------------------------------------------------------------------------


def test_system_and_tool_messages_are_dropped() -> None:
    messages = [
        {"role": "system", "content": "you are a pirate"},
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "1", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "developer", "content": "be terse"},
        {"role": "user", "content": "and tomorrow?"},
    ]
    assert trim_conversation(messages) == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "and tomorrow?"},
    ]


def test_output_has_only_role_and_content_in_that_order() -> None:
    out = trim_conversation([{"content": "x", "name": "bob", "role": "user"}])
    assert out == [{"role": "user", "content": "x"}]
    assert list(out[0]) == ["role", "content"]


def test_multi_part_content_keeps_text_parts_joined() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this picture?"},
            ],
        }
    ]
    assert trim_conversation(messages) == [{"role": "user", "content": "what is in\nthis picture?"}]


def test_turns_without_text_are_dropped() -> None:
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": "   "},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "describe it"},
    ]
    assert trim_conversation(messages) == [{"role": "user", "content": "describe it"}]


def test_empty_or_textless_conversation_gives_empty_list() -> None:
    assert trim_conversation([]) == []
    assert trim_conversation([{"role": "system", "content": "s"}]) == []


def test_multi_turn_order_is_preserved() -> None:
    messages = [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"},
    ]
    assert [m["content"] for m in trim_conversation(messages)] == ["u1", "a1", "u2", "a2", "u3"]


def test_budget_keeps_newest_turns() -> None:
    # Each turn costs 10 tokens (40 chars); a 30-token budget fits the newest three.
    messages = [{"role": r, "content": c * 40} for r, c in zip(["user", "assistant"] * 3, "abcdef")]
    out = trim_conversation(messages, token_budget=30)
    assert [m["content"][0] for m in out] == ["d", "e", "f"]
    # The estimate is chars / 4 rounded up: 41 chars cost 11 tokens, so only two fit.
    messages[-1]["content"] = "f" * 41
    assert [m["content"][0] for m in trim_conversation(messages, token_budget=30)] == ["e", "f"]


def test_walk_stops_at_first_turn_that_does_not_fit() -> None:
    messages = [
        {"role": "user", "content": "x" * 8},  # 2 tokens: would fit, but is older than the gap
        {"role": "assistant", "content": "y" * 400},  # 100 tokens: does not fit
        {"role": "user", "content": "z" * 8},
    ]
    assert trim_conversation(messages, token_budget=10) == [{"role": "user", "content": "z" * 8}]


def test_latest_user_message_always_kept_even_after_assistant_turns() -> None:
    messages = [
        {"role": "user", "content": "q" * 36},  # 9 tokens
        {"role": "assistant", "content": "r" * 400},  # 100 tokens, too big
    ]
    assert trim_conversation(messages, token_budget=10) == [{"role": "user", "content": "q" * 36}]


def test_latest_user_message_cut_in_the_middle_when_too_long() -> None:
    head, tail = "H" * 5000, "T" * 5000
    messages = [
        {"role": "user", "content": "older"},
        {"role": "user", "content": head + "M" * 10000 + tail},
    ]
    out = trim_conversation(messages, token_budget=100)
    assert len(out) == 1  # the cut message fills the budget, nothing older fits
    text = out[0]["content"]
    assert len(text) == 400
    assert CUT_MARKER in text and "M" not in text
    # 400 chars = 198 of head + the 5-char marker + 197 of tail (the head takes the odd one).
    assert text == "H" * 198 + CUT_MARKER + "T" * 197


def test_cut_middle() -> None:
    assert cut_middle("short", 10) == "short"
    cut = cut_middle("abcdefghijklmnopqrstuvwxyz", 11)
    assert cut == "abc" + CUT_MARKER + "xyz"
    assert len(cut) == 11
    assert cut_middle("abcdefghij", 3) == "abc"  # too small for the marker: head only


def test_invalid_budget_rejected() -> None:
    with pytest.raises(ValueError):
        trim_conversation([{"role": "user", "content": "x"}], token_budget=0)


# --- conversation_cache_key -------------------------------------------------------------------


def test_cache_key_depends_on_routes_and_conversation() -> None:
    conv = [{"role": "user", "content": "write a rust prime sieve"}]
    key = conversation_cache_key(ROUTES, conv)
    assert isinstance(key, bytes) and len(key) == 16
    assert key == conversation_cache_key(list(ROUTES), [dict(conv[0])])
    assert key != conversation_cache_key([Route("code_generation", "other words")], conv)
    assert key != conversation_cache_key(ROUTES, [{"role": "user", "content": "write a go sieve"}])
    assert key != conversation_cache_key(ROUTES, [{"role": "assistant", "content": conv[0]["content"]}])


# --- parse_route_answer -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('{"route": "code_generation"}', "code_generation"),
        ("{'route': 'code_generation'}", "code_generation"),
        ('\n  {"route": "summarize"}  \n', "summarize"),
        ('{\n"route":\n"summarize"\n}', "summarize"),
        ('```json\n{"route": "code_generation"}\n```', "code_generation"),
        ("```\n{'route': 'summarize'}\n```", "summarize"),
        ('{"route": " summarize "}', "summarize"),
        ('Answer: {"route": "summarize"}', "summarize"),
        ("code_generation", "code_generation"),
        ('"code_generation"', "code_generation"),
        # "No route" in all its forms:
        ('{"route": "other"}', None),
        ("{'route': 'other'}", None),
        ("other", None),
        ("", None),
        ("   \n ", None),
        (None, None),
        ('""', None),
        ('{"route": ""}', None),
        ("null", None),
        ('{"route": null}', None),
        ("{'route': None}", None),
        ("{}", None),
        ('{"model": "code_generation"}', None),
        ('{"route": "unknown_route"}', None),
        ('{"route": "Code_Generation"}', None),
        ("```json\n```", None),
    ],
)
def test_parse_route_answer(answer: str | None, expected: str | None) -> None:
    assert parse_route_answer(answer, NAMES) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        "I think the best route is code generation",
        "{route: code_generation",
        "[1, 2, 3]",
        "42",
        '{"route": 7}',
        '{"route": ["summarize"]}',
        "x" * 5000,
    ],
)
def test_unparseable_answer_raises(garbage: str) -> None:
    with pytest.raises(RouterError):
        parse_route_answer(garbage, NAMES)


# --- edges, value by value ---------------------------------------------------------------------


def test_token_estimate_rounds_each_turn_up() -> None:
    # 40 chars = 10 tokens; 37 chars = ceil(9.25) = 10 tokens: three turns are 30 > 29.
    messages = [{"role": "assistant", "content": "a" * 37}, {"role": "assistant", "content": "b" * 37},
                {"role": "user", "content": "c" * 40}]
    assert [m["content"][0] for m in trim_conversation(messages, token_budget=29)] == ["b", "c"]
    assert [m["content"][0] for m in trim_conversation(messages, token_budget=30)] == ["a", "b", "c"]


def test_a_conversation_without_a_user_turn_keeps_the_newest_assistant_turns() -> None:
    messages = [{"role": "assistant", "content": "x" * 40}, {"role": "assistant", "content": "y" * 40}]
    assert trim_conversation(messages, token_budget=20) == [{"role": "assistant", "content": "x" * 40},
                                                            {"role": "assistant", "content": "y" * 40}]
    assert trim_conversation(messages, token_budget=19) == [{"role": "assistant", "content": "y" * 40}]


def test_the_default_budget_is_2048_tokens() -> None:
    out = trim_conversation([{"role": "user", "content": "q" * 10_000}])
    assert len(out[0]["content"]) == 2048 * 4


def test_a_budget_of_one_token_is_valid_and_zero_is_not() -> None:
    assert trim_conversation([{"role": "user", "content": "hey"}], token_budget=1) == [{"role": "user", "content": "hey"}]
    with pytest.raises(ValueError, match="^token_budget must be positive$"):
        trim_conversation([{"role": "user", "content": "x"}], token_budget=0)


def test_odd_messages_and_parts_are_skipped() -> None:
    messages = ["not a message", {"role": "user", "content": ["plain", 5, {"type": "text", "text": 7},
                                                              {"type": "text", "text": "block"}]}]
    assert trim_conversation(messages) == [{"role": "user", "content": "plain\nblock"}]


def test_cut_middle_at_its_edges() -> None:
    text = "abcdefghij"
    assert cut_middle(text, 10) == text  # exactly the limit: untouched
    assert cut_middle(text, 5) == "abcde"  # room for the marker only: the head
    assert cut_middle(text, 6) == "a" + CUT_MARKER  # one character kept: the head's
    assert cut_middle(text, 7) == "a" + CUT_MARKER + "j"


def test_answers_with_text_around_an_object() -> None:
    names = {"summarize", "code_generation"}
    assert parse_route_answer('{"route": "summarize"}.', names) == "summarize"
    assert parse_route_answer('I pick {"route": "summarize", "why": {"score": 1}}', names) == "summarize"
    padded = '{"route": "summarize"' + " " * (2048 - len('{"route": "summarize"}')) + "}"
    assert len(padded) == 2048 and parse_route_answer(padded, names) == "summarize"
    with pytest.raises(RouterError, match=r"^router answer too long \(2049 chars\)$"):
        parse_route_answer(padded + "x", names)


def test_a_route_named_other_is_still_no_route() -> None:
    assert parse_route_answer('{"route": "other"}', {"other", "summarize"}) is None


def test_router_errors_say_what_was_wrong() -> None:
    with pytest.raises(RouterError, match="^unparseable router answer$"):
        parse_route_answer("no idea", NAMES)
    with pytest.raises(RouterError, match="^unexpected router answer type: int$"):
        parse_route_answer("42", NAMES)

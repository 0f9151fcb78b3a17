"""The Plano-Orchestrator prompt's conversation selection, middle cut and answer reading at their
edges, value by value (found by `make mutation`)."""

from __future__ import annotations

import pytest

from router_model.engine import RouterError
from router_model.plano_orchestrator_prompt import TEMPLATE, parse_routes_answer, select_conversation, text_of, trim_middle

# What the template itself costs against the budget, as Plano counts (UTF-8 bytes // 4).
T = len(TEMPLATE.encode()) // 4
NAMES = {"a", "o'neil"}


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


# ---------------------------------------------------------------- trim_middle


def test_a_text_of_exactly_the_limit_is_untouched():
    assert trim_middle("abcdef", 6) == "abcdef"


def test_the_cut_falls_on_character_boundaries():
    assert trim_middle("€x", 2) == ""  # room for neither the marker nor the 3-byte character
    assert trim_middle("€" + "a" * 10, 5) == "…aa"  # no head fits whole: marker and tail
    assert trim_middle("a" * 80, 4) == "…a"


# ---------------------------------------------------------------- select_conversation


def test_messages_that_are_not_objects_are_skipped_not_the_end():
    assert select_conversation(["junk", user("hi")]) == [user("hi")]


def test_max_turns_keeps_the_last_ones_and_zero_keeps_none():
    messages = [user("one"), assistant("two"), user("three")]
    assert select_conversation(messages, max_turns=1) == [user("three")]
    assert select_conversation(messages, max_turns=2) == [assistant("two"), user("three")]
    assert select_conversation(messages, max_turns=0) == []


def test_a_message_costs_its_bytes_divided_by_four_rounded_down():
    text = "q" * 43  # 10 tokens, not 10.75
    assert select_conversation([user(text)], token_budget=T + 10) == [user(text)]


def test_costs_add_up_walking_back_from_the_newest():
    messages = [user("a" * 40), assistant("b" * 40), user("c" * 20)]  # 10, 10 and 5 tokens
    assert select_conversation(messages, token_budget=T + 15) == [assistant("b" * 40), user("c" * 20)]
    assert select_conversation(messages, token_budget=T + 25) == messages


def test_an_overflowing_user_message_gets_what_remains_and_none_when_nothing_does():
    messages = [user("a" * 80), assistant("b" * 40)]  # 20 and 10 tokens
    assert select_conversation(messages, token_budget=T + 10) == [assistant("b" * 40)]
    assert select_conversation(messages, token_budget=T + 11) == [{"role": "user", "content": "…a"}, assistant("b" * 40)]


def test_when_nothing_fits_the_newest_message_is_kept_whole():
    messages = [user("x" * 8), user("y" * 8), assistant("z" * 400)]
    assert select_conversation(messages, token_budget=T) == [assistant("z" * 400)]


def test_only_text_parts_count():
    assert text_of([{"type": "image_url", "text": "not this"}, {"type": "text", "text": "this"}]) == "this"


# ---------------------------------------------------------------- parse_routes_answer


def test_answers_around_objects_and_in_fences():
    assert parse_routes_answer('{"route": ["a"]}.', NAMES) == "a"
    assert parse_routes_answer('I pick {"route": ["a"], "why": {"k": 1}}', NAMES) == "a"
    assert parse_routes_answer('```json\n"a"\n```', NAMES) == "a"


def test_plano_repairs_single_quotes_and_python_literals_are_read_too():
    assert parse_routes_answer("{'route': null}", NAMES) is None
    assert parse_routes_answer("""{'route': ["o'neil"]}""", NAMES) == "o'neil"


def test_the_answer_length_limit_is_4096_characters():
    padded = '{"route": ["a"]' + " " * (4096 - len('{"route": ["a"]}')) + "}"
    assert parse_routes_answer(padded, NAMES) == "a"
    with pytest.raises(RouterError, match=r"^orchestrator answer too long \(4097 chars\)$"):
        parse_routes_answer(padded + "x", NAMES)


def test_orchestrator_errors_say_what_was_wrong():
    with pytest.raises(RouterError, match="^unparseable orchestrator answer$"):
        parse_routes_answer("no idea", NAMES)
    with pytest.raises(RouterError, match="^unexpected orchestrator answer type: int$"):
        parse_routes_answer("42", NAMES)

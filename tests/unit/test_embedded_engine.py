"""The embedded router: what it reads from a conversation, and the routes it picks."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from router_model.embedded import EmbeddedEngine
from router_model.embedded_encoder import MiniLMEncoder
from router_model.embedded_scoring import FEATURES, Knobs, build_index, pick, route_features
from router_model.encoder_onnx import OnnxEncoder
from router_model.embedded_text import content_text, routing_text, split_description
from router_model.engine import Route, RouterError

ROUTES = [
    Route("coding", "programming: writing code, debugging errors, Python, JavaScript, SQL queries, unit tests"),
    Route("cooking", "cooking and food: recipes, ingredients, baking bread, meal plans"),
    Route("travel", "travel: flights, hotels, visas, trip itineraries"),
    Route("billing", "billing for this service: invoices, refunds, subscription plans, payment methods"),
]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


@pytest.fixture(scope="module")
def encoder() -> OnnxEncoder:
    return OnnxEncoder()  # what the engine runs: the int8 graph


@pytest.fixture(scope="module")
def reference() -> MiniLMEncoder:
    return MiniLMEncoder()  # float32 numpy, straight from the safetensors


@pytest.fixture(scope="module")
def engine(encoder: OnnxEncoder) -> EmbeddedEngine:
    return EmbeddedEngine(encoder=encoder)


# --- reading the conversation ------------------------------------------------------------------


def test_content_parts_are_joined_and_images_ignored() -> None:
    parts = [
        {"type": "text", "text": "what is in"},
        {"type": "image_url", "image_url": {"url": "data:..."}},
        {"type": "text", "text": "this picture"},
    ]
    assert content_text(parts) == "what is in this picture"
    assert content_text(None) == ""


def test_latest_user_turn_decides_and_other_roles_are_ignored() -> None:
    messages = [
        {"role": "system", "content": "You are a travel agent. Flights, hotels, visas."},
        user("give me a recipe for lasagna"),
        {"role": "assistant", "content": "Sure, here is one."},
        {"role": "tool", "content": "flight search results"},
        user("now write a python function that parses dates"),
    ]
    assert routing_text(messages) == "now write a python function that parses dates"


def test_short_follow_up_borrows_the_previous_user_turn() -> None:
    messages = [user("find me a hotel in Lisbon"), {"role": "assistant", "content": "Dates?"}, user("next weekend")]
    assert routing_text(messages) == "find me a hotel in Lisbon next weekend"


def test_description_splits_into_head_and_phrases() -> None:
    head, phrases = split_description("credit cards: card limits, lost, damaged or expired cards; APR")
    assert head == "credit cards"
    assert phrases == ["card limits", "lost", "damaged or expired cards", "APR"]
    assert split_description("just some words") == ("", ["just some words"])


# --- the encoder ------------------------------------------------------------------------------


def test_embeddings_are_unit_length_and_padding_does_not_leak(reference: MiniLMEncoder) -> None:
    encoder = reference
    short = "book a flight"
    long = "please find me the cheapest return flight from Paris to Tokyo in early May with one bag"
    alone = encoder.encode([short])[0]
    batched = encoder.encode([short, long])
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # The short text is padded in the batch; masking must make that invisible.
    assert np.allclose(alone, batched[0], atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(encoder: OnnxEncoder) -> None:
    a, b, c = encoder.encode(["how do I reset my password", "I forgot my password", "best pizza in Naples"])
    assert a @ b > a @ c + 0.3


# --- decisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "route"),
    [
        ("fix this python traceback in my function", "coding"),
        ("my SQL query returns duplicate rows, why?", "coding"),
        ("how long should I bake sourdough bread", "cooking"),
        ("what can I cook with chicken and rice tonight", "cooking"),
        ("book me a flight to Tokyo next week", "travel"),
        ("do I need a visa to visit Brazil", "travel"),
        ("I was charged twice, I want a refund", "billing"),
        ("send me last month's invoice", "billing"),
    ],
)
def test_clear_queries_get_the_obvious_route(engine: EmbeddedEngine, query: str, route: str) -> None:
    assert engine.decide(ROUTES, [user(query)]) == route


@pytest.mark.parametrize(
    "query",
    ["tell me about the french revolution", "what's the capital of peru", "hi there", "who won the world cup in 1998"],
)
def test_irrelevant_chatter_gets_no_route(engine: EmbeddedEngine, query: str) -> None:
    assert engine.decide(ROUTES, [user(query)]) is None


def test_latest_intent_wins_in_a_multi_turn_conversation(engine: EmbeddedEngine) -> None:
    messages = [
        {"role": "system", "content": "You help with recipes."},
        user("give me a lasagna recipe"),
        {"role": "assistant", "content": "Here it is..."},
        user("thanks. separately, which hotels near the Lisbon airport are good?"),
    ]
    assert engine.decide(ROUTES, messages) == "travel"


def test_content_parts_are_routed_like_strings(engine: EmbeddedEngine) -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "debug this JavaScript error"}]}
    assert engine.decide(ROUTES, [message]) == "coding"


def test_no_routes_or_no_user_text_means_no_route(engine: EmbeddedEngine) -> None:
    assert engine.decide([], [user("book a flight")]) is None
    assert engine.decide(ROUTES, [{"role": "system", "content": "book a flight"}]) is None


def test_route_list_cache_is_bounded(encoder: OnnxEncoder) -> None:
    engine = EmbeddedEngine(encoder=encoder, cache_size=2)
    for i in range(4):
        engine.decide([Route(f"r{i}", f"topic {i}: flights, hotels")], [user("book a hotel")])
    assert engine.cached_route_lists == 2


def test_knobs_change_the_decision(encoder: OnnxEncoder) -> None:
    # An unreachable threshold turns every decision into "other".
    strict = EmbeddedEngine(encoder=encoder, knobs=Knobs(weights=(1.0,) * len(FEATURES), threshold=1.01))
    assert strict.decide(ROUTES, [user("book me a flight to Tokyo")]) is None


def test_choose_runs_off_the_event_loop(encoder: OnnxEncoder) -> None:
    asyncio.run(_choose_off_the_loop(encoder))


async def _choose_off_the_loop(encoder: OnnxEncoder) -> None:
    engine = EmbeddedEngine(encoder=encoder)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    async def decide() -> str | None:
        try:  # a fresh route list: the first call compiles it (hundreds of ms of CPU)
            return await engine.choose(ROUTES[:3], [user("book me a flight to Rome")])
        finally:
            done.set()

    choice, _ = await asyncio.gather(decide(), ticker())
    assert choice == "travel"
    assert ticks > 10  # the loop kept running while the engine worked
    await engine.aclose()
    with pytest.raises(RouterError):
        await engine.choose(ROUTES, [user("book me a flight")])


# --- scoring functions -------------------------------------------------------------------------


class _OneHotEncoder:
    """Each distinct text gets its own axis, so similarities are exactly 0 or 1."""

    def __init__(self) -> None:
        self.axes: dict[str, int] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, self.axes.setdefault(t, len(self.axes))] = 1.0
        return out


def test_route_features_take_the_best_and_second_best_phrase() -> None:
    enc = _OneHotEncoder()
    index = build_index([("a", "x: alpha, beta"), ("b", "y: gamma")], enc)
    query = enc.encode(["alpha"])[0]
    f = route_features(query, {"alpha"}, index)
    assert f.shape == (2, len(FEATURES))
    assert f[0, 0] == 1.0 and f[1, 0] == 0.0  # max over bare phrases
    assert f[0, FEATURES.index("second_phrase")] == 0.0  # "beta" is the runner-up
    assert f[0, FEATURES.index("lexical")] > 0.0 and f[1, FEATURES.index("lexical")] == 0.0


def _knobs(**kw) -> Knobs:
    return Knobs(weights=(1.0,) * len(FEATURES), **{"threshold": 0.6, "temperature": 1.0, "other_score": -np.inf,
                                                     "floor": -np.inf, **kw})


def test_pick_applies_the_threshold_to_the_best_routes_confidence() -> None:
    # Shares of softmax(scores / 1): [0.09, 0.67, 0.24] → the best clears 0.6, not 0.7.
    assert pick(np.array([0.0, 2.0, 1.0]), _knobs()) == 1
    assert pick(np.array([0.0, 2.0, 1.0]), _knobs(threshold=0.7)) is None
    assert pick(np.array([0.0, 2.0, 1.0]), _knobs(threshold=0.7), threshold=0.5) == 1
    assert pick(np.array([]), _knobs()) is None


def test_a_strong_other_score_or_the_floor_says_other_even_for_a_short_list() -> None:
    # Two routes alone: the best always has half the share or more.
    assert pick(np.array([1.0, 0.5]), _knobs(threshold=0.5)) == 0
    # With "other" scoring 3, a weak best route loses its share to it.
    assert pick(np.array([1.0, 0.5]), _knobs(threshold=0.5, other_score=3.0)) is None
    assert pick(np.array([6.0, 0.5]), _knobs(threshold=0.5, other_score=3.0)) == 0
    # Under the floor the confidence fades: a clear winner with a low score is not enough.
    assert pick(np.array([3.0, -3.0]), _knobs(threshold=0.5, floor=4.0)) is None
    assert pick(np.array([5.0, -1.0]), _knobs(threshold=0.5, floor=4.0)) == 0


def test_min_confidence_overrides_the_fitted_threshold(encoder: OnnxEncoder) -> None:
    lenient = EmbeddedEngine(encoder=encoder, min_confidence=0.0)
    strict = EmbeddedEngine(encoder=encoder, min_confidence=1.0)
    assert lenient.decide(ROUTES, [user("tell me about the french revolution")]) is not None
    assert strict.decide(ROUTES, [user("book me a flight to Tokyo next week")]) is None
    scored = lenient.score_many([(ROUTES, [user("book me a flight to Tokyo next week")])])[0]
    assert scored.best == "travel" and 0.5 < scored.confidence <= 1.0


def test_examples_steer_a_route_its_description_misses(encoder: OnnxEncoder) -> None:
    engine = EmbeddedEngine(encoder=encoder)
    query = [user("my card got swallowed by the machine at the station")]
    plain = [Route("banking", "bank accounts: balances, transfers, statements"),
             Route("travel", "travel: flights, hotels, visas, trip itineraries")]
    with_examples = [Route("banking", plain[0].description, examples=("the ATM kept my card", "my debit card is stuck in the cash machine",
                                                                       "cash machine ate my bank card")),
                     Route("travel", plain[1].description, examples=("book a flight to Rome", "find a hotel in Paris"))]
    assert engine.decide(with_examples, query) == "banking"
    assert engine.scores(with_examples, query)["banking"] > engine.scores(plain, query)["banking"]


# --- micro-batching ----------------------------------------------------------------------------

QUERIES = [
    "fix this python traceback in my function", "how long should I bake sourdough bread",
    "book me a flight to Tokyo next week", "I was charged twice, I want a refund",
    "tell me about the french revolution", "my SQL query returns duplicate rows, why?",
    "what can I cook with chicken and rice tonight", "do I need a visa to visit Brazil",
    "send me last month's invoice", "who won the world cup in 1998", "hi there",
    "write unit tests for the parser module", "cheap hotels near the Lisbon airport",
] * 2


def test_concurrent_decisions_share_encoder_calls_and_match_one_at_a_time(encoder: OnnxEncoder) -> None:
    engine = EmbeddedEngine(encoder=encoder)
    alone = [engine.decide(ROUTES, [user(q)]) for q in QUERIES]

    async def together() -> list[str | None]:
        return await asyncio.gather(*(engine.choose(ROUTES, [user(q)]) for q in QUERIES))

    assert asyncio.run(together()) == alone
    assert engine.batcher.items == len(QUERIES)
    assert engine.batcher.batches < len(QUERIES) / 4


def test_a_decision_whose_caller_gave_up_is_dropped(encoder: OnnxEncoder) -> None:
    engine = EmbeddedEngine(encoder=encoder, batch_wait_s=0.05)

    async def run() -> str | None:
        engine.index_for(ROUTES)
        abandoned = asyncio.ensure_future(engine.choose(ROUTES, [user("book me a flight to Tokyo")]))
        await asyncio.sleep(0)  # queued, waiting for company
        abandoned.cancel()
        return await engine.choose(ROUTES, [user("send me last month's invoice")])

    assert asyncio.run(run()) == "billing"
    assert engine.batcher.items == 1


def test_route_lists_in_one_batch_are_scored_apart(encoder: OnnxEncoder) -> None:
    engine = EmbeddedEngine(encoder=encoder, batch_wait_s=0.05)
    other_routes = [Route("food", "food: recipes, restaurants"), Route("coding", "software: programming, bugs")]

    async def run() -> list[str | None]:
        engine.index_for(ROUTES), engine.index_for(other_routes)
        return await asyncio.gather(engine.choose(ROUTES, [user("book me a flight to Tokyo")]),
                                    engine.choose(other_routes, [user("a recipe for lasagna")]),
                                    engine.choose(ROUTES, [user("fix this python traceback in my function")]))

    assert asyncio.run(run()) == ["travel", "food", "coding"]
    assert engine.batcher.batches == 1

"""The Plano-Orchestrator protocol: prompt text, conversation selection, answer reading, and the
engine behind the gateway's router (deadline, fallback) against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from filter.config import Routing
from filter.routing import Router
from router_model.engine import Route, RouterError
from router_model.plano_orchestrator import PlanoOrchestratorEngine
from router_model.plano_orchestrator_prompt import (
    build_prompt,
    parse_routes_answer,
    select_conversation,
    trim_middle,
)

pytestmark = pytest.mark.timeout(30)

# The check value of Plano's own prompt test (plano-v04.md): routes, conversation, hash, length.
CHECK_ROUTES = [Route("Image generation", "generating image")]
CHECK_CONVERSATION = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "Hello! How can I assist you today?"},
    {"role": "user", "content": "given the image In style of Andy Warhol, portrait of Bart and Lisa Simpson"},
]
CHECK_SHA256 = "608e09337d8dc10f106b6d1d481bb0764e67b4be391f456479dcbebc9f1dd64d"


def test_prompt_is_plano_orchestrators_byte_for_byte():
    prompt = build_prompt(CHECK_ROUTES, select_conversation(CHECK_CONVERSATION))
    assert len(prompt) == 1249
    assert hashlib.sha256(prompt.encode("utf-8")).hexdigest() == CHECK_SHA256


def test_prompt_shape_routes_one_per_line_conversation_indented_braces_doubled():
    routes = [Route("code generation", "writing code"), Route("résumé", "CV — writing")]
    prompt = build_prompt(routes, [{"role": "user", "content": "écris"}])
    assert prompt.startswith("\nYou are a helpful assistant that selects the most suitable routes")
    assert prompt.endswith("If no routes are needed, return an empty list for `route`.\n")
    assert ('<routes>\n{"name": "code generation", "description": "writing code", "parameters": '
            '{"type": "object", "properties": {}, "required": []}}\n{"name": "résumé", "description": '
            '"CV — writing", "parameters": {"type": "object", "properties": {}, "required": []}}\n</routes>') in prompt
    assert '<conversation>\n[\n    {\n        "role": "user",\n        "content": "écris"\n    }\n]\n</conversation>' in prompt
    assert '{{"route": ["route_name_1", "route_name_2", "..."]}}' in prompt


def test_selection_drops_system_developer_tool_and_textless_messages_and_joins_parts():
    messages = [
        {"role": "system", "content": "be terse"},
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": ""}, {"type": "text", "text": "at this"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": "it is 42"},
        {"role": "user", "content": "   "},
    ]
    assert select_conversation(messages) == [
        {"role": "user", "content": "look\n\nat this"},
        {"role": "assistant", "content": "it is 42"},
        {"role": "user", "content": "   "},  # whitespace is text to Plano
    ]


def test_selection_keeps_the_last_sixteen_messages():
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(20)]
    selected = select_conversation(messages)
    assert [m["content"] for m in selected] == [f"m{i}" for i in range(4, 20)]


def test_an_overflowing_user_message_is_cut_in_the_middle_sixty_forty():
    # Template 846 bytes = 211 tokens; 7,981 remain = 31,924 bytes; minus the 3-byte marker
    # 31,921: head 19,152 bytes, tail 12,769.
    text = "a" * 20_000 + "b" * 20_000
    [only] = select_conversation([{"role": "user", "content": text}])
    assert only["content"] == "a" * 19_152 + "…" + "b" * 12_769


def test_the_walk_stops_at_an_overflowing_assistant_turn_and_older_turns_are_dropped():
    messages = [
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "x" * 40_000},
        {"role": "user", "content": "new question"},
    ]
    assert select_conversation(messages) == [{"role": "user", "content": "new question"}]


def test_when_nothing_fits_the_newest_message_is_kept_whole():
    big = "y" * 40_000
    assert select_conversation([{"role": "user", "content": "q"}, {"role": "assistant", "content": big}]) == \
        [{"role": "assistant", "content": big}]


def test_middle_trim_respects_character_boundaries():
    text = "é" * 10  # 20 bytes
    # 12 bytes: 9 available, head 9*3//5 = 5 → back to 4 (a boundary), tail 5 bytes → from 15 → 16.
    assert trim_middle(text, 12) == "éé…éé"
    assert trim_middle(text, 3) == "é"  # no room for the marker: head only, on a boundary
    assert trim_middle("short", 100) == "short"


@pytest.mark.parametrize("answer, expected", [
    ('{"route": ["code", "chat"]}', "code"),
    ('{"route": ["unknown", "chat"]}', "chat"),
    ("{'route': ['chat']}", "chat"),
    ('{"route": [\\n"chat"\\n]}', "chat"),  # literal \n sequences, repaired as Plano does
    ('```json\n{"route": ["code"]}\n```', "code"),
    ('Sure: {"route": ["code"]} hope that helps', "code"),
    ('{"route": "chat"}', "chat"),
    ('{"route": []}', None),
    ('{"route": null}', None),
    ("{}", None),
    ("", None),
    ('{"route": ["nothing"]}', None),
    (None, None),
])
def test_answers_are_read_tolerantly(answer, expected):
    assert parse_routes_answer(answer, {"code", "chat"}) == expected


@pytest.mark.parametrize("answer", ["the code route", '{"route": 5}', "[" * 5000])
def test_unreadable_answers_are_router_errors(answer):
    with pytest.raises(RouterError):
        parse_routes_answer(answer, {"code"})


# --------------------------------------------------------------------------- the engine behind the router


class Orchestrator:
    """A stand-in router on 127.0.0.1 that answers only the exact expected prompt."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.answer = '{"route": ["code"]}'
        self.hold = threading.Event()
        self.hold.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.bodies.append(body)
                outer.hold.wait(10)
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": outer.answer}}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def orchestrator():
    server = Orchestrator()
    yield server
    server.close()


ROUTES = [Route("code", "writing code"), Route("chat", "small talk")]


def test_the_router_sends_the_exact_request_and_maps_the_first_known_route(orchestrator):
    settings = Routing(engine="plano-orchestrator", endpoint=orchestrator.url, model="Plano-Orchestrator", timeout_s=5)
    router = Router(PlanoOrchestratorEngine(orchestrator.url, "Plano-Orchestrator", 5), settings)
    answer = asyncio.run(_choose(router, ROUTES, CHECK_CONVERSATION))
    assert (answer.route, answer.outcome) == ("code", "route")
    [body] = orchestrator.bodies
    assert body == {"model": "Plano-Orchestrator", "temperature": 0.01, "stream": False,
                    "messages": [{"role": "user", "content": build_prompt(ROUTES, CHECK_CONVERSATION)}]}
    assert "max_tokens" not in body


def test_the_router_reads_beyond_arch_routers_trimming(orchestrator):
    # Arch-Router's 2,048-token budget would cut this message; the orchestrator's 8,192 keeps it.
    long_question = "word " * 4000  # 20,000 bytes = 5,000 tokens
    settings = Routing(engine="plano-orchestrator", endpoint=orchestrator.url, timeout_s=5)
    router = Router(PlanoOrchestratorEngine(orchestrator.url, timeout=5), settings)
    asyncio.run(_choose(router, ROUTES, [{"role": "user", "content": long_question}]))
    prompt = orchestrator.bodies[0]["messages"][0]["content"]
    assert json.dumps(long_question) in prompt


def test_an_empty_list_is_no_route_and_a_missed_deadline_falls_back(orchestrator):
    settings = Routing(engine="plano-orchestrator", endpoint=orchestrator.url, timeout_s=0.3, cache_size=0)
    router = Router(PlanoOrchestratorEngine(orchestrator.url, timeout=0.3), settings)
    orchestrator.answer = '{"route": []}'

    async def both():
        empty = await router.choose(ROUTES, CHECK_CONVERSATION)
        orchestrator.hold.clear()
        return empty, await _choose(router, ROUTES, CHECK_CONVERSATION)

    empty, answer = asyncio.run(both())
    assert empty.outcome == "other"
    assert (answer.route, answer.outcome) == (None, "timeout")
    assert answer.elapsed_ms < 3000  # far from the stand-in's 10 s hold: the deadline cut it


def test_an_unreadable_answer_is_an_error_outcome(orchestrator):
    settings = Routing(engine="plano-orchestrator", endpoint=orchestrator.url, timeout_s=5)
    router = Router(PlanoOrchestratorEngine(orchestrator.url, timeout=5), settings)
    orchestrator.answer = "I think code"
    assert asyncio.run(_choose(router, ROUTES, CHECK_CONVERSATION)).outcome == "error"


async def _choose(router, routes, messages):
    try:
        return await router.choose(routes, messages)
    finally:
        await router.aclose()


def test_switchyard_eval_scores_a_plano_orchestrator_endpoint(orchestrator, tmp_path, capsys):
    from router_model.evaluate import main

    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - name: travel\n    description: flights and hotels\n"
                      "  - name: cooking\n    description: recipes\n")
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}], "expected": e}) + "\n"
                             for q, e in [("a flight to Rome", "travel"), ("bake bread", "cooking")]))
    orchestrator.answer = '{"route": ["travel"]}'
    assert main(["--routes", str(routes), "--cases", str(cases), "--engine", "plano-orchestrator",
                 "--endpoint", orchestrator.url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["n"], result["accuracy"]) == (2, 0.5)
    assert {body["model"] for body in orchestrator.bodies} == {"Plano-Orchestrator"}

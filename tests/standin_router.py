"""A stand-in Plano-Orchestrator router for the end-to-end tests: it speaks the protocol (one user
message, the routes one JSON object per line, the conversation as indented JSON; a list answer)
and picks routes by keywords the test gives it, in place of a model's judgement."""

from __future__ import annotations

import hashlib
import json
import re

from tests.standins import Received, Reply, json_reply

PROMPT_HEAD = "\nYou are a helpful assistant that selects the most suitable routes based on user intent.\n"
_ROUTES = re.compile(r"<routes>\n(.*?)\n</routes>", re.DOTALL)
_CONVERSATION = re.compile(r"<conversation>\n(.*?)\n</conversation>", re.DOTALL)


def completion(content: str) -> Reply:
    return json_reply(200, {"id": "router", "object": "chat.completion", "created": 1, "model": "Plano-Orchestrator",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}]})


class KeywordRouter:
    """Answers `{"route": [names whose keywords occur in the latest user message]}`; a prompt whose
    SHA-256 is in `known_prompts` gets the routes given for it. Anything not in the protocol's
    shape is a 400, which the gateway must treat as a router failure."""

    def __init__(self, keywords: dict[str, str], known_prompts: dict[str, list[str]] | None = None):
        self.keywords = keywords  # keyword (lower case) → route name
        self.known_prompts = known_prompts or {}
        self.prompts: list[str] = []

    def __call__(self, request: Received) -> Reply:
        body = request.json
        messages = body.get("messages")
        if request.path != "/v1/chat/completions" or not isinstance(messages, list) or len(messages) != 1 \
                or messages[0].get("role") != "user" or body.get("temperature") != 0.01 or "max_tokens" in body:
            return json_reply(400, {"error": {"message": "not the orchestrator's request shape"}})
        prompt = messages[0]["content"]
        self.prompts.append(prompt)
        digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        if digest in self.known_prompts:
            return completion(json.dumps({"route": self.known_prompts[digest]}))
        routes, conversation = _ROUTES.search(prompt), _CONVERSATION.search(prompt)
        if not prompt.startswith(PROMPT_HEAD) or routes is None or conversation is None:
            return json_reply(400, {"error": {"message": "not the orchestrator's prompt"}})
        names = [json.loads(line)["name"] for line in routes.group(1).split("\n")]
        turns = json.loads(conversation.group(1))
        latest = next((t["content"] for t in reversed(turns) if t["role"] == "user"), "").lower()
        chosen = [route for word, route in self.keywords.items() if word in latest and route in names]
        return completion(json.dumps({"route": list(dict.fromkeys(chosen))}))

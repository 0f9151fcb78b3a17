"""The Plano-Orchestrator engine: asks an OpenAI-compatible server running a Plano-Orchestrator
model (or Arch-Router weights served under that name, as Plano's self-hosting demo does).

The HTTP side is Arch-Router's engine (`router_model/arch_router.py`): one pooled client, one
`POST {endpoint}/chat/completions` per decision, every failure a `RouterError`. What differs is
the protocol (`router_model/plano_orchestrator_prompt.py`): the prompt, what of the conversation
it holds, the request's sampling, and the list answer.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from router_model.arch_router import ArchRouterEngine
from router_model.engine import Message, Route
from router_model.plano_orchestrator_prompt import TOKEN_BUDGET, build_prompt, parse_routes_answer, select_conversation


class PlanoOrchestratorEngine(ArchRouterEngine):
    name = "plano-orchestrator"

    def __init__(self, endpoint: str, model: str = "Plano-Orchestrator", timeout: float = 1.0, *,
                 headers: Mapping[str, str] | None = None, token_budget: int = TOKEN_BUDGET) -> None:
        super().__init__(endpoint, model, timeout, headers=headers, token_budget=token_budget)

    def select(self, messages: Sequence[Message]) -> list[dict]:
        return select_conversation(messages, token_budget=self._token_budget)

    def request_body(self, routes: Sequence[Route], messages: Sequence[Message]) -> dict[str, Any]:
        # As Plano sends it: one user message, temperature 0.01, no max_tokens (the answer is a
        # list whose length the model decides; the gateway's deadline bounds the wait).
        return {
            "model": self._model,
            "messages": [{"role": "user", "content": build_prompt(routes, self.select(messages))}],
            "temperature": self._temperature,
            "stream": False,
        }

    def read_answer(self, content: str | None, routes: Sequence[Route]) -> str | None:
        return parse_routes_answer(content, {r.name for r in routes})

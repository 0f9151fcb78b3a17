"""The contract every routing engine fulfils.

An engine reads a conversation and a list of ``{name, description}`` routes and answers one
route name, or ``None`` for "no route" (the default model serves the request). Engines never
raise for a bad answer of the model: they raise ``RouterError`` and the caller falls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True, slots=True)
class Route:
    """A routing policy as users write it: a name, a plain-language description and, optionally,
    a few example requests (used by the embedded engine only; the Arch-Router prompt has no
    place for them)."""

    name: str
    description: str
    examples: tuple[str, ...] = ()


# A conversation message as the engines see it: {"role": "user"|"assistant"|..., "content": ...}
# where content is a string or a list of OpenAI-style content parts.
Message = dict


class RouterError(Exception):
    """The engine could not reach a decision (connection, HTTP error, unreadable answer)."""


class RouterEngine(Protocol):
    """Picks a route for a conversation; ``None`` means no route fits ("other")."""

    name: str  # "arch-router" | "embedded" — used in metrics labels and logs

    async def choose(self, routes: Sequence[Route], messages: Sequence[Message]) -> str | None:
        """Return the chosen route's name, or None. Raise RouterError on failure.

        The caller enforces the deadline (asyncio.timeout), so engines must be cancellable and
        must not block the event loop for more than a few milliseconds.
        """
        ...

    async def aclose(self) -> None:
        """Release connections or threads."""
        ...

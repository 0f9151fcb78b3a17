"""Which session a request belongs to.

- **Explicit**: the client sends `x-model-affinity: <id>` (Plano's header). Its requests stay on
  the model chosen first, across user turns, while the id is in use.
- **Implicit**: no header. A hash of what stays the same for every request of one agent
  conversation: the client key's name (when `gateway.client_keys` is set), the system prompt, the
  names of the tools offered and the first user message. It gives header-free clients (Claude
  Code, Roo Code) one model per turn of their loop.

Both include the model name the client asked for, so side calls made under another name (Claude
Code's small fast model) are decided on their own and never take over the main loop's pin; and
the client key's name, so tenants that happen to pick the same id never share a pin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Mapping

import orjson

from filter.errors import GatewayError
from filter.sessions.conversation import Conversation

AFFINITY_HEADER = "x-model-affinity"
MAX_AFFINITY_CHARS = 256


@dataclass(frozen=True, slots=True)
class SessionKey:
    id: str  # what `x-switchyard-session` shows: the client's id, or the implicit hash
    storage: str  # the key in the store's session table
    explicit: bool


def affinity_id(headers: Mapping[str, str]) -> str | None:
    """The client's `x-model-affinity`, or None. Raises GatewayError (400) for one that is too long."""
    value = headers.get(AFFINITY_HEADER, "").strip()
    if not value:
        return None
    if len(value) > MAX_AFFINITY_CHARS or not value.isprintable():
        raise GatewayError(400, f"{AFFINITY_HEADER} must be at most {MAX_AFFINITY_CHARS} printable characters",
                           param=AFFINITY_HEADER)
    return value


def explicit_key(affinity: str, client: str | None, model: str | None) -> SessionKey:
    return SessionKey(affinity, "x:" + _digest(("explicit", client or "", model or "", affinity)), True)


def implicit_key(conversation: Conversation, client: str | None, model: str | None) -> SessionKey | None:
    """None when the request holds no user message (a Responses continuation that names only its
    `previous_response_id`): nothing would tell its conversation from another's."""
    first = next((s for s in conversation.said if s.role == "user"), None)
    if first is None:
        return None
    words = first.texts
    # Attachments by content; cache_control markers move between requests of one conversation.
    media = tuple(orjson.dumps({k: v for k, v in part.items() if k != "cache_control"}, option=orjson.OPT_SORT_KEYS)
                  for part in first.media if isinstance(part, dict))
    digest = _digest(("implicit", client or "", model or "", conversation.system, "\n".join(conversation.tools),
                      *words, *media))
    return SessionKey(digest, "i:" + digest, False)


def _digest(fields: Iterable[str | bytes]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for field in fields:
        data = field if isinstance(field, bytes) else field.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no two field lists hash alike
        h.update(data)
    return h.hexdigest()

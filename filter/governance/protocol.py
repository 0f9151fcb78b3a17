"""The text the governance extension in Envoy (envoy/switchyard_governance.c) and the filter
workers exchange over gRPC (`/switchyard.governance.v1.Governance/Sync`, raw bytes both ways):
pure parsing and formatting, bounded.

A call, from Envoy:

    switchyard-governance 1
    now <Unix ms>
    check <entity>                                         a request to admit (0 or more lines)
    e <entity> <minute> <requests> <tokens> <period end> <usd>

`e` lines carry what that Envoy counted alone since its last call (requests admitted, tokens of
requests that ended, their cost) for the minute (`Unix ms // 60000`) and the budget period (its end,
Unix seconds; 0 for entities without a budget) they count in. The worker counts them in its own
minute and period (its clock names the store's counters; Envoy follows it). The answer:

    switchyard-governance 1
    store ok|down
    now <Unix ms>                                                        the worker's clock
    verdict admit | verdict refuse <entity> requests|tokens|budget      (for a check)
    t <entity> <minute> <requests> <tokens> <period end> <usd>           the store's totals

Entities are `c:<key name>` or `m:<provider/model>`, percent-encoded outside [A-Za-z0-9._:/@+-].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

MAGIC = b"switchyard-governance 1"
MAX_LINES = 20_000
MAX_ENTITY_BYTES = 600
# Per line and call: more than any Envoy counts between two calls.
MAX_AMOUNT = 1e12
SAFE = "._:/@+-"


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Delta:
    entity: str
    window: int  # the minute
    requests: float
    tokens: float
    period_end: int  # Unix seconds; 0: no budget period
    usd: float


@dataclass(slots=True)
class Call:
    now_ms: int
    checks: list[str] = field(default_factory=list)
    deltas: list[Delta] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Totals:
    entity: str
    window: int
    requests: float
    tokens: float
    period_end: int
    usd: float


@dataclass(frozen=True, slots=True)
class Refusal:
    entity: str
    limit: str  # "requests" | "tokens" | "budget"


def encode_name(name: str) -> str:
    return quote(name, safe=SAFE)


def _name(word: bytes) -> str:
    raw = unquote_to_bytes(word)
    if not raw or len(raw) > MAX_ENTITY_BYTES or raw[:2] not in (b"c:", b"m:"):
        raise ProtocolError(f"not an entity: {word[:80]!r}")
    return raw.decode("utf-8", "replace")


def _amount(word: bytes, limit: float = MAX_AMOUNT) -> float:
    try:
        value = float(word)
    except ValueError:
        raise ProtocolError(f"not a number: {word[:40]!r}") from None
    if not (0 <= value <= limit) or math.isnan(value):
        raise ProtocolError(f"amount out of range: {word[:40]!r}")
    return value


def _integer(word: bytes) -> int:
    """Times and their windows: Unix milliseconds fit well below 1e15."""
    value = _amount(word, 1e15)
    if value != int(value):
        raise ProtocolError(f"not an integer: {word[:40]!r}")
    return int(value)


def parse_call(raw: bytes) -> Call:
    lines = raw.split(b"\n")
    if not lines or lines[0] != MAGIC:
        raise ProtocolError("not a governance call")
    if len(lines) > MAX_LINES:
        raise ProtocolError(f"more than {MAX_LINES} lines")
    call: Call | None = None
    for line in lines[1:]:
        words = line.split()
        if not words:
            continue
        head = words[0]
        if head == b"now" and len(words) == 2:
            call = Call(_integer(words[1]))
        elif call is None:
            raise ProtocolError("the call must start with its time")
        elif head == b"check" and len(words) == 2:
            call.checks.append(_name(words[1]))
        elif head == b"e" and len(words) == 7:
            call.deltas.append(Delta(_name(words[1]), _integer(words[2]), _amount(words[3]), _amount(words[4]),
                                     _integer(words[5]), _amount(words[6])))
        else:
            raise ProtocolError(f"unknown line {line[:80]!r}")
    if call is None:
        raise ProtocolError("the call has no time")
    return call


def format_answer(store_ok: bool, totals: list[Totals], refusal: Refusal | None = None,
                  checked: bool = False, now_ms: int | None = None) -> bytes:
    lines = [MAGIC.decode(), f"store {'ok' if store_ok else 'down'}"]
    if now_ms is not None:
        lines.append(f"now {now_ms}")
    if checked and store_ok:
        lines.append(f"verdict refuse {encode_name(refusal.entity)} {refusal.limit}" if refusal else "verdict admit")
    for t in totals:
        lines.append(f"t {encode_name(t.entity)} {t.window} {t.requests:.17g} {t.tokens:.17g} {t.period_end} {t.usd:.17g}")
    return ("\n".join(lines) + "\n").encode()

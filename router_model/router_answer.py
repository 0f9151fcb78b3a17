"""Reading a router model's answer text: both router protocols answer a small JSON object.

Models do not always answer clean JSON: they add a ```json fence, single quotes, stray text
around the object. This module turns such text into a Python value, or says it cannot; what the
value means (one route, a list of routes) is each protocol's own.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Callable

from router_model.engine import RouterError

UNREADABLE = object()  # neither JSON nor a Python literal, not even an object inside the text

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*(.*?)\s*```$", re.DOTALL)


def unfenced(text: str, max_chars: int, what: str) -> str:
    """The answer without white space and a Markdown fence; RouterError past ``max_chars``."""
    answer = text.strip()
    fenced = _FENCE.match(answer)
    if fenced:
        answer = fenced.group(1).strip()
    if len(answer) > max_chars:
        raise RouterError(f"{what} too long ({len(text)} chars)")
    return answer


def literal(text: str) -> Any:
    """JSON, else a Python literal (single quotes, None); ``UNREADABLE`` when neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        # literal_eval evaluates no code; it accepts {'route': 'x'} that json rejects.
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return UNREADABLE


def value_of(answer: str, load: Callable[[str], Any] = literal) -> Any:
    """The answer read with ``load``, else the object found inside a line of text, else UNREADABLE."""
    value = load(answer)
    if value is UNREADABLE:
        start, end = answer.find("{"), answer.rfind("}")
        if 0 <= start < end:
            value = load(answer[start:end + 1])
    return value

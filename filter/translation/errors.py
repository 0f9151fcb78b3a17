"""Provider error bodies -> the client's error shape.

Accepted sources: Anthropic ``{"type": "error", "error": {"type", "message"}}``,
OpenAI ``{"error": {"message", "type", "param", "code"}}``, the looser shapes of
OpenAI-compatible servers (``{"error": "text"}``, ``{"message": ...}``,
``{"detail": ...}``) and non-JSON bodies.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "error_to_chat",
    "error_to_messages",
    "parse_error",
    "chat_error_object",
    "messages_error_object",
    "anthropic_error_type",
    "status_for_anthropic_type",
]

ANTHROPIC_ERROR_TYPES: tuple[str, ...] = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
)

_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

# Anthropic types that are not in the public set above, folded into it.
_TYPE_ALIASES = {
    "billing_error": "permission_error",
    "timeout_error": "api_error",
    "server_error": "api_error",
    "insufficient_quota": "rate_limit_error",
}

_MAX_MESSAGE = 2000


def anthropic_error_type(status: int) -> str:
    """HTTP status -> Anthropic error type."""
    if status == 401:
        return "authentication_error"
    if status in (402, 403):
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit_error"
    if status in (503, 529):
        return "overloaded_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "api_error"


def status_for_anthropic_type(error_type: str) -> int:
    return _STATUS_OF_TYPE.get(error_type, 500)


def _default_message(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"upstream error (HTTP {status})"


def parse_error(status: int, body: bytes) -> dict:
    """Extract ``{"message", "type", "param", "code"}`` (values may be None) from any error body."""
    message: Any = None
    etype: Any = None
    param: Any = None
    code: Any = None
    data: Any = None
    if body:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if data is None:
            text = body.decode("utf-8", "replace").strip()
            if text:
                message = text[:_MAX_MESSAGE]
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # some providers wrap the error in a list
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            etype = err.get("type")
            param = err.get("param")
            code = err.get("code")
        elif isinstance(err, str):
            message = err
        if message is None:
            for key in ("message", "detail", "error_description"):
                value = data.get(key)
                if isinstance(value, str):
                    message = value
                    break
                if value is not None:
                    message = orjson.dumps(value).decode()
                    break
    if not isinstance(message, str) or not message:
        message = _default_message(status)
    return {
        "message": message,
        "type": etype if isinstance(etype, str) and etype else None,
        "param": param if isinstance(param, str) else None,
        "code": code if isinstance(code, (str, int)) and not isinstance(code, bool) else None,
    }


def chat_error_object(status: int, parsed: dict) -> dict:
    """Parsed error -> OpenAI ``{"error": {...}}`` object."""
    etype = parsed["type"] or anthropic_error_type(status)
    return {"error": {"message": parsed["message"], "type": etype, "param": parsed["param"], "code": parsed["code"]}}


def messages_error_object(status: int, parsed: dict) -> dict:
    """Parsed error -> Anthropic ``{"type": "error", "error": {...}}`` object."""
    etype = parsed["type"]
    etype = _TYPE_ALIASES.get(etype, etype)
    if etype not in _STATUS_OF_TYPE:
        etype = anthropic_error_type(status)
    return {"type": "error", "error": {"type": etype, "message": parsed["message"]}}


def error_to_chat(status: int, body: bytes) -> bytes:
    """Any provider error body -> OpenAI error body."""
    return orjson.dumps(chat_error_object(status, parse_error(status, body)))


def error_to_messages(status: int, body: bytes) -> bytes:
    """Any provider error body -> Anthropic error body."""
    return orjson.dumps(messages_error_object(status, parse_error(status, body)))

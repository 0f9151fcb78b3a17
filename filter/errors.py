"""Errors the gateway answers itself, in the shape of the client's API.

OpenAI:    {"error": {"message", "type", "param", "code"}}   (Chat Completions and Responses)
Anthropic: {"type": "error", "error": {"type", "message"}}
"""

from __future__ import annotations

from enum import Enum

import orjson

from filter.translation.errors import anthropic_error_type


class ClientApi(str, Enum):
    """The API family a client speaks, decided by the request path."""

    CHAT = "openai"  # POST /v1/chat/completions
    MESSAGES = "anthropic"  # POST /v1/messages
    RESPONSES = "responses"  # POST /v1/responses (OpenAI's Responses API; errors in OpenAI's shape)


class GatewayError(Exception):
    """A request the gateway refuses or cannot serve; nothing goes upstream."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def unauthorized() -> GatewayError:
    """A request without a valid client key (gateway.client_keys); Envoy's fast path answers the
    same bytes (filter/render/fast_path.py renders them from here)."""
    return GatewayError(401, "missing or invalid API key for this gateway", code="invalid_api_key")


def request_too_large(limit: int) -> GatewayError:
    """A body over gateway.max_request_bytes (Envoy buffers more than that, for large answers)."""
    return GatewayError(413, f"request body is larger than the gateway's limit ({limit} bytes, "
                             "gateway.max_request_bytes)", code="request_too_large")


# OpenAI names few error types; Anthropic has one per class of failure (one table for the gateway's
# own errors and for translated provider errors: filter.translation.errors).
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def error_type(api: ClientApi, status: int) -> str:
    if api is ClientApi.MESSAGES:
        return anthropic_error_type(status)
    return _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def error_body(api: ClientApi, error: GatewayError) -> bytes:
    kind = error_type(api, error.status)
    if api is ClientApi.MESSAGES:
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})
    return orjson.dumps(
        {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}
    )

"""Error bodies: any provider error -> the client's error shape."""

import orjson
import pytest

from filter.translation import ANTHROPIC_ERROR_TYPES, error_to_chat, error_to_messages

ANTHROPIC_OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
OPENAI_BAD_REQUEST = b'{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}'


def test_anthropic_error_to_chat():
    out = orjson.loads(error_to_chat(529, ANTHROPIC_OVERLOADED))
    assert out == {"error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}}


def test_openai_error_to_chat_keeps_fields():
    out = orjson.loads(error_to_chat(400, OPENAI_BAD_REQUEST))
    assert out == {"error": {"message": "bad temperature", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}


def test_openai_error_to_messages():
    out = orjson.loads(error_to_messages(400, OPENAI_BAD_REQUEST))
    assert out == {"type": "error", "error": {"type": "invalid_request_error", "message": "bad temperature"}}


def test_anthropic_error_to_messages_passes_through():
    out = orjson.loads(error_to_messages(529, ANTHROPIC_OVERLOADED))
    assert out == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (413, "request_too_large"),  # Anthropic's own type for 413
        (422, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ],
)
def test_status_to_anthropic_type_for_untyped_bodies(status, etype):
    out = orjson.loads(error_to_messages(status, b"upstream exploded"))
    assert out == {"type": "error", "error": {"type": etype, "message": "upstream exploded"}}
    assert etype in ANTHROPIC_ERROR_TYPES


def test_openai_types_outside_anthropic_set_fall_back_to_status():
    body = b'{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
    assert orjson.loads(error_to_messages(429, body))["error"]["type"] == "rate_limit_error"
    body = b'{"error":{"message":"boom","type":"server_error"}}'
    assert orjson.loads(error_to_messages(500, body))["error"]["type"] == "api_error"
    body = b'{"error":{"message":"who?","type":"weird"}}'
    assert orjson.loads(error_to_messages(401, body))["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "model not loaded"}', "model not loaded"),
        (b'{"message": "Too many requests"}', "Too many requests"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b'[{"error": {"message": "wrapped", "code": 400}}]', "wrapped"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "Bad Gateway"),
    ],
)
def test_loose_and_non_json_bodies(body, message):
    chat = orjson.loads(error_to_chat(502, body))
    assert chat["error"]["message"] == message
    assert set(chat["error"]) == {"message", "type", "param", "code"}
    assert chat["error"]["type"] == "api_error"
    msgs = orjson.loads(error_to_messages(502, body))
    assert msgs == {"type": "error", "error": {"type": "api_error", "message": message}}


def test_untyped_chat_error_gets_type_from_status():
    out = orjson.loads(error_to_chat(429, b'{"message":"slow down"}'))
    assert out["error"]["type"] == "rate_limit_error"


def test_huge_non_json_body_is_truncated():
    out = orjson.loads(error_to_messages(500, b"x" * 100_000))
    assert len(out["error"]["message"]) <= 2000

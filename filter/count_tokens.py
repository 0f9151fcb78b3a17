"""POST /v1/messages/count_tokens: Anthropic's token counting, native or estimated.

An Anthropic model counts for itself (the request is passed through). For any other model the
gateway answers an estimate: the prompt's text counted by a pre-tokenizer shaped like OpenAI's
o200k one (words, numbers of up to three digits, punctuation runs, line breaks) with lengths
calibrated against the exact o200k counts, plus OpenAI's per-message overhead, and flat figures
for what is not text. A real tokenizer's vocabulary would cost each worker about 80 MB and a
second to load; this costs nothing and is within a few per cent on English prose and code
(tests/unit/test_count_tokens.py measures it against the exact counts).
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

# OpenAI's chat format: every message costs 3 tokens beyond its content, the reply's priming 3.
PER_MESSAGE = 3
REPLY_PRIMING = 3
PER_TOOL = 8  # a tool's framing in the prompt beyond its name, description and schema (estimate)
IMAGE_TOKENS = 765  # OpenAI's count for one 1024×1024 image in high detail
BYTES_PER_TOKEN = 4  # for a document's bytes (PDF), which the gateway does not render

_PIECES = re.compile(r"[^\W\d_]+|\d{1,3}| ?[^\s\w]+|\s+")
_CJK_START = 0x2E80  # CJK, kana, hangul: about 0.6 tokens a character in o200k


def _word_tokens(word: str) -> int:
    if word.isascii():
        return 1 + max(0, len(word) - 4) // 6  # long English words split into pieces of ~6
    cjk = sum(1 for ch in word if ord(ch) >= _CJK_START)
    rest = len(word) - cjk
    return math.ceil(cjk * 0.6) + (1 + max(0, rest - 3) // 4 if rest else 0)


def text_tokens(text: str) -> int:
    """An estimate of a text's o200k token count."""
    total = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        if piece.isspace():
            total += 1 if "\n" in piece or len(piece) > 1 else 0  # a single space joins the next word
        elif piece[0].isalpha() or (len(piece) > 1 and piece[1].isalpha()):
            total += _word_tokens(piece.lstrip())
        elif piece.isdigit():
            total += 1
        else:
            total += max(1, len(piece.strip()) // 2)  # punctuation merges in pairs
    return total


def estimate_input_tokens(body: dict) -> int:
    """The input tokens of an Anthropic-shaped request for a non-Anthropic model (an estimate)."""
    tokens = text_tokens
    total = REPLY_PRIMING
    system = body.get("system")
    if system:
        total += PER_MESSAGE + 1 + _content_tokens(system, tokens)
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += PER_MESSAGE + 1 + _content_tokens(message.get("content"), tokens)
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            schema = tool.get("input_schema")
            total += PER_TOOL + tokens(str(tool.get("name") or "")) + tokens(str(tool.get("description") or "")) \
                + (tokens(orjson.dumps(schema).decode()) if isinstance(schema, dict) else 0)
    return total


def _content_tokens(content: Any, tokens) -> int:
    if isinstance(content, str):
        return tokens(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            total += tokens(str(block.get("text") or ""))
        elif kind == "thinking":
            total += tokens(str(block.get("thinking") or ""))
        elif kind == "tool_use":
            total += tokens(str(block.get("name") or "")) + tokens(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_result":
            total += _content_tokens(block.get("content"), tokens)
        elif kind == "image":
            total += IMAGE_TOKENS
        elif kind == "document":
            total += _document_tokens(block.get("source"), tokens)
    return total


def _document_tokens(source: Any, tokens) -> int:
    if not isinstance(source, dict):
        return 0
    if source.get("type") == "text":
        return tokens(str(source.get("data") or ""))
    data = source.get("data")
    if isinstance(data, str):
        return len(data) * 3 // 4 // BYTES_PER_TOKEN  # base64 → bytes → tokens
    return 0


def count_answer(input_tokens: int) -> bytes:
    """Anthropic's answer shape."""
    return orjson.dumps({"input_tokens": input_tokens})

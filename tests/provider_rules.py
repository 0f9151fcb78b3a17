"""The real providers' request rules, as the stand-ins enforce them.

A stand-in answers a request the real API would refuse with the real API's 400 (status, error
shape and wording as OpenAI and Anthropic send them), so a gateway bug that produces such a
request fails a test. The per-model figures are typed here from the providers' model pages —
on purpose not read from the gateway's model table (filter/catalog.py), so that the table is
checked too. A model name not listed gets the API family's general rules only (an
OpenAI-compatible server of your own takes any parameter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OpenAIModel:
    max_output: int
    reasoning: bool  # o-series and GPT-5: reasoning_effort yes; sampling settings and max_tokens no


@dataclass(frozen=True)
class AnthropicModel:
    max_output: int
    thinking: bool


# platform.openai.com/docs/models
OPENAI_MODELS = {
    "gpt-4o": OpenAIModel(16_384, False),
    "gpt-4o-2024-11-20": OpenAIModel(16_384, False),
    "gpt-4o-mini": OpenAIModel(16_384, False),
    "gpt-4.1": OpenAIModel(32_768, False),
    "o3": OpenAIModel(100_000, True),
    "o4-mini": OpenAIModel(100_000, True),
    "gpt-5": OpenAIModel(128_000, True),
}
# docs.anthropic.com/en/docs/about-claude/models
ANTHROPIC_MODELS = {
    "claude-sonnet-4-5": AnthropicModel(64_000, True),
    "claude-sonnet-4-5-20250929": AnthropicModel(64_000, True),
    "claude-haiku-4-5": AnthropicModel(64_000, True),
    "claude-opus-4-1": AnthropicModel(32_000, True),
    "claude-3-5-haiku-20241022": AnthropicModel(8_192, False),
}
# platform.openai.com/docs/guides/embeddings: native dimensions; `dimensions` only for the -3 models.
OPENAI_EMBEDDING_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                           "text-embedding-ada-002": 1536}

# platform.openai.com/docs/api-reference/chat/create
OPENAI_CHAT_PARAMS = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
    "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
OPENAI_SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
                   "logit_bias")
ANTHROPIC_COUNT_TOKENS_PARAMS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking",
                                           "mcp_servers", "context_management", "output_config"})


class Refused(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def openai_error(exc: Refused) -> dict:
    return {"error": {"message": exc.message, "type": "invalid_request_error", "param": exc.param, "code": exc.code}}


def anthropic_error(exc: Refused) -> dict:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": exc.message}}


def _number(value: Any) -> bool:
    return type(value) in (int, float)


# ---------------------------------------------------------------------------------- OpenAI chat


def check_openai_chat(body: Any) -> None:
    """Raise Refused where the OpenAI Chat Completions API would answer 400."""
    if not isinstance(body, dict):
        raise Refused("We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Refused("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refused("[] is too short - 'messages'", "messages", "invalid_value")
    known = OPENAI_MODELS.get(model)
    if known is not None:
        for name in body:
            if name not in OPENAI_CHAT_PARAMS:
                raise Refused(f"Unrecognized request argument supplied: {name}", name)
    _check_openai_messages(messages)
    if "stream_options" in body and body.get("stream") is not True:
        raise Refused("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    temperature = body.get("temperature")
    if temperature is not None and (not _number(temperature) or not 0 <= temperature <= 2):
        raise Refused(f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
                      f"{temperature} instead.", "temperature", "decimal_above_max_value")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (type(value) is not int or value < 1):
            raise Refused(f"Invalid '{name}': integer below minimum value.", name, "integer_below_min_value")
    if known is None:
        return
    if known.reasoning:
        if "max_tokens" in body:
            raise Refused("Unsupported parameter: 'max_tokens' is not supported with this model. "
                          "Use 'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
        for name in OPENAI_SAMPLING:
            value = body.get(name)
            if value is not None and not (name in ("temperature", "top_p") and value == 1):
                raise Refused(f"Unsupported parameter: '{name}' is not supported with this model.", name,
                              "unsupported_parameter")
    elif "reasoning_effort" in body:
        raise Refused("Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                      "reasoning_effort", "unsupported_parameter")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if type(value) is int and value > known.max_output:
            raise Refused(f"max_tokens is too large: {value}. This model supports at most {known.max_output} "
                          f"completion tokens, whereas you provided {value}.", name, "invalid_value")


# platform.openai.com/docs/api-reference/responses/create
OPENAI_RESPONSES_PARAMS = frozenset({
    "model", "input", "instructions", "background", "conversation", "include", "max_output_tokens",
    "max_tool_calls", "metadata", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
    "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream", "stream_options",
    "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user", "context_management",
    "client_metadata",
})


def check_openai_responses(body: Any) -> None:
    """Raise Refused where the OpenAI Responses API would answer 400."""
    if not isinstance(body, dict):
        raise Refused("We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Refused("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    for name in ("messages", "max_tokens", "max_completion_tokens"):  # Chat Completions' names
        if name in body:
            raise Refused(f"Unsupported parameter: '{name}'.", name, "unsupported_parameter")
    known = OPENAI_MODELS.get(model)
    if known is not None:
        for name in body:
            if name not in OPENAI_RESPONSES_PARAMS:
                raise Refused(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    limit = body.get("max_output_tokens")
    if limit is not None and (type(limit) is not int or limit < 16):
        raise Refused(f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got "
                      f"{limit} instead.", "max_output_tokens", "integer_below_min_value")
    if known is None:
        return
    if type(limit) is int and limit > known.max_output:
        raise Refused(f"max_output_tokens is too large: {limit}. This model supports at most {known.max_output} "
                      f"output tokens.", "max_output_tokens", "invalid_value")
    if known.reasoning:
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and value != 1:
                raise Refused(f"Unsupported parameter: '{name}' is not supported with this model.", name,
                              "unsupported_parameter")
    elif isinstance(body.get("reasoning"), dict) and body["reasoning"].get("effort") is not None:
        raise Refused("Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                      "reasoning.effort", "unsupported_parameter")


def _check_openai_messages(messages: list) -> None:
    pending: list[str] = []  # tool call ids of the last assistant message still unanswered
    answerable: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Refused(f"Invalid type for 'messages[{i}]': expected an object.", f"messages[{i}]")
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool", "function"):
            raise Refused(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                          f"'function', 'tool', and 'developer'.", f"messages[{i}].role", "invalid_value")
        if pending and role != "tool":
            raise Refused("An assistant message with 'tool_calls' must be followed by tool messages responding to "
                          f"each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                          f"{', '.join(pending)}", f"messages.[{i}].role")
        content = message.get("content")
        if role in ("system", "developer", "user", "tool") and not isinstance(content, (str, list)):
            raise Refused(f"Invalid type for 'messages[{i}].content': expected one of a string or array of "
                          f"objects, but got {type(content).__name__} instead.", f"messages[{i}].content",
                          "invalid_type")
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if content is None and not calls:
                raise Refused(f"Invalid value for 'content': expected a string, got null.",
                              f"messages.[{i}].content")
            pending = [c.get("id") for c in calls if isinstance(c, dict)]
            answerable = set(pending)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in answerable:
                raise Refused("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                              "message with 'tool_calls'.", f"messages.[{i}].role")
            pending = [p for p in pending if p != call_id]
        else:
            answerable = set()
    if pending:
        raise Refused("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                      f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                      f"{', '.join(pending)}", "messages")


def check_openai_embeddings(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise Refused("you must provide a model parameter", "model")
    model = body["model"]
    if model not in OPENAI_EMBEDDING_MODELS:
        raise Refused(f"The model `{model}` does not exist or you do not have access to it.", "model",
                      "model_not_found", status=404)
    data = body.get("input")
    items = [data] if isinstance(data, str) else data
    if not isinstance(items, list) or not items or len(items) > 2048 or not all(
            (isinstance(x, str) and x) or (isinstance(x, list) and x) for x in items):
        raise Refused("'$.input' is invalid. Please check the API reference: "
                      "https://platform.openai.com/docs/api-reference.", "input")
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if model == "text-embedding-ada-002":
            raise Refused("This model does not support specifying dimensions.", "dimensions")
        if type(dimensions) is not int or not 1 <= dimensions <= OPENAI_EMBEDDING_MODELS[model]:
            raise Refused(f"Invalid 'dimensions': {dimensions}.", "dimensions", "invalid_value")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise Refused("Invalid value for 'encoding_format'.", "encoding_format", "invalid_value")


# ---------------------------------------------------------------------------------- Anthropic


def check_anthropic_messages(body: Any) -> None:
    """Raise Refused where the Anthropic Messages API would answer 400."""
    if not isinstance(body, dict):
        raise Refused("Invalid JSON body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Refused("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise Refused("max_tokens: Field required")
    if type(max_tokens) is not int or max_tokens < 1:
        raise Refused("max_tokens: Input should be greater than or equal to 1")
    known = ANTHROPIC_MODELS.get(model)
    if known is not None and max_tokens > known.max_output:
        raise Refused(f"max_tokens: {max_tokens} > {known.max_output}, which is the maximum allowed number of "
                      f"output tokens for {model}")
    temperature = body.get("temperature")
    if temperature is not None and (not _number(temperature) or not 0 <= temperature <= 1):
        raise Refused("temperature: Input should be less than or equal to 1")
    _check_anthropic_thinking(body, known, max_tokens)
    _check_anthropic_turns(body.get("messages"))


def check_anthropic_count_tokens(body: Any) -> None:
    if not isinstance(body, dict):
        raise Refused("Invalid JSON body")
    if not isinstance(body.get("model"), str):
        raise Refused("model: Field required")
    for name in body:
        if name not in ANTHROPIC_COUNT_TOKENS_PARAMS:
            raise Refused(f"{name}: Extra inputs are not permitted")
    _check_anthropic_thinking(body, ANTHROPIC_MODELS.get(body["model"]), None)
    _check_anthropic_turns(body.get("messages"))


def _check_anthropic_thinking(body: dict, known: AnthropicModel | None, max_tokens: int | None) -> None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    if known is not None and not known.thinking:
        raise Refused(f"'{body['model']}' does not support thinking.")
    budget = thinking.get("budget_tokens")
    if type(budget) is not int or budget < 1024:
        raise Refused("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if max_tokens is not None and budget >= max_tokens:
        raise Refused("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation "
                      "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-"
                      "window-size")
    if body.get("temperature") not in (None, 1):
        raise Refused("`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation "
                      "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility")
    if body.get("top_k") is not None:
        raise Refused("`top_k` must be unset when thinking is enabled.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise Refused("Thinking may not be enabled when tool_choice forces tool use.")


def _blocks(content: Any) -> list:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _check_anthropic_turns(messages: Any) -> None:
    if not isinstance(messages, list):
        raise Refused("messages: Field required")
    expected_results: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system"):
            # Claude Code 2.1 sends `system` turns inside `messages` (the API takes them since 2026).
            raise Refused(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
        if role == "system":
            continue
        content = _blocks(message.get("content"))
        if not isinstance(content, list):
            raise Refused(f"messages.{i}.content: Input should be a valid list")
        if not content and not (role == "assistant" and i == len(messages) - 1):
            raise Refused(f"messages.{i}: all messages must have non-empty content except for the optional "
                          f"final assistant message")
        results = [b.get("tool_use_id") for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        if expected_results:
            missing = [t for t in expected_results if t not in results]
            if role != "user" or missing:
                raise Refused(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                              f"after: {', '.join(missing or expected_results)}. Each `tool_use` block must have a "
                              f"corresponding `tool_result` block in the next message.")
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                raise Refused(f"messages.{i}.content.{j}: Input should be a valid dictionary")
            if block.get("type") == "text" and not (isinstance(block.get("text"), str) and block["text"]):
                raise Refused("messages: text content blocks must be non-empty")
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in expected_results:
                raise Refused(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                              f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                              f"`tool_use` block in the previous message.")
        if results and any(not isinstance(b, dict) or b.get("type") != "tool_result" for b in content[:len(results)]):
            # The results of the previous turn's tool calls come first; any text after them.
            raise Refused(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                          f"{', '.join(expected_results)}. Each `tool_use` block must have a corresponding "
                          f"`tool_result` block in the next message.")
        expected_results = [b.get("id") for b in content if isinstance(b, dict) and b.get("type") == "tool_use"] \
            if role == "assistant" else []

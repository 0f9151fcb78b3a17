"""Parsing a client's request body: one JSON parse, shape checks, per-request preferences.

Pure functions: bytes in, a `ClientRequest` or a `GatewayError` out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from filter.errors import ClientApi, GatewayError
from router_model.engine import Route

PREFERENCE_METADATA_KEY = "archgw_preference_config"
PLANO_METADATA_KEY = "plano_preference_config"


@dataclass(frozen=True, slots=True)
class RequestPreference:
    """A per-request route and the configured model names that may serve it (first wins, unless
    `prefer` reorders them as a configured route's `selection_policy` does)."""

    route: Route
    models: tuple[str, ...]
    prefer: str = "none"  # Plano's selection_policy.prefer: cheapest | fastest | none


@dataclass(slots=True)
class ClientRequest:
    api: ClientApi
    body: dict[str, Any]  # the parsed body, owned by this request; rewriting edits it in place
    model: str | None
    stream: bool
    preferences: tuple[RequestPreference, ...] | None  # None: use the configured routes

    @property
    def messages(self) -> list[dict]:
        """Chat Completions and Messages bodies (a Responses body has `input` items instead)."""
        return self.body["messages"]


def client_credentials(headers: dict[str, str]) -> list[bytes]:
    """The keys a client presents: `x-api-key` (Anthropic's SDKs) and `Authorization: Bearer`
    (OpenAI's; the scheme is case-insensitive, as HTTP says)."""
    found = []
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        found.append(api_key.encode())
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found.append(token.strip().encode())
    return found


# The deepest nesting accepted, the top-level object being level 1: what the gateway can write
# back (orjson encodes 254 levels). The fast path's checks (envoy/fast_path.lua,
# envoy/switchyard_fast_path.c) use the same number.
MAX_JSON_DEPTH = 254


def too_deep() -> GatewayError:
    return _bad(f"request body is nested more than {MAX_JSON_DEPTH} levels deep")


def encode_json(value: Any) -> bytes:
    """A body the gateway sends on; a GatewayError (400) when it is nested too deeply to write."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson's only failure on parsed JSON: "Recursion limit reached"
        raise too_deep() from None


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_request")


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise _bad("request body is empty: expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("request body is not valid UTF-8") from None
        if str(exc).startswith("depth limit exceeded"):  # orjson reads 1,024 levels
            raise too_deep() from None
        raise _bad(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad(f"request body must be a JSON object, got {_json_type(body)}")
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:  # could be too deep: ask the encoder
        encode_json(body)
    return body


def parse_client_request(api: ClientApi, raw: bytes) -> ClientRequest:
    """Parse and check a chat-completions, messages or responses body. Raises GatewayError (400)."""
    body = _json_object(raw)

    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad(f"'model' must be a string, got {_json_type(model)}", "model")

    if api is ClientApi.RESPONSES:
        _check_responses_body(body)
    else:
        _check_items(body, "messages")

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad(f"'stream' must be a boolean, got {_json_type(stream)}", "stream")

    return ClientRequest(
        api=api,
        body=body,
        model=model,
        stream=stream,
        preferences=take_preferences(body),
    )


def _check_items(body: dict[str, Any], key: str) -> None:
    items = body.get(key)
    if items is None:
        raise _bad(f"'{key}' is required", key)
    if not isinstance(items, list):
        raise _bad(f"'{key}' must be an array, got {_json_type(items)}", key)
    if not items:
        raise _bad(f"'{key}' must contain at least one {'message' if key == 'messages' else 'item'}", key)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"'{key}[{i}]' must be an object, got {_json_type(item)}", f"{key}[{i}]")


def _check_responses_body(body: dict[str, Any]) -> None:
    """`input` is a string or a non-empty array of item objects; `previous_response_id` a string."""
    if not isinstance(body.get("input"), str):
        _check_items(body, "input")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise _bad("'previous_response_id' must be a non-empty string", "previous_response_id")


# OpenAI's limit on the inputs of one embeddings request.
MAX_EMBEDDING_INPUTS = 2048


def parse_embeddings_request(raw: bytes) -> ClientRequest:
    """Parse and check a POST /v1/embeddings body (OpenAI's shape). Raises GatewayError (400)."""
    body = _json_object(raw)
    model = body.get("model")
    if model is None or model == "":
        raise _bad("'model' is required: name an embedding model or an alias of one", "model")
    if not isinstance(model, str):
        raise _bad(f"'model' must be a string, got {_json_type(model)}", "model")
    data = body.get("input")
    if data is None:
        raise _bad("'input' is required", "input")
    items = [data] if isinstance(data, str) else data
    if not isinstance(items, list) or not items:
        raise _bad("'input' must be a string or a non-empty array of strings or token arrays", "input")
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise _bad(f"'input' may hold at most {MAX_EMBEDDING_INPUTS} items, got {len(items)}", "input")
    if isinstance(data, list) and not (all(isinstance(x, str) for x in items)
                                       or all(type(x) is int for x in items)
                                       or all(isinstance(x, list) and all(type(t) is int for t in x) for x in items)):
        raise _bad("'input' must be a string, an array of strings, an array of token ids or an array of "
                   "token-id arrays", "input")
    return ClientRequest(api=ClientApi.CHAT, body=body, model=model, stream=False, preferences=None)


def take_preferences(body: dict[str, Any]) -> tuple[RequestPreference, ...] | None:
    """Remove per-request routing preferences from the body and return them.

    Two forms are accepted: `metadata.archgw_preference_config` (a list, or a YAML/JSON string of
    a list, of `{model, routing_preferences: [{name, description}]}`) and a top-level
    `routing_preferences: [{name, description, models: [...]}]`. Neither is an upstream field.
    """
    found: list[RequestPreference] = []
    present = False

    metadata = body.get("metadata")
    if isinstance(metadata, dict) and PLANO_METADATA_KEY in metadata:
        # Plano 0.4 removes this key before forwarding and routes on nothing in it: so do we.
        del metadata[PLANO_METADATA_KEY]
        if not metadata:
            del body["metadata"]
            metadata = None
    if isinstance(metadata, dict) and PREFERENCE_METADATA_KEY in metadata:
        present = True
        raw = metadata.pop(PREFERENCE_METADATA_KEY)
        if not metadata:
            del body["metadata"]
        found.extend(_metadata_preferences(raw))

    if "routing_preferences" in body:
        present = True
        found.extend(_top_level_preferences(body.pop("routing_preferences")))

    if len(found) > MAX_REQUEST_ROUTES:
        _room_for_one_more(found[:MAX_REQUEST_ROUTES])
    return tuple(found) if present else None


def _room_for_one_more(routes: list) -> None:
    if len(routes) >= MAX_REQUEST_ROUTES:
        raise _bad(f"a request may bring at most {MAX_REQUEST_ROUTES} routing preferences", "routing_preferences")


# Per-request preferences are a client's input on the request path: bounded, and parsed by libyaml
# (C) after a check of its event stream (no anchors, aliases or bombs), never by a pure-Python
# parser on the event loop (filter/processor.py moves large bodies with preferences off it).
MAX_PREFERENCE_TEXT = 64 * 1024
MAX_REQUEST_ROUTES = 64
MAX_ROUTE_TEXT = 4096  # a route's name plus description, in characters
_PREFERENCE_YAML_NODES = 10_000
_PREFERENCE_YAML_DEPTH = 16


def _preference_text(text: str, where: str) -> Any:
    """A JSON or YAML string of preferences → its value; a 400 for anything out of bounds."""
    if len(text) > MAX_PREFERENCE_TEXT:
        raise _bad(f"'{where}' is longer than {MAX_PREFERENCE_TEXT} characters", where)
    if text.lstrip()[:1] in ("[", "{"):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # YAML's flow style looks the same
    try:
        depth = nodes = 0
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise _bad(f"'{where}': YAML anchors and aliases are not accepted", where)
            if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
                nodes += 1
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if nodes > _PREFERENCE_YAML_NODES or depth > _PREFERENCE_YAML_DEPTH:
                raise _bad(f"'{where}' is too large or too deeply nested", where)
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader, checked above)
    except yaml.YAMLError:
        raise _bad(f"'{where}' is not valid JSON or YAML", where) from None


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _metadata_preferences(raw: Any) -> list[RequestPreference]:
    where = f"metadata.{PREFERENCE_METADATA_KEY}"
    if isinstance(raw, str):
        raw = _preference_text(raw, where)
    if not isinstance(raw, list):
        raise _bad(f"'{where}' must be a list of {{model, routing_preferences}}", where)
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise _bad(f"'{where}[{i}]' must be an object with a 'model' string", where)
        prefs = entry.get("routing_preferences")
        if not isinstance(prefs, list):
            raise _bad(f"'{where}[{i}].routing_preferences' must be a list", where)
        for j, pref in enumerate(prefs):
            _room_for_one_more(out)
            out.append(RequestPreference(_route(pref, f"{where}[{i}].routing_preferences[{j}]"), (entry["model"],)))
    return out


def _top_level_preferences(raw: Any) -> list[RequestPreference]:
    if not isinstance(raw, list):
        raise _bad("'routing_preferences' must be a list of {name, description, models}", "routing_preferences")
    out = []
    for i, pref in enumerate(raw):
        where = f"routing_preferences[{i}]"
        _room_for_one_more(out)
        route = _route(pref, where)
        models = pref.get("models")
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            raise _bad(f"'{where}.models' must be a non-empty list of model names", "routing_preferences")
        policy = pref.get("selection_policy")
        prefer = "none" if policy is None else policy.get("prefer", "none") if isinstance(policy, dict) else None
        if prefer not in ("cheapest", "fastest", "none"):
            raise _bad(f"'{where}.selection_policy' must be {{prefer: cheapest|fastest|none}}", "routing_preferences")
        out.append(RequestPreference(route, tuple(models), prefer))
    return out


def _route(pref: Any, where: str) -> Route:
    if not isinstance(pref, dict):
        raise _bad(f"'{where}' must be an object with 'name' and 'description'", where)
    name, description = pref.get("name"), pref.get("description")
    if not isinstance(name, str) or not name or not isinstance(description, str):
        raise _bad(f"'{where}' needs a 'name' and a 'description' string", where)
    if len(name) + len(description) > MAX_ROUTE_TEXT:
        raise _bad(f"'{where}': name and description may hold {MAX_ROUTE_TEXT} characters together", where)
    return Route(name, description)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}[type(value)]

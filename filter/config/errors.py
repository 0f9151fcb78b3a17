"""Configuration errors, worded for the user: `file: key.path: what is wrong`."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from filter.config.schema import type_name


class ConfigError(Exception):
    """A configuration problem, already worded for the user: `file: key.path: what is wrong`."""


# The tags of the schema's unions (schema.py), which pydantic puts in an error's location.
UNION_TAGS = frozenset({"@list", "@object", "@key", "@entry", "@one"})


def key_path(loc: tuple) -> str:
    """('llm_providers', 0, 'model') → 'llm_providers[0].model'; union tags ('@list') dropped.
    A key that would not read as one in a path (empty, spaces at its ends, a line break or
    another control character, ': ') is written quoted: `gateway['']`, `x['a\\nb']`."""
    path = ""
    for part in loc:
        if isinstance(part, str) and (part in UNION_TAGS or part == "[key]"):
            continue  # a union's tag; a mapping key's own check (the key is already in the path)
        if isinstance(part, int):
            path += f"[{part}]"
        elif _needs_quotes(str(part)):
            path += f"[{str(part)!r}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _needs_quotes(key: str) -> bool:
    return not key or key != key.strip() or ": " in key or not key.isprintable()


def fail(file: str, path: str, message: str) -> ConfigError:
    where = f"{path}: " if path else ""
    return ConfigError(f"{file}: {where}{message}")


def from_validation_error(file: str, root: type[BaseModel], exc: ValidationError) -> ConfigError:
    """The first problem pydantic found, in Switchyard's words (the file's order of keys)."""
    error = exc.errors(include_url=False)[0]
    loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
    path = key_path(loc)
    if kind == "switchyard":
        message = error["msg"]
    elif kind == "extra_forbidden":
        allowed = _allowed_keys(root, loc[:-1])
        message = f"unknown key (allowed: {', '.join(sorted(allowed))})" if allowed else "unknown key"
    elif kind == "missing":
        message = "is required"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping, got {type_name(value)}"
    elif kind == "list_type":
        message = f"expected a list, got {type_name(value)}"
    elif kind == "too_short":
        message = "must not be empty"
    elif kind == "union_tag_invalid":
        message = f"unexpected {type_name(value)}"
    elif kind == "invalid_key":  # a key of a section that is not a string (`false:`, `1:`): the section's path
        path = key_path(loc[:-1])
        message = f"keys must be strings, got {type_name(value)} ({value!r})"
    elif kind == "string_type" and loc and loc[-1] == "[key]":
        path = key_path(loc[:-2])
        message = f"names must be strings, got {type_name(loc[-2])}"
    else:  # a pydantic wording we did not foresee: still one line, with the path
        message = error["msg"]
    return fail(file, path, message)


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the schema allows at `loc` (the mapping that held an unknown key)."""
    node: Any = root
    for part in loc:
        node = _unwrap(node, part)
        if node is None:
            return []
    model = _model_of(node)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in _args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None


def _args(annotation: Any) -> tuple:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return (typing.get_args(annotation)[0],)
    if origin in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return ()


def _unwrap(annotation: Any, part: Any) -> Any:
    """One step down the schema: a field of a model, an item of a list, a value of a dict."""
    if isinstance(part, str) and part.startswith("@"):
        return annotation  # a union tag: the member is found on the next step
    model = _model_of(annotation) if not _is_container(annotation) else None
    if model is not None and isinstance(part, str):
        field = model.model_fields.get(part)
        return field.annotation if field is not None else None
    for candidate in (annotation, *_flatten(annotation)):
        origin = typing.get_origin(candidate)
        if origin is list and isinstance(part, int):
            return typing.get_args(candidate)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(candidate)[1]
    return None


def _is_container(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, dict)


def _flatten(annotation: Any) -> list:
    out = []
    for arg in _args(annotation):
        out.append(arg)
        out.extend(_flatten(arg))
    return out

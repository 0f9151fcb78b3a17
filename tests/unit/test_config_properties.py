"""Random and damaged configuration files thrown at the loader: each one either loads or gets the
project's one-line `ConfigError` naming the file and the key path (or the YAML line) of the
problem — never another exception, never more time or memory than a real file takes.

Three sources of files: random YAML trees built from the schema's own key names, valid
configurations (Plano's corpus and the examples) with their values changed, and the same files
damaged as text (anchors and aliases, duplicate keys, tabs, bytes that are not UTF-8, cuts).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
import tracemalloc
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from filter.config import ConfigError, load_config
from filter.config import schema
from filter.config.loader import MAX_CONFIG_BYTES, MAX_NODES

REPO = Path(__file__).resolve().parents[2]
SEED_FILES = sorted((REPO / "tests/data/plano-configs").glob("*.yaml")) + sorted((REPO / "examples").glob("*.yaml"))
SEEDS = [yaml.safe_load(path.read_text()) for path in SEED_FILES]
SEED_TEXTS = [path.read_text() for path in SEED_FILES]
ENV = {name: "sk-test-0123456789" for text in SEED_TEXTS for name in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", text)}
ENV |= {"SPACE": " ", "COMMA": ",", "NEWLINE": "sk-abc\n", "EMPTY": ""}

# Far above what loading any of these files takes (a few MiB), far below what a bomb takes.
MAX_PEAK_BYTES = 64 * 1024 * 1024
# Each example loads in milliseconds; a generous per-example bound that still catches a blow-up.
PROFILE = settings(max_examples=150, deadline=5000, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _schema_keys() -> list[str]:
    """Every key name the schema knows, so that random trees reach past the top level."""
    names: set[str] = set()
    seen: set[type] = set()

    def visit(annotation) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.add(annotation)
            for name, field in annotation.model_fields.items():
                names.add(field.alias or name)
                visit(field.annotation)
        for arg in typing.get_args(annotation):
            visit(arg)

    visit(schema.ConfigFile)
    return sorted(names)


SCHEMA_KEYS = _schema_keys()
ODD_STRINGS = ["", " ", ",", "\t", "0", "-1", "1e999", ".inf", "-.inf", ".nan", "~", "null", "yes", "on",
               "$NOT_SET", "$SPACE", "$COMMA", "$NEWLINE", "$EMPTY", "${OPENAI_API_KEY}", "0.0.0.0 }, evil",
               "a\nb", "a\x00b", "\u2028", "\ud7ff", "é", "🚀", "openai/*", "openai/", "/gpt", "x" * 5000,
               "http://u:p@h:0/v1?q=1", "http://[::1]:8080", "redis://", "unix://", "0.0001ms", "100000h", "1s"]
NUMBERS = st.sampled_from([0, -1, 1, 65535, 65536, 2**31, 2**63, 10**30, -(10**30), 0.5, -0.0, 1e308,
                           math.inf, -math.inf, math.nan]) | st.integers() | st.floats()
SCALARS = (st.none() | st.booleans() | NUMBERS | st.sampled_from(ODD_STRINGS) | st.text(max_size=20))
KEYS = st.sampled_from(SCHEMA_KEYS) | st.text(max_size=12) | st.integers(-3, 3) | st.none() | st.booleans()
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                     max_leaves=40)
TOP_LEVEL = st.dictionaries(st.sampled_from(list(schema.ConfigFile.model_fields)) | KEYS, TREES, max_size=6)


# ----------------------------------------------------------------- what every answer must be


_TMP = tempfile.TemporaryDirectory(prefix="switchyard-config-fuzz-")
FILE = Path(_TMP.name) / "fuzz.yaml"


def load(data: bytes):
    """The loaded Config or the ConfigError; any other exception fails the test. The peak of
    memory allocated while loading stays under MAX_PEAK_BYTES."""
    FILE.write_bytes(data)
    tracemalloc.start()
    try:
        return load_config(FILE, ENV)
    except ConfigError as exc:
        return exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MAX_PEAK_BYTES, f"loading {len(data)} bytes peaked at {peak} bytes"


def _paths(tree, prefix: str = "") -> set[str]:
    """Every key path of the parsed document, written as errors write them (`a.b[0].c`)."""
    out = {prefix} if prefix else set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            text = str(key)
            if isinstance(key, int) and not isinstance(key, bool):
                part = f"[{key}]"
            elif not text or text != text.strip() or ": " in text or not text.isprintable():
                part = f"[{text!r}]"  # quoted: an empty key, a line break, ...
            else:
                part = text
            path = prefix + part if part.startswith("[") else (f"{prefix}.{part}" if prefix else part)
            out |= _paths(value, path)
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out |= _paths(value, f"{prefix}[{i}]")
    return out


def _schema_paths(model=schema.ConfigFile, prefix: str = "") -> set[str]:
    """Key paths of settings the schema has (a default can clash with a value in the file)."""
    out = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out |= _schema_paths(arg, path)
    return out


SCHEMA_PATHS = _schema_paths()
YAML_LEVEL = re.compile(r"^(not valid UTF-8|not accepted as YAML: .+|not valid YAML( at line (\d+), column \d+)?: .+"
                        r"|the configuration must be a YAML mapping, .+)$")


def assert_clean(data: bytes, result) -> None:
    """A Config, or one line `fuzz.yaml: <key path or YAML place>: <problem>` that fits the file."""
    if not isinstance(result, ConfigError):
        event("loaded")
        return
    message = str(result)
    event("YAML refused" if YAML_LEVEL.match(message.partition(": ")[2]) else "key-path error")
    assert "\n" not in message and "\r" not in message and "Traceback" not in message, message
    assert len(message) <= len(data) + 2048, f"an error longer than the file: {len(message)} characters"
    prefix = f"{FILE}: "
    assert message.startswith(prefix), message
    rest = message[len(prefix):]
    yaml_level = YAML_LEVEL.match(rest)
    if yaml_level:
        if yaml_level.group(3):  # the line it names is in the file
            assert int(yaml_level.group(3)) <= data.count(b"\n") + 1, message
        return
    try:
        tree = yaml.safe_load(data.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 (the loader accepted what PyYAML refuses: that is the bug)
        pytest.fail(f"{message!r} for a file PyYAML refuses: {exc}")
    if rest.startswith("keys must be strings"):  # the top level's own keys: no path above them
        assert isinstance(tree, dict) and not all(isinstance(k, str) for k in tree), message
        return
    known = _paths(tree) | SCHEMA_PATHS
    # The path of the problem is in the file (or the schema, for a default); a missing key's
    # parent is, the key itself named after it.
    assert any(rest.startswith(p + ": ") or (rest.startswith(p + ".") and ": " in rest[len(p):])
               for p in known), f"no key path of the file in {message!r}"


# ----------------------------------------------------------------- random trees


def dump(tree, style: bool | None, unicode: bool) -> bytes:
    return yaml.safe_dump(tree, default_flow_style=style, allow_unicode=unicode, sort_keys=False).encode()


@PROFILE
@given(tree=st.sampled_from([TOP_LEVEL, TOP_LEVEL, TOP_LEVEL, TREES]).flatmap(lambda trees: trees), style=st.sampled_from([None, False, True]), unicode=st.booleans())
def test_random_trees_load_or_name_a_key_path(tree, style, unicode):
    data = dump(tree, style, unicode)
    assert_clean(data, load(data))


# ----------------------------------------------------------------- valid files, values changed


def _locations(tree, path=()):
    yield path
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _locations(value, (*path, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _locations(value, (*path, i))


def _get(tree, path):
    for part in path:
        tree = tree[part]
    return tree


MUTATIONS = ["drop", "replace", "wrap_list", "wrap_map", "stringify", "unknown_key", "duplicate_item", "deep"]


@st.composite
def mutated_configs(draw):
    tree = yaml.safe_load(yaml.safe_dump(draw(st.sampled_from(SEEDS))))  # a copy
    for _ in range(draw(st.integers(1, 3))):
        locations = [p for p in _locations(tree) if p]
        if not locations:
            break
        path = draw(st.sampled_from(locations))
        parent, last = _get(tree, path[:-1]), path[-1]
        kind = draw(st.sampled_from(MUTATIONS))
        value = parent[last]
        if kind == "drop":
            del parent[last]
        elif kind == "replace":
            parent[last] = draw(SCALARS | TREES)
        elif kind == "wrap_list":
            parent[last] = [value]
        elif kind == "wrap_map":
            parent[last] = {draw(KEYS): value}
        elif kind == "stringify":
            parent[last] = str(value)
        elif kind == "unknown_key" and isinstance(value, dict):
            value[draw(KEYS)] = draw(SCALARS)
        elif kind == "duplicate_item" and isinstance(value, list) and value:
            value.append(yaml.safe_load(yaml.safe_dump(value[0])))
        elif kind == "deep":
            for _ in range(draw(st.integers(30, 70))):
                value = [value] if draw(st.booleans()) else {"k": value}
            parent[last] = value
    return tree


@PROFILE
@given(tree=mutated_configs(), style=st.sampled_from([None, False]), unicode=st.booleans())
def test_valid_files_with_changed_values_load_or_name_a_key_path(tree, style, unicode):
    data = dump(tree, style, unicode)
    assert_clean(data, load(data))


# ----------------------------------------------------------------- valid files, damaged as text


@st.composite
def damaged_texts(draw) -> bytes:
    lines = draw(st.sampled_from(SEED_TEXTS)).encode().split(b"\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        kind = draw(st.sampled_from(["anchor", "alias", "duplicate", "tab", "bytes", "cut", "repeat", "document",
                                     "bomb", "bom"]))
        if kind == "anchor" and b": " in line:
            lines[i] = line.replace(b": ", b": &a ", 1)
        elif kind == "alias" and b": " in line:
            key = line.split(b": ", 1)[0]
            lines[i] = key + b": *a"
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "tab":
            lines[i] = re.sub(rb"^( +)", lambda m: b"\t" * len(m.group(1)), line)
        elif kind == "bytes":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\x1b",
                                                          b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"\\"])) + line[at:]
        elif kind == "cut":
            lines[i] = line[: draw(st.integers(0, len(line)))]
            del lines[i + 1:]
        elif kind == "repeat":  # a long document: one line thousands of times
            lines[i:i + 1] = [line] * draw(st.integers(100, 5000))
        elif kind == "document":
            lines.insert(i, b"---")
        elif kind == "bomb":
            lines[i:i] = [b"x: &x [" + b"1," * 9 + b"1]", b"y: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x]",
                          b"z: [*y,*y,*y,*y,*y,*y,*y,*y,*y]"]
        elif kind == "bom":
            lines[0] = b"\xef\xbb\xbf" + lines[0]
    return b"\n".join(lines)


@PROFILE
@given(data=damaged_texts())
def test_damaged_files_load_or_name_a_key_path_or_a_line(data):
    assert_clean(data, load(data))


@settings(PROFILE, max_examples=1, deadline=30_000)  # ~1 s each; tracemalloc slows PyYAML several times
@given(count=st.integers(1, MAX_CONFIG_BYTES // 8), kind=st.sampled_from(["list", "map", "text"]))
@example(count=MAX_NODES - 3, kind="list").via("the most values accepted")
@example(count=MAX_NODES - 2, kind="list").via("one too many")
@example(count=MAX_CONFIG_BYTES // 8, kind="list").via("as many values as the size limit allows")
def test_long_documents_within_the_size_limit_stay_within_bounds(count, kind):
    """Up to the size limit (1 MiB), a file costs what the node limit allows, never more."""
    if kind == "list":
        data = b"llm_providers: [" + b",".join([b"1"] * count) + b"]\n"  # count + 3 nodes (map, key, list)
    elif kind == "map":
        data = b"gateway: {" + b",".join(b"k%d: 1" % i for i in range(count // 2)) + b"}\n"
    else:
        data = b"llm_providers: [{model: openai/gpt-4o, access_key: '" + b"x" * (count * 8) + b"'}]\n"
    result = load(data)
    assert_clean(data, result)
    if kind == "list":
        refused = isinstance(result, ConfigError) and f"more than {MAX_NODES} YAML nodes" in str(result)
        assert refused == (count + 3 > MAX_NODES), result


# ----------------------------------------------------------------- through the command line


BAD_FILES = {  # name: (text, what the one line says after the file name)
    "inf.yaml": ("llm_providers: [{model: openai/gpt-4o, access_key: k}]\nrouting: {timeout: .inf}\n",
                 "routing.timeout: bad duration"),
    "nested_list.yaml": ("llm_providers: [{model: openai/gpt-4o, access_key: k}]\nmodel_aliases: [[1]]\n",
                         "model_aliases: expected a mapping, got a list"),
    "bool_key.yaml": ("llm_providers: [{model: openai/gpt-4o, access_key: k, false: 1}]\n",
                      "llm_providers[0]: keys must be strings, got a boolean (False)"),
    "empty_key.yaml": ("llm_providers: [{model: openai/gpt-4o, access_key: k}]\ngateway: {'': 1}\n",
                       "gateway['']: unknown key (allowed: "),
    "tabs.yaml": ("llm_providers:\n\t- model: openai/gpt-4o\n", "not valid YAML at line 2, column 1: "),
    "alias.yaml": ("llm_providers: &p [{model: openai/gpt-4o, access_key: k}]\nx: *p\n",
                   "not accepted as YAML: YAML anchors (&p) are not accepted at line 1"),
    "deep.yaml": ("llm_providers: [{model: openai/gpt-4o, access_key: k, x: " + "[" * 100 + "]" * 100 + "}]\n",
                  "not accepted as YAML: nested deeper than 64 levels"),
    "many.yaml": ("llm_providers: [" + "1," * MAX_NODES + "1]\n", f"not accepted as YAML: more than {MAX_NODES} YAML nodes"),
    "latin1.yaml": ("llm_providers: [{model: openai/caf\xe9}]\n".encode("latin-1"), "not valid UTF-8"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_validate_answers_a_bad_file_with_one_key_path_line_and_no_traceback(tmp_path, name):
    text, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = subprocess.run([sys.executable, "-m", "filter.runtime.cli", "validate", str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"switchyard: {path}: {expected}"), result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""

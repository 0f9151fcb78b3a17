"""Reading YAML that an operator or a client wrote, within bounds.

PyYAML's safe loader still expands anchors and aliases (a kilobyte "billion laughs" file becomes
gigabytes), accepts any depth and silently keeps the last of two equal keys. This loader refuses
anchors and aliases outright (no Plano or Switchyard file needs them), bounds the size, the
nesting and the number of nodes, and reports duplicate keys, each with the line it is on.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_CONFIG_BYTES = 1024 * 1024  # a configuration file; far above any real one
MAX_DEPTH = 64
# Real files have hundreds of nodes. PyYAML's pure-Python composer takes ~15 µs and ~600 bytes a
# node: 20,000 load in ~0.3 s and ~12 MiB (200,000 took 4 s and 300 MiB, blocking a reload).
MAX_NODES = 20_000


class YamlLimitError(ValueError):
    """The text is not acceptable YAML here; the message says why and where."""


def _where(mark) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that composes no anchors or aliases and stops at the depth and node limits."""

    def __init__(self, stream, max_depth: int, max_nodes: int):
        super().__init__(stream)
        self._max_depth = max_depth
        self._max_nodes = max_nodes
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):  # noqa: D401 (PyYAML's name)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise YamlLimitError(f"YAML aliases (*{event.anchor}) are not accepted{_where(event.start_mark)}")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise YamlLimitError(f"YAML anchors (&{anchor}) are not accepted{_where(event.start_mark)}")
        self._nodes += 1
        if self._nodes > self._max_nodes:
            raise YamlLimitError(f"more than {self._max_nodes} YAML nodes{_where(event.start_mark)}")
        self._depth += 1
        if self._depth > self._max_depth:
            raise YamlLimitError(f"nested deeper than {self._max_depth} levels{_where(event.start_mark)}")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key (a list): PyYAML reports it below
                continue
            if duplicate:
                raise YamlLimitError(f"duplicate key {key!r}{_where(key_node.start_mark)}")
        return super().construct_mapping(node, deep)


def load_yaml(text: str, *, max_bytes: int = MAX_CONFIG_BYTES, max_depth: int = MAX_DEPTH,
              max_nodes: int = MAX_NODES) -> Any:
    """Parse one YAML document within the limits. Raises YamlLimitError or yaml.YAMLError."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlLimitError(f"larger than {max_bytes} bytes")
    loader = _BoundedLoader(text, max_depth, max_nodes)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()

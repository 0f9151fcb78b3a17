"""A Proxy-Wasm ABI v0.2.1 host for tests: runs Switchyard's compiled Envoy extension (wasmtime)
with the host functions it imports, so that its logic can be checked on chosen inputs — exact
bucket bounds, odd label values — that a real Envoy cannot be made to produce on demand.

Values are served the way Envoy serves them (source/extensions/common/wasm/context.cc): integers
and durations as 8 little-endian bytes, a message (the `metadata` property) serialized. Counters are named as Envoy names
the ones Wasm code defines (`wasmcustom.` + the name), and `stats()` answers like Envoy's
`/stats?format=json`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

REPO = Path(__file__).resolve().parent.parent
METRICS_EXTENSION = REPO / "envoy" / "switchyard_metrics.wasm"
OK, NOT_FOUND = 0, 1
i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
RESPONSE_HEADERS = 2
PLUGIN_CONFIGURATION = 7


def serialize_metadata(namespaces: dict[str, dict[str, str | float]]) -> bytes:
    """The request's dynamic metadata as Envoy hands the `metadata` property to Wasm: a
    serialized envoy.config.core.v3.Metadata, each namespace a Struct."""
    from envoy.config.core.v3.base_pb2 import Metadata

    metadata = Metadata()
    for namespace, fields in namespaces.items():
        metadata.filter_metadata[namespace].update(fields)
    return metadata.SerializeToString()


@dataclass
class Stream:
    """What the host knows of one request when the extension asks."""

    properties: dict[bytes, bytes] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)


class ProxyWasmHost:
    def __init__(self, module: Path = METRICS_EXTENSION, configuration: str = ""):
        if not module.is_file():
            raise FileNotFoundError(f"{module}: run `make install` to build it")
        self.engine = wasmtime.Engine()
        self.store = wasmtime.Store(self.engine)
        self.configuration = configuration.encode()
        self.counters: dict[int, list] = {}  # id → [name, value]
        self.tick_period_ms = 0
        self.logs: list[tuple[int, str]] = []
        self.stream = Stream()
        linker = wasmtime.Linker(self.engine)
        # libc's stdio (snprintf) imports WASI, which Envoy provides too; nothing is opened or printed.
        linker.define_wasi()
        self.store.set_wasi(wasmtime.WasiConfig())
        for name, params, fn in self._host_functions():
            linker.define(self.store, "env", name, wasmtime.Func(self.store, wasmtime.FuncType(params, [i32]), fn))
        self.instance = linker.instantiate(self.store, wasmtime.Module.from_file(self.engine, str(module)))
        self.exports = self.instance.exports(self.store)
        self.memory = self.exports["memory"]
        self._call("_initialize")
        self._next_context = 2
        self._call("proxy_on_context_create", 1, 0)
        self._call("proxy_on_vm_start", 1, 0)
        self.configured = bool(self._call("proxy_on_configure", 1, len(self.configuration)))

    def _host_functions(self) -> list:
        """(name, parameter types, function) of every host function the module may import."""
        return [
            ("proxy_log", [i32] * 3, self._log),
            ("proxy_get_buffer_bytes", [i32] * 5, self._get_buffer_bytes),
            ("proxy_get_property", [i32] * 4, self._get_property),
            ("proxy_get_header_map_value", [i32] * 5, self._get_header),
            ("proxy_remove_header_map_value", [i32] * 3, self._remove_header),
            ("proxy_define_metric", [i32] * 4, self._define_metric),
            ("proxy_increment_metric", [i32, i64], self._increment_metric),
            ("proxy_set_tick_period_milliseconds", [i32], self._set_tick_period),
        ]

    # ------------------------------------------------------------------ driving a request

    def request(self, properties: dict[bytes, bytes], response_headers: dict[str, str] | None) -> dict[str, str] | None:
        """One request: response headers (None: none ever came), then the log. Returns the
        response headers as the client would get them."""
        context = self._next_context
        self._next_context += 1
        self.stream = Stream(dict(properties), dict(response_headers or {}))
        self._call("proxy_on_context_create", context, 1)
        if response_headers is not None:
            self._call("proxy_on_response_headers", context, len(response_headers), 0)
        seen = dict(self.stream.response_headers) if response_headers is not None else None
        self._call("proxy_on_log", context)
        self._call("proxy_on_delete", context)
        return seen

    def tick(self) -> None:
        """The root context's timer fires (Envoy calls it every tick period)."""
        assert self.tick_period_ms > 0, "the module never asked for a timer"
        self._call("proxy_on_tick", 1)

    def stats(self) -> dict:
        """What Envoy's `/stats?format=json&usedonly` would list of these counters, once the
        module's timer has fired."""
        self.tick()
        return {"stats": [{"name": f"wasmcustom.{name}", "value": value}
                          for name, value in self.counters.values() if value]}

    # ------------------------------------------------------------------ memory

    def _call(self, name: str, *args):
        return self.exports[name](self.store, *args)

    def _read(self, pointer: int, size: int) -> bytes:
        return bytes(self.memory.read(self.store, pointer, pointer + size))

    def _write_u32(self, pointer: int, value: int) -> None:
        self.memory.write(self.store, struct.pack("<I", value), pointer)

    def _give(self, data: bytes, data_out: int, size_out: int) -> int:
        """Hand `data` to the module in memory it allocated, as the host does for returned values."""
        pointer = self._call("proxy_on_memory_allocate", max(len(data), 1))
        self.memory.write(self.store, data, pointer)
        self._write_u32(data_out, pointer)
        self._write_u32(size_out, len(data))
        return OK

    # ------------------------------------------------------------------ host functions

    def _log(self, level, pointer, size):
        self.logs.append((level, self._read(pointer, size).decode("utf-8", "replace")))
        return OK

    def _get_buffer_bytes(self, buffer, start, max_size, data_out, size_out):
        if buffer != PLUGIN_CONFIGURATION:
            return NOT_FOUND
        return self._give(self.configuration[start:start + max_size], data_out, size_out)

    def _get_property(self, path_pointer, path_size, data_out, size_out):
        value = self.stream.properties.get(self._read(path_pointer, path_size))
        if value is None:
            return NOT_FOUND
        return self._give(value, data_out, size_out)

    def _get_header(self, map_type, key_pointer, key_size, data_out, size_out):
        value = self.stream.response_headers.get(self._read(key_pointer, key_size).decode()) \
            if map_type == RESPONSE_HEADERS else None
        if value is None:
            return NOT_FOUND
        return self._give(value.encode(), data_out, size_out)

    def _remove_header(self, map_type, key_pointer, key_size):
        if map_type == RESPONSE_HEADERS:
            self.stream.response_headers.pop(self._read(key_pointer, key_size).decode(), None)
        return OK

    def _define_metric(self, metric_type, name_pointer, name_size, id_out):
        assert metric_type == 0, "the extension defines counters only"
        name = self._read(name_pointer, name_size).decode()
        metric_id = next((i for i, (n, _) in self.counters.items() if n == name), None)
        if metric_id is None:
            metric_id = len(self.counters) + 1
            self.counters[metric_id] = [name, 0]
        self._write_u32(id_out, metric_id)
        return OK

    def _set_tick_period(self, period):
        self.tick_period_ms = period
        return OK

    def _increment_metric(self, metric_id, delta):
        assert delta > 0, "Envoy refuses counter increments that are not positive"
        self.counters[metric_id][1] += delta
        return OK

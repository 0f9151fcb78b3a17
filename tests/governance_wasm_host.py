"""The Proxy-Wasm host of tests/proxy_wasm_host.py with what the governance extension
(envoy/switchyard_governance.c) also imports: shared data with CAS (as Envoy's, shared by every VM
of one vm_id), the clock, gRPC calls (recorded; the test answers them), local replies, header maps
and stream continuation. One VM (an Envoy worker thread); hosts given one `shared` dict are the
threads of one Envoy. Each `Request` is one HTTP stream driven step by step."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from urllib.parse import unquote

from filter.metrics import extension_config
from tests.proxy_wasm_host import OK, REPO, ProxyWasmHost, i32, serialize_metadata

GOVERNANCE_EXTENSION = REPO / "envoy" / "switchyard_governance.wasm"
# What Envoy runs by default: the governance and the metrics in one module (envoy/switchyard_extension.c).
COMBINED_EXTENSION = REPO / "envoy" / "switchyard_extension.wasm"
NOT_FOUND, CAS_MISMATCH, EMPTY = 1, 8, 7
REQUEST_HEADERS, RESPONSE_HEADERS = 0, 2
GRPC_RECEIVE = 5
GOVERNANCE = b"xds\0virtual_host_metadata\0filter_metadata\0switchyard.governance\0"


def parse_pairs(data: bytes) -> list[tuple[str, str]]:
    (count,) = struct.unpack_from("<I", data)
    sizes = [struct.unpack_from("<II", data, 4 + 8 * i) for i in range(count)]
    at, pairs = 4 + 8 * count, []
    for key_size, value_size in sizes:
        key = data[at:at + key_size].decode()
        at += key_size + 1
        value = data[at:at + value_size].decode()
        at += value_size + 1
        pairs.append((key, value))
    return pairs


@dataclass
class Call:
    token: int
    context: int
    cluster: str
    method: str
    message: str
    timeout_ms: int

    def lines(self, head: str) -> list[list[str]]:
        return [[unquote(w) for w in line.split(" ")[1:]] for line in self.message.splitlines()
                if line.startswith(head + " ")]


@dataclass
class LocalReply:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class Request:
    context: int
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    properties: dict[bytes, bytes] = field(default_factory=dict)
    metadata: dict[str, dict] = field(default_factory=dict)  # namespace → fields
    reply: LocalReply | None = None
    continued: bool = False


class GovernanceHost(ProxyWasmHost):
    module = GOVERNANCE_EXTENSION  # or COMBINED_EXTENSION: its configuration then has the metrics' lines too

    def __init__(self, settings: str, plugin: str = "cluster workers\nsync_ms 200\ntimeout_ms 500\n",
                 now_ms: int = 1_796_000_000_000, shared: dict[bytes, tuple[bytes, int]] | None = None):
        self.shared: dict[bytes, tuple[bytes, int]] = {} if shared is None else shared
        self.now_ns = now_ms * 1_000_000
        self.calls: list[Call] = []
        self.grpc_answer = b""
        self.current: Request | None = None
        self.requests: dict[int, Request] = {}
        self.settings = settings.encode()
        if self.module != GOVERNANCE_EXTENSION:
            plugin = extension_config() + plugin
        super().__init__(self.module, plugin)

    def _host_functions(self) -> list:
        return super()._host_functions() + [
            ("proxy_get_current_time_nanoseconds", [i32], self._time),
            ("proxy_get_shared_data", [i32] * 5, self._get_shared),
            ("proxy_set_shared_data", [i32] * 5, self._set_shared),
            ("proxy_add_header_map_value", [i32] * 5, self._add_header),
            ("proxy_send_local_response", [i32] * 8, self._local_response),
            ("proxy_continue_stream", [i32], self._continue),
            ("proxy_set_effective_context", [i32], self._effective_context),
            ("proxy_grpc_call", [i32] * 12, self._grpc_call),
        ]

    # ------------------------------------------------------------------ driving

    def start(self, metadata: dict[str, str]) -> Request:
        """A request whose decision is `metadata` (the `switchyard` namespace): its headers phase."""
        context = self._next_context
        self._next_context += 1
        request = Request(context, properties={
            GOVERNANCE + b"version": b"v1", GOVERNANCE + b"config": self.settings,
            b"metadata": serialize_metadata({"switchyard": metadata}),
        }, metadata={"switchyard": dict(metadata)})
        self.requests[context] = request
        self.current = request
        self._call("proxy_on_context_create", context, 1)
        if self._call("proxy_on_request_headers", context, 0, 0) == 0:
            request.continued = True
        return request

    def answer(self, call: Call, text: str | None) -> None:
        """The worker's answer to `call` (None: the call failed)."""
        self.current = self.requests.get(call.context)
        if text is None:
            self._call("proxy_on_grpc_close", 1, call.token, 14)
            return
        self.grpc_answer = text.encode()
        self._call("proxy_on_grpc_receive", 1, call.token, len(self.grpc_answer))

    def finish(self, request: Request, usage: dict[str, float] | None = None,
               served: str | None = None) -> dict[str, str]:
        """Response headers (unless refused), then the log with `usage` read from the answer."""
        self.current = request
        if request.reply is None:
            if served:
                request.response_headers["x-switchyard-model"] = served
            self._call("proxy_on_response_headers", request.context, 0, 0)
        if usage:
            request.metadata["switchyard.usage"] = {k: float(v) for k, v in usage.items()}
            request.properties[b"metadata"] = serialize_metadata(request.metadata)
        self._call("proxy_on_log", request.context)
        self._call("proxy_on_delete", request.context)
        return dict(request.response_headers)

    def tick(self) -> None:
        self.current = None
        self._call("proxy_on_tick", 1)

    def advance(self, ms: float) -> None:
        self.now_ns += int(ms * 1_000_000)

    def stats_value(self, name: str, **labels: str) -> int:
        """The Envoy counter the module counts as `name` with these labels (as /metrics reads it)."""
        from filter.envoy_stats import parse_name

        return sum(value for counter, value in self.counters.values() if parse_name(counter) == (name, labels))

    # ------------------------------------------------------------------ host functions

    def _get_buffer_bytes(self, buffer, start, max_size, data_out, size_out):
        if buffer == GRPC_RECEIVE:
            return self._give(self.grpc_answer[start:start + max_size], data_out, size_out)
        return super()._get_buffer_bytes(buffer, start, max_size, data_out, size_out)

    def _get_property(self, path_pointer, path_size, data_out, size_out):
        path = self._read(path_pointer, path_size)
        value = self.current.properties.get(path) if self.current is not None else None
        if value is None:
            return NOT_FOUND
        return self._give(value, data_out, size_out)

    def _headers(self, map_type) -> dict[str, str] | None:
        if self.current is None:
            return None
        return {REQUEST_HEADERS: self.current.request_headers, RESPONSE_HEADERS: self.current.response_headers}.get(map_type)

    def _get_header(self, map_type, key_pointer, key_size, data_out, size_out):
        headers = self._headers(map_type)
        value = headers.get(self._read(key_pointer, key_size).decode()) if headers is not None else None
        if value is None:
            return NOT_FOUND
        return self._give(value.encode(), data_out, size_out)

    def _remove_header(self, map_type, key_pointer, key_size):
        headers = self._headers(map_type)
        if headers is not None:
            headers.pop(self._read(key_pointer, key_size).decode(), None)
        return OK

    def _add_header(self, map_type, key_pointer, key_size, value_pointer, value_size):
        headers = self._headers(map_type)
        if headers is not None:
            headers[self._read(key_pointer, key_size).decode()] = self._read(value_pointer, value_size).decode()
        return OK

    def _time(self, out):
        self.memory.write(self.store, struct.pack("<Q", self.now_ns), out)
        return OK

    def _get_shared(self, key_pointer, key_size, data_out, size_out, cas_out):
        found = self.shared.get(self._read(key_pointer, key_size))
        if found is None:
            return NOT_FOUND
        self._write_u32(cas_out, found[1])
        return self._give(found[0], data_out, size_out)

    def _set_shared(self, key_pointer, key_size, value_pointer, value_size, cas):
        key = self._read(key_pointer, key_size)
        current = self.shared.get(key)
        if cas and current is not None and current[1] != cas:
            return CAS_MISMATCH
        self.shared[key] = (self._read(value_pointer, value_size), (current[1] if current else 0) + 1)
        return OK

    def _local_response(self, status, _details, _details_size, body, body_size, headers, headers_size, _grpc):
        pairs = parse_pairs(self._read(headers, headers_size)) if headers_size else []
        assert self.current is not None
        self.current.reply = LocalReply(status, self._read(body, body_size), dict(pairs))
        return OK

    def _continue(self, _stream_type):
        assert self.current is not None
        self.current.continued = True
        return OK

    def _effective_context(self, context):
        self.current = self.requests.get(context, self.current)
        return OK

    def _grpc_call(self, service, service_size, _name, _name_size, method, method_size, _meta, _meta_size,
                   message, message_size, timeout_ms, token_out):
        token = len(self.calls) + 1
        self.calls.append(Call(token, self.current.context if self.current else 1, self._read(service, service_size).decode(),
                               self._read(method, method_size).decode(), self._read(message, message_size).decode(),
                               timeout_ms))
        self._write_u32(token_out, token)
        return OK

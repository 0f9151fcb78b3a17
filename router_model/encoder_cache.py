"""Where the encoder's ONNX graph lives: built once from the packaged weights, then reused.

The graph (``encoder_graph.py``) is derived data: a pure function of the packaged weight files,
the builder's code and the build settings, whose hash is in its file name. It is built on
first use, in a child process (building it takes ~0.5 s and leaves ~100 MB of freed-but-kept
memory behind, which a long-lived worker should not carry), written atomically, and loaded by
every worker after that; workers that start together wait on one lock and build it once.

Cache folder, first that is set: ``$SWITCHYARD_CACHE_DIR``, ``$XDG_CACHE_HOME/switchyard``,
``~/.cache/switchyard``. Where none can be written (a read-only container), the graph is built
into a private temporary folder for this process; the container image builds it in advance
(``python -m router_model.encoder_cache``, see deploy/container/Dockerfile).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Iterator

from router_model import encoder_graph as encoder_graph_module

BUILD_TIMEOUT_S = 300.0
UNUSED_FOR_S = 7 * 24 * 3600


def cache_dir() -> Path:
    if os.environ.get("SWITCHYARD_CACHE_DIR"):
        return Path(os.environ["SWITCHYARD_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "switchyard"
    return Path.home() / ".cache" / "switchyard"


def graph_name(model_dir: Path, precision: str, max_tokens: int) -> str:
    """File name that changes whenever anything the graph is built from changes."""
    digest = hashlib.sha256(f"{precision}|{max_tokens}|onnx {version('onnx')}|".encode())
    digest.update(Path(encoder_graph_module.__file__).read_bytes())  # the builder's own code
    for name in ("config.json", "model.safetensors"):
        with open(model_dir / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return f"all-MiniLM-L6-v2.{precision}.{max_tokens}.{digest.hexdigest()[:20]}.onnx"


def build(model_dir: Path, out: Path, precision: str, max_tokens: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "router_model.encoder_graph", "--out", str(out), "--model-dir", str(model_dir),
         "--precision", precision, "--max-tokens", str(max_tokens)],
        check=True, timeout=BUILD_TIMEOUT_S, stdin=subprocess.DEVNULL,
    )


def _prune(folder: Path, keep: str) -> None:
    """Graphs no start has used for a week (earlier builder versions or weights; installs that
    share the folder keep theirs fresh by using them)."""
    stale = time.time() - UNUSED_FOR_S
    for old in folder.glob("all-MiniLM-L6-v2.*.onnx"):
        try:
            if old.name != keep and old.stat().st_mtime < stale:
                old.unlink()
                Path(f"{old}.lock").unlink(missing_ok=True)
        except OSError:
            continue


@contextmanager
def encoder_graph(model_dir: Path, precision: str, max_tokens: int) -> Iterator[Path]:
    """The graph's path, built first if needed. A private build is removed after use (the
    runtime has read it into memory by then)."""
    name = graph_name(model_dir, precision, max_tokens)
    folder = cache_dir()
    path = folder / name
    if path.is_file():
        try:
            os.utime(path)  # in use: not stale
        except OSError:
            pass
        yield path
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it right now
            if not path.is_file():
                build(model_dir, path, precision, max_tokens)
                _prune(folder, keep=name)
    except OSError:  # read-only or unwritable cache folder
        with tempfile.TemporaryDirectory(prefix="switchyard-encoder-") as private:
            path = Path(private) / name
            build(model_dir, path, precision, max_tokens)
            yield path
        return
    yield path


def main() -> int:
    """Build the engine's graph into the cache now (container images, CI warm-up)."""
    from router_model.embedded_encoder import packaged_model_dir
    from router_model.encoder_onnx import MAX_TOKENS, PRECISION

    with encoder_graph(packaged_model_dir(), PRECISION, MAX_TOKENS) as path:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Disk cache of pooled activations: one folder per key, per-batch chunks, written atomically.

A run stores each batch as ``chunk-<start>-<stop>.npz`` as soon as it is computed, so an
interrupted run resumes from the batches already there. A finished run is consolidated into one
``result.npz`` (the chunks are then removed); a later call with the same key reads it back
without running the model.

The key is a hash of everything the result depends on (see :func:`cache_key`); the location
is ``$GCE_CACHE_DIR``, else ``~/.cache/gradcam-explorer/activations``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Bumped whenever the stored format or the pooling maths change: old entries are then ignored.
FORMAT_VERSION = 1

_CHUNK = re.compile(r"^chunk-(\d+)-(\d+)\.npz$")
_RESULT = "result.npz"


def default_cache_dir() -> Path:
    """``$GCE_CACHE_DIR`` or ``~/.cache/gradcam-explorer/activations``."""
    env = os.environ.get("GCE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "gradcam-explorer" / "activations"


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hash of JSON-able ``parts`` (24 hex digits)."""
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``path``; ``None`` when it is missing or unreadable (then recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError):
        return None


class ActivationStore:
    """The cache entry of one key: chunks while a run is in progress, then one result.

    Args:
        root: the cache folder (``None``: :func:`default_cache_dir`).
        key: from :func:`cache_key`.
    """

    def __init__(self, root: str | os.PathLike | None, key: str):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.key = key
        self.dir = self.root / key

    def __repr__(self) -> str:
        return f"ActivationStore({self.dir})"

    @property
    def result_path(self) -> Path:
        return self.dir / _RESULT

    def load_result(self) -> dict[str, np.ndarray] | None:
        """The consolidated arrays of a finished run, or ``None``."""
        return load_npz(self.result_path) if self.result_path.is_file() else None

    def chunk_ranges(self) -> dict[int, int]:
        """``{start: stop}`` of the batches stored so far."""
        if not self.dir.is_dir():
            return {}
        ranges = {}
        for path in self.dir.iterdir():
            match = _CHUNK.match(path.name)
            if match:
                ranges[int(match.group(1))] = int(match.group(2))
        return ranges

    def _chunk_path(self, start: int, stop: int) -> Path:
        return self.dir / f"chunk-{start:08d}-{stop:08d}.npz"

    def load_chunk(self, start: int, stop: int) -> dict[str, np.ndarray] | None:
        return load_npz(self._chunk_path(start, stop))

    def save_chunk(self, start: int, stop: int, arrays: Mapping[str, np.ndarray]) -> None:
        save_npz_atomic(self._chunk_path(start, stop), arrays)

    def save_result(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Store the finished run, then drop its chunks."""
        save_npz_atomic(self.result_path, arrays)
        meta_tmp = self.dir / f".meta.{uuid.uuid4().hex[:8]}.tmp"
        meta_tmp.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(meta_tmp, self.dir / "meta.json")
        for path in self.dir.iterdir():
            if _CHUNK.match(path.name):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def clear(self) -> None:
        """Remove this entry from disk."""
        shutil.rmtree(self.dir, ignore_errors=True)

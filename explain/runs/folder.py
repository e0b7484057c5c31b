"""A run folder: the results of dataset-level work as Parquet files, one per block of images.

::

    run-folder/
      run.json                                  what the run is (kind, key, model, blocks, ...)
      blocks/part-000000000-000000064.parquet   rows of items 0..63 of the run's item list
      blocks/part-000000064-000000128.parquet   ...

Every block file is written whole (to a temporary name, then renamed), by whichever process
computed it, so a file that exists is complete: an interrupted run resumes by computing only
the blocks whose file is missing. ``run.json`` is written by the driver alone. Each block file
carries, in its Parquet key-value metadata under ``gce``, what its rows do not hold (images
that could not be read, notes). Feature-like values are fixed-size list columns (one
``(D,)`` float32 vector per row), so ``pyarrow`` and ``pandas`` read any run folder as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunError

#: Bumped when the layout of run folders changes.
FORMAT_VERSION = 1
RUN_FILE = "run.json"
BLOCKS = "blocks"
#: Parquet key-value metadata key of a block file's extra information (JSON).
META_KEY = b"gce"

_PART = re.compile(r"^part-(\d+)-(\d+)\.parquet$")


@dataclass(frozen=True)
class Block:
    """Items ``start..stop`` (stop exclusive) of a run's item list; ``index`` counts blocks."""

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def file_name(self) -> str:
        return f"part-{self.start:09d}-{self.stop:09d}.parquet"


def plan_blocks(n: int, block_size: int) -> list[Block]:
    """``n`` items cut into blocks of ``block_size`` (the last one shorter)."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}.")
    return [
        Block(i, start, min(start + block_size, n))
        for i, start in enumerate(range(0, n, block_size))
    ]


def run_key(parts: Mapping[str, Any]) -> str:
    """A stable hash of JSON-able ``parts`` (24 hex digits): what a run's results depend on."""
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # the submodule is used as pyarrow.parquet
    except ImportError as exc:  # pragma: no cover - pyarrow comes with streamlit and ray
        raise RunError(
            "Run folders need pyarrow.", hint="pip install pyarrow (or pip install .[ray])."
        ) from exc
    return pyarrow


class RunFolder:
    """A run folder on disk (see the module docstring).

    Args:
        path: the folder; :meth:`create` makes a new run there or opens the same run again,
            :func:`open_run` opens an existing one.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()
        self._manifest: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- the manifest ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def blocks_dir(self) -> Path:
        return self.path / BLOCKS

    @property
    def manifest(self) -> dict[str, Any]:
        """The contents of ``run.json`` (read once, then kept)."""
        if self._manifest is None:
            self._manifest = read_manifest(self.path)
        return self._manifest

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.manifest.get("params", {}))

    @property
    def blocks(self) -> list[Block]:
        return plan_blocks(int(self.manifest["items"]), int(self.manifest["block_size"]))

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        kind: str,
        key: str,
        items: int,
        block_size: int,
        params: Mapping[str, Any],
    ) -> RunFolder:
        """Start a run in ``path``, or open it again when it holds the same run (same ``key``):
        then its block size is kept and the blocks already written are reused.

        Raises:
            RunError: ``path`` is a file, or holds a run of another kind or with another key.
        """
        folder = cls(path)
        if folder.path.exists() and not folder.path.is_dir():
            raise RunError(f"{folder.path} is a file, not a folder.")
        if folder.manifest_path.is_file():
            old = read_manifest(folder.path)
            if old.get("kind") != kind or old.get("key") != key:
                raise RunError(
                    f"{folder.path} holds another run ({old.get('kind')}, "
                    f"{old.get('params', {}).get('model', '?')}; key {old.get('key')}), "
                    "not this one.",
                    hint="choose a new output folder, or delete that one to start again.",
                )
            folder._manifest = old
            folder._clean_temporary()
            return folder
        try:
            folder.blocks_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"Cannot create the run folder {folder.path}: {exc}") from exc
        manifest = {
            "format": FORMAT_VERSION,
            "kind": kind,
            "key": key,
            "items": int(items),
            "block_size": int(block_size),
            "status": "running",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "params": dict(params),
        }
        _write_json_atomic(folder.manifest_path, manifest)
        folder._manifest = manifest
        return folder

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` (driver only)."""
        manifest = {**self.manifest, **fields}
        _write_json_atomic(self.manifest_path, manifest)
        self._manifest = manifest

    @property
    def complete(self) -> bool:
        """Whether every block has been written."""
        return not self.missing()

    # -- blocks ---------------------------------------------------------------------------------
    def block_path(self, block: Block) -> Path:
        return self.blocks_dir / block.file_name

    def written(self) -> list[Block]:
        """The blocks whose file exists, in order."""
        if not self.blocks_dir.is_dir():
            return []
        names = {p.name for p in self.blocks_dir.iterdir()}
        return [b for b in self.blocks if b.file_name in names]

    def missing(self) -> list[Block]:
        """The blocks still to compute, in order."""
        done = {b.index for b in self.written()}
        return [b for b in self.blocks if b.index not in done]

    def _clean_temporary(self) -> None:
        """Remove half-written files an interrupted run left behind."""
        if self.blocks_dir.is_dir():
            for path in self.blocks_dir.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def write_block(self, block: Block, table: Any, meta: Mapping[str, Any] | None = None) -> Path:
        """Write ``table`` (a ``pyarrow.Table``) as the file of ``block``, whole or not at all.

        ``meta`` (JSON-able) goes into the file's key-value metadata (see :meth:`block_meta`).
        """
        pa = _pyarrow()
        info = json.dumps({"block": block.index, **(meta or {})}, default=str).encode()
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[META_KEY] = info
        table = table.replace_schema_metadata(schema_meta)
        path = self.block_path(block)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            pa.parquet.write_table(table, tmp)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return path

    # -- reading --------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """The block files written so far, in item order."""
        return [self.block_path(b) for b in self.written()]

    def schema(self) -> Any:
        """The Arrow schema of the block files (of the first one)."""
        pa = _pyarrow()
        files = self.files()
        if not files:
            raise RunError(f"{self.path} holds no block yet.")
        for path in files:  # the first block with rows (an empty one may lack columns)
            if pa.parquet.ParquetFile(path).metadata.num_rows:
                return pa.parquet.read_schema(path)
        return pa.parquet.read_schema(files[0])

    def num_rows(self) -> int:
        """Rows written so far (from the files' footers; no data is read)."""
        pa = _pyarrow()
        return sum(pa.parquet.ParquetFile(f).metadata.num_rows for f in self.files())

    def read(self, columns: Sequence[str] | None = None) -> Any:
        """The rows of every written block, in item order, as one ``pyarrow.Table``.

        Args:
            columns: read only these columns (Parquet reads each column on its own, so a
                large run can be read one feature column at a time).
        """
        pa = _pyarrow()
        files = self.files()
        if not files:
            raise RunError(
                f"{self.path} holds no block yet.", hint="run the command that writes it first."
            )
        # A block whose images all failed has no rows and may lack the value columns.
        full = [f for f in files if pa.parquet.ParquetFile(f).metadata.num_rows]
        if not full:
            return pa.parquet.read_table(files[0]).select([])
        names = list(columns) if columns else None
        return pa.concat_tables([pa.parquet.read_table(f, columns=names) for f in full])

    def to_pandas(self, columns: Sequence[str] | None = None) -> Any:
        """:meth:`read` as a ``pandas.DataFrame`` (list columns hold numpy arrays)."""
        return self.read(columns).to_pandas()

    def block_meta(self) -> list[dict[str, Any]]:
        """The metadata each written block carries (``skipped`` images, ``notes``, ...)."""
        pa = _pyarrow()
        out = []
        for path in self.files():
            meta = pa.parquet.read_schema(path).metadata or {}
            out.append(json.loads(meta.get(META_KEY, b"{}")))
        return out

    def skipped(self) -> list[tuple[str, str]]:
        """``(name, reason)`` of every item a block could not use."""
        return [tuple(entry) for meta in self.block_meta() for entry in meta.get("skipped", [])]

    def notes(self) -> list[str]:
        """The notes of every block, each once, in order of first appearance."""
        return list(dict.fromkeys(n for meta in self.block_meta() for n in meta.get("notes", [])))


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """``run.json`` of a run folder.

    Raises:
        RunError: no run folder there, or its ``run.json`` cannot be read.
    """
    folder = Path(path).expanduser()
    file = folder / RUN_FILE
    if not file.is_file():
        raise RunError(
            f"{folder} is not a run folder (it has no {RUN_FILE}).",
            hint="give the --out folder of a run (python -m embeddings/explain ... --engine).",
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"Cannot read {file}: {exc}") from exc
    if not isinstance(manifest, dict) or "kind" not in manifest or "items" not in manifest:
        raise RunError(f"{file} does not describe a run.")
    if int(manifest.get("format", 0)) > FORMAT_VERSION:
        raise RunError(
            f"{folder} was written by a newer version (format {manifest.get('format')}).",
            hint="update gradcam-explorer to read it.",
        )
    return manifest


def open_run(path: str | os.PathLike, kind: str | None = None) -> RunFolder:
    """An existing run folder; with ``kind``, it must be a run of that kind.

    Raises:
        RunError: not a run folder, or a run of another kind.
    """
    folder = RunFolder(path)
    manifest = folder.manifest
    if kind is not None and manifest["kind"] != kind:
        raise RunError(
            f"{folder.path} holds a run of {manifest['kind']}, not of {kind}.",
            hint=f"open a folder written by a {kind} run.",
        )
    return folder


# -- Arrow columns ------------------------------------------------------------------------------
def vector_column(values: np.ndarray) -> Any:
    """``(N, D)`` float array -> a ``fixed_size_list<float32>[D]`` Arrow array of N rows."""
    pa = _pyarrow()
    arr = np.ascontiguousarray(values, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected an (N, D) array, got shape {arr.shape}.")
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), int(arr.shape[1]))


def column_matrix(column: Any) -> np.ndarray:
    """A ``fixed_size_list`` column (array or chunked) -> ``(N, D)`` float32 (no copy when it
    can)."""
    pa = _pyarrow()
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    width = column.type.list_size
    if column.null_count:
        raise RunError("A feature column holds empty rows.")
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(len(column), width).astype(np.float32, copy=False)


def table_of(columns: Mapping[str, Any]) -> Any:
    """A ``pyarrow.Table`` from name -> Arrow array or numpy / list values."""
    pa = _pyarrow()
    return pa.table({name: _as_arrow(pa, v) for name, v in columns.items()})


def _as_arrow(pa: Any, values: Any) -> Any:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if isinstance(values, np.ndarray):
        return vector_column(values) if values.ndim == 2 else pa.array(values)
    return pa.array(list(values))

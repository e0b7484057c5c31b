"""Images inside a zip archive (as a browser upload delivers it), read without extracting.

Entries with absolute paths or ``..`` are refused (path traversal), the number of entries and
their total uncompressed size are capped (zip bombs), encrypted entries and symbolic links are
skipped; the class layout is that of folders (:mod:`explain.datasets.layout`).
"""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import DatasetError, ImageLoadError
from ..images import ImageSource
from .base import ImageDataset
from .layout import describe_layout, is_hidden, layout_items

#: Largest total uncompressed size of a zip archive's entries (bytes).
MAX_ZIP_BYTES = 2 * 1024**3
#: Largest number of entries in a zip archive.
MAX_ZIP_ENTRIES = 200_000


class ZipDataset(ImageDataset):
    """Images inside a zip archive, read one at a time.

    Args:
        source: a path to a ``.zip`` file, its bytes, or a binary file object (e.g. Streamlit's
            ``UploadedFile``).
        name: display name of the archive (default: the file's name).
        max_bytes: refuse archives whose entries add up to more than this uncompressed.

    Raises:
        DatasetError: not a zip archive, unsafe entry names (absolute or ``..``), too large.
    """

    kind = "zip"

    def __init__(
        self,
        source: str | os.PathLike | bytes | BinaryIO,
        name: str | None = None,
        max_bytes: int = MAX_ZIP_BYTES,
    ):
        if isinstance(source, str | os.PathLike):
            path = Path(source).expanduser()
            if not path.is_file():
                raise DatasetError(f"Zip archive not found: {path}")
            self._path: Path | None = path
            self._data: bytes | None = None
            name = name or path.name
        else:
            data = source if isinstance(source, bytes) else source.read()
            self._path, self._data = None, bytes(data)
            name = name or Path(str(getattr(source, "name", "") or "upload.zip")).name
        self.archive = name
        self._lock = threading.Lock()
        self._zip: zipfile.ZipFile | None = None
        files, skipped = [], []
        for info, rel in self._infos(max_bytes):
            if info.flag_bits & 0x1:
                skipped.append((rel, "encrypted in the archive"))
            elif stat.S_ISLNK(info.external_attr >> 16):
                skipped.append((rel, "a symbolic link, not a file"))
            else:
                files.append((rel, info.filename, (info.file_size, info.CRC)))
        items, classes, more = layout_items(files, lambda n, _ref: f"{self.archive}/{n}")
        super().__init__(
            items, classes, skipped + more, f"archive {name} ({describe_layout(classes)})"
        )

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(
                    self._path if self._path is not None else io.BytesIO(self._data or b"")
                )
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(
                    f"{self.archive} is not a readable zip archive: {exc}",
                    hint="upload a .zip file made by your system's 'compress' command.",
                ) from exc
        return self._zip

    def _infos(self, max_bytes: int) -> list[tuple[zipfile.ZipInfo, str]]:
        """Safe entries as ``(info, relative POSIX path)``; directories and junk dropped."""
        infos = self._open().infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise DatasetError(
                f"{self.archive} has {len(infos):,} entries; the limit is {MAX_ZIP_ENTRIES:,}.",
                hint="split it into smaller archives.",
            )
        total = sum(info.file_size for info in infos)
        if total > max_bytes:
            raise DatasetError(
                f"{self.archive} would unpack to {total / 1e6:,.0f} MB; the limit is "
                f"{max_bytes / 1e6:,.0f} MB.",
                hint="upload fewer or smaller images (or a folder path instead of an archive).",
            )
        out = []
        for info in infos:
            raw = info.filename
            rel = raw.replace("\\", "/")
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":") or ".." in parts:
                raise DatasetError(
                    f"{self.archive} contains an unsafe entry {raw!r} (an absolute path or '..').",
                    hint="re-create the archive from the dataset folder itself.",
                )
            if info.is_dir() or not parts or is_hidden(parts):
                continue
            out.append((info, "/".join(parts)))
        return out

    def relative_path(self, index: int) -> str:
        return "/".join(p for p in str(self.items[index].ref).replace("\\", "/").split("/") if p)

    def read(self, ref: Any) -> ImageSource:
        """The bytes of archive member ``ref``, as a named in-memory file."""
        try:
            with self._lock:
                data = self._open().read(ref)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError) as exc:
            raise ImageLoadError(f"{ref} cannot be read from {self.archive}: {exc}") from exc
        buffer = io.BytesIO(data)
        buffer.name = ref  # load_image names the file in its messages
        return buffer

    def signature(self) -> dict[str, Any]:
        return {**super().signature(), "archive": self.archive}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_zip"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

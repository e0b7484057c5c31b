"""Where the dashboard's models and images come from: the default model, the model choices, the
registry of sample image sets, uploads (with messages that name the user's file, kept for a
while and then cleaned up), and the folders datasets may be read from.

A new session starts on a real ImageNet model (:data:`DEFAULT_MODEL_SPECS`: the first built-in
that is installed) explaining the photos shipped with the project, or on the model the server
was started with (``gradcam-explorer app --model SPEC [--weights FILE|random]``, which sets
:data:`MODEL_ENV` and :data:`WEIGHTS_ENV`); each model's sample images are
:func:`sample_set_for`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image as PILImage

from explain import DEFAULT, ExplainError, ModelHandle, load_image, load_model
from explain.builtin import SHAPES_MODELS, available_models
from explain.cli.app import MODEL_ENV, WEIGHTS_ENV  # set by ``app --model ... --weights ...``
from explain.models import find_source

ROOT = Path(__file__).resolve().parents[1]
#: The models a new session may start on, in order of preference: the first one installed
#: (the real ImageNet model needs its weights package; the shapes model ships with the project).
DEFAULT_MODEL_SPECS = ("builtin:efficientnet-lite0", "builtin:shapes")
#: Model sources a link (query parameter) may name; never a Python import path or a file.
URL_SOURCES = ("builtin", "torchvision", "timm", "hf", "clip", "open_clip")
#: Sources whose names may be hub ids (``owner/name``) in a link.
HUB_SOURCES = ("hf", "clip")
#: The prompts a CLIP model is loaded with (each session then asks its own, see
#: :func:`dashboard.state.prompts`): the prompt box's starting text.
DEFAULT_PROMPTS = ("a photo of a cat", "a photo of a dog", "a photo of a car")
UPLOADS = Path(tempfile.gettempdir()) / "gradcam-explorer-uploads"
#: Uploads unused for this long are deleted (seconds; ``GCE_UPLOAD_TTL_S`` overrides).
UPLOAD_TTL_S = 7 * 24 * 3600
#: The uploads folder is kept below this size, oldest first out (``GCE_UPLOAD_MAX_MB``).
UPLOAD_MAX_BYTES = 1024 * 2**20
THUMB = 96


def builtin_specs() -> tuple[str, ...]:
    """Every built-in model that loads on this installation, as offered in the picker."""
    return tuple(f"builtin:{name}" for name in available_models())


def builtin_default_spec() -> str:
    """The first of :data:`DEFAULT_MODEL_SPECS` that is installed."""
    installed = builtin_specs()
    return next(s for s in DEFAULT_MODEL_SPECS if s in installed or s == DEFAULT_MODEL_SPECS[-1])


def default_model_spec() -> str:
    """The spec of the model a new session starts on: the server's :data:`MODEL_ENV`, else
    :func:`builtin_default_spec`."""
    return os.environ.get(MODEL_ENV, "").strip() or builtin_default_spec()


# -- dataset folders ------------------------------------------------------------------------------
def data_roots() -> list[Path]:
    """Folders the dashboard may read datasets from: ``GCE_DATA_ROOTS`` (``os.pathsep``-
    separated), else the project's ``data`` folder and the user's home."""
    configured = os.environ.get("GCE_DATA_ROOTS")
    roots = configured.split(os.pathsep) if configured else [str(ROOT / "data"), "~"]
    return [Path(r).expanduser().resolve() for r in roots if r.strip()]


def allowed_path(path: str | Path) -> Path:
    """Resolve ``path``; raise :class:`ExplainError` unless it lies inside an allowed root."""
    resolved = Path(path).expanduser().resolve()
    roots = data_roots()
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise ExplainError(
            f"{resolved} is outside the folders this dashboard may read.",
            hint="use a folder under "
            + ", ".join(str(r) for r in roots)
            + " (set GCE_DATA_ROOTS to change the list).",
        )
    if not resolved.exists():
        raise ExplainError(f"{resolved} does not exist.")
    return resolved


# -- models ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    """What identifies a loaded model: the spec and its weights (a key for caches).

    Attributes:
        spec: as for :func:`explain.load_model`.
        weights: ``DEFAULT`` (the source's pretrained weights), ``None`` (random) or a path.
        trust_remote_code: Hugging Face only.
        labels_file: a text file of class names, one per line.
        display_weights: the user's name for an uploaded weights file (for titles).
    """

    spec: str
    weights: str | None = DEFAULT
    trust_remote_code: bool = False
    labels_file: str | None = None
    display_weights: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.spec}|{self.weights}|{self.trust_remote_code}|{self.labels_file}"

    @property
    def token(self) -> str:
        """A short identity for widget keys and caches."""
        return hashlib.sha1(self.key.encode()).hexdigest()[:10]

    @property
    def title(self) -> str:
        if self.weights not in (DEFAULT, None) and self.weights:
            return f"{self.spec} + {self.display_weights or Path(self.weights).name}"
        return self.spec + (" (random weights)" if self.weights is None else "")

    def url_params(self) -> dict[str, str]:
        """Query parameters that reload this model; empty for uploads and folders (files on
        this server that a link must not name)."""
        if self.labels_file or self.weights not in (DEFAULT, None) or self.trust_remote_code:
            return {}
        params = {"model": self.spec} | ({"weights": "random"} if self.weights is None else {})
        return params if ModelChoice.from_url(params) is not None else {}  # e.g. a folder

    @classmethod
    def from_url(cls, params: dict[str, str]) -> ModelChoice | None:
        """The choice a link names, or ``None`` when it names none (or one it may not name:
        only built-in, torchvision and Hugging Face hub models, never code or files)."""
        spec = params.get("model", "").strip()
        source, _, name = spec.partition(":")
        if source not in URL_SOURCES or not re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?", name):
            return None
        if source not in HUB_SOURCES and "/" in name:
            return None
        return cls(spec, None if params.get("weights") == "random" else DEFAULT)


def default_choice() -> ModelChoice:
    """The model a new session starts on (see :func:`default_model_spec`), with the weights
    the server was started with: a file, ``random``, or the source's pretrained ones."""
    spec = default_model_spec()
    weights = os.environ.get(WEIGHTS_ENV, "").strip() if os.environ.get(MODEL_ENV) else ""
    if weights == "random":
        return ModelChoice(spec, None)
    if weights:
        return ModelChoice(spec, weights, display_weights=Path(weights).name)
    return ModelChoice(spec)


def builtin_choice() -> ModelChoice:
    """The built-in default, for when the model a server was started with cannot load."""
    return ModelChoice(builtin_default_spec())


def takes_prompts(spec: str) -> bool:
    """Whether a spec names a model whose classes are text prompts (a CLIP source)."""
    found = find_source(spec.partition(":")[0])
    return found is not None and found.takes_prompts


@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def get_model(choice: ModelChoice) -> ModelHandle:
    """One model object per choice for every session (calls on it are serialised by its lock).
    A CLIP model is loaded once with :data:`DEFAULT_PROMPTS`; sessions ask their own prompts
    with ``handle.with_prompts`` (nothing reloaded)."""
    if takes_prompts(choice.spec):
        handle = load_model(choice.spec, weights=choice.weights, prompts=list(DEFAULT_PROMPTS))
        handle.layers  # noqa: B018 - the dry run happens once, here
        return handle
    labels = None
    if choice.labels_file:
        labels = [
            line.strip()
            for line in Path(choice.labels_file).read_text(errors="replace").splitlines()
            if line.strip()
        ]
    handle = load_model(
        choice.spec,
        weights=choice.weights,
        labels=labels,
        trust_remote_code=choice.trust_remote_code,
    )
    handle.layers  # noqa: B018 - the dry run happens once, here, not on first use in a page
    return handle


# -- images ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Picture:
    """An image chosen in the sidebar.

    Attributes:
        name: what the user calls it (file name or sample name).
        pixels: ``(H, W, 3)`` uint8 RGB.
        source: ``"sample"`` or ``"upload"``.
        label: the true class, when known.
        key: identity of the pixels (for caches and widget keys).
        thumb: a small copy (at most ``THUMB`` pixels a side) for the sidebar.
    """

    name: str
    pixels: np.ndarray = field(repr=False)
    source: str
    label: str | None = None
    key: str = ""
    thumb: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(
        cls, name: str, pixels: np.ndarray, source: str = "sample", label: str | None = None
    ) -> Picture:
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        digest = hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()
        small = PILImage.fromarray(pixels)
        small.thumbnail((THUMB, THUMB))  # drawn on every run: never send the full photo
        return cls(name, pixels, source, label, digest, np.asarray(small))


@dataclass(frozen=True)
class SampleSet:
    """Images shipped with the project (or its dependencies), offline.

    Attributes:
        id: short name used in links (``?images=shapes``).
        title: the button's text; help: its tooltip.
        load: returns the pictures.
        domain: what the images show (``"photos"`` or ``"shapes"``): a built-in model is shown
            the samples of its own domain (:func:`sample_set_for`).
    """

    id: str
    title: str
    help: str
    load: Callable[[], list[Picture]]
    domain: str = "photos"


@st.cache_resource(show_spinner=False)
def _shapes(n: int, seed: int, marker: str) -> list[Picture]:
    from explain.builtin.shapes import CLASSES, make_dataset

    data = make_dataset(n, seed=seed, marker=marker)
    suffix = "" if marker == "none" else " + marker"
    return [
        Picture.of(f"{CLASSES[int(y)]} {i + 1}{suffix}", img, "sample", CLASSES[int(y)])
        for i, (img, y) in enumerate(zip(data.images, data.labels, strict=True))
    ]


@st.cache_resource(show_spinner=False)
def _photos() -> list[Picture]:
    """The real photographs shipped with the project (a cat, an espresso, a palace, ...),
    with the ImageNet class of what they show where there is one."""
    from explain.builtin.samples import sample_photos

    return [
        Picture.of(photo.name.replace("-", " "), photo.load(), "sample", photo.label_name)
        for photo in sample_photos()
    ]


SAMPLE_SETS: dict[str, SampleSet] = {
    s.id: s
    for s in (
        SampleSet(
            "photos",
            "Photos",
            "Six real photographs (a cat, an espresso, a palace, ...) shipped with the project",
            _photos,
        ),
        SampleSet(
            "shapes",
            "Shapes",
            "One shape of each class, for the built-in shapes models",
            lambda: _shapes(6, 2024, "none"),
            "shapes",
        ),
        SampleSet(
            "shapes-marker",
            "Shapes + marker",
            "With the corner marker the biased model relies on",
            lambda: _shapes(6, 2024, "class"),
            "shapes",
        ),
    )
}


def sample_set_for(spec: str) -> str:
    """The sample images that suit a model (a key of :data:`SAMPLE_SETS`): the shapes for the
    built-in shapes models (with the marker for the biased one), the photos for the others."""
    source, _, name = spec.partition(":")
    if source == "builtin" and name in SHAPES_MODELS:
        return "shapes-marker" if name == "shapes-biased" else "shapes"
    return "photos"


def default_sample_set(spec: str | None = None) -> str:
    """The id of the sample set a session shows with model ``spec`` (default: the model a new
    session starts on) when no images were chosen."""
    return sample_set_for(spec or default_model_spec())


def suits(spec: str, source: str) -> bool:
    """Whether the images of ``source`` (a sample set id, or uploads) suit model ``spec``:
    uploads and any model not built into the project always do (the user knows best)."""
    if source not in SAMPLE_SETS or not spec.startswith("builtin:"):
        return True
    return SAMPLE_SETS[source].domain == SAMPLE_SETS[sample_set_for(spec)].domain


# -- uploads --------------------------------------------------------------------------------------
class _NamedBytes(io.BytesIO):
    """Bytes that carry the user's file name, so that every message names the file."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


def read_upload(name: str, data: bytes) -> Picture:
    """An uploaded file as a :class:`Picture`.

    Raises:
        ExplainError: the file is empty, not an image, corrupt, too large or too small; the
            message names the file as the user named it.
    """
    if not data:
        raise ExplainError(f"{name} is empty (0 bytes).", hint="upload the file again.")
    loaded = load_image(_NamedBytes(data, name))
    return Picture.of(name, np.asarray(loaded.image), "upload")


_last_prune = 0.0


def _limits() -> tuple[float, int]:
    ttl = float(os.environ.get("GCE_UPLOAD_TTL_S", UPLOAD_TTL_S))
    max_mb = os.environ.get("GCE_UPLOAD_MAX_MB")
    return ttl, int(float(max_mb) * 2**20) if max_mb else UPLOAD_MAX_BYTES


def prune_uploads(now: float | None = None) -> int:
    """Delete kept uploads unused for longer than the time limit, then the least recently
    used ones while the folder is over its size limit (see :data:`UPLOAD_TTL_S`,
    :data:`UPLOAD_MAX_BYTES`); empty folders go too. Returns how many files were deleted.

    A link to a set whose files are gone shows the sample images with a word on why; a model
    already loaded from uploaded weights stays loaded.
    """
    ttl, max_bytes = _limits()
    now = time.time() if now is None else now
    entries = []
    for path in UPLOADS.rglob("*"):
        try:
            if path.is_file():
                info = path.stat()
                entries.append((info.st_mtime, info.st_size, path))
        except OSError:  # another session deleted it meanwhile
            continue
    entries.sort()  # least recently used first
    total = sum(size for _, size, _ in entries)
    deleted = 0
    for mtime, size, path in entries:
        if now - mtime <= ttl and total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        deleted += 1
    for folder in sorted(UPLOADS.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return deleted


def _maybe_prune() -> None:
    """Prune at most once a minute (it walks the folder)."""
    global _last_prune
    if time.monotonic() - _last_prune > 60:
        _last_prune = time.monotonic()
        with contextlib.suppress(OSError):  # never let housekeeping break an upload
            prune_uploads()


def _touch(path: Path) -> None:
    """Mark a kept file as used now (pruning removes the least recently used first)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _blob(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()[:24]
    path = UPLOADS / "blobs" / digest
    if path.exists():
        _touch(path)
    else:
        _maybe_prune()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return digest


def save_upload(data: bytes, name: str) -> str:
    """Store an uploaded file (weights, class names) under its own name in a folder named by
    its content; return the path. Messages about the file then name it as the user did."""
    digest = _blob(data)
    safe = re.sub(r"[^\w.\-]+", "_", Path(name).name).strip("._") or "upload"
    path = UPLOADS / "files" / digest / safe
    if path.exists():
        _touch(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(path)


def remember_uploads(files: list[tuple[str, bytes]]) -> str:
    """Keep uploaded images on this server so that a link (``?images=upload-ID``) or a reload
    finds them again; return the set's id (a hash: it cannot be guessed)."""
    manifest = json.dumps([[name, _blob(data)] for name, data in files]).encode()
    set_id = hashlib.sha256(manifest).hexdigest()[:24]
    path = UPLOADS / "sets" / f"{set_id}.json"
    if path.exists():
        _touch(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(manifest)
    return set_id


def recall_uploads(set_id: str) -> list[Picture]:
    """The pictures of a set kept by :func:`remember_uploads` (empty if unknown)."""
    if not re.fullmatch(r"[0-9a-f]{24}", set_id):
        return []
    path = UPLOADS / "sets" / f"{set_id}.json"
    try:
        entries = json.loads(path.read_text())
        pictures = []
        for name, digest in entries:
            if re.fullmatch(r"[0-9a-f]{24}", digest):
                blob = UPLOADS / "blobs" / digest
                pictures.append(read_upload(str(name), blob.read_bytes()))
                _touch(blob)
        _touch(path)
        return pictures
    except (OSError, ValueError, ExplainError):
        return []


def load_images_source(source: str) -> list[Picture]:
    """Pictures of a source id: a sample set (``"shapes"``) or kept uploads
    (``"upload-<id>"``); empty when unknown."""
    if source in SAMPLE_SETS:
        try:
            return SAMPLE_SETS[source].load()
        except (ImportError, OSError):
            return []
    if source.startswith("upload-"):
        return recall_uploads(source.removeprefix("upload-"))
    return []

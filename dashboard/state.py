"""Cached resources shared by all pages and all browser sessions, and the per-session choices
(model, images) that every page reads.

Heavy objects are cached once for everyone (``st.cache_resource``: models, with the engine's
per-model lock); results are cached per input (``st.cache_data``: maps, predictions).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from explain import DEFAULT, ExplainError, ModelHandle, compute_cams, load_image, load_model
from explain.cams import CamResult

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_SPECS = ("builtin:shapes", "builtin:shapes-biased")
DEFAULT_SPEC = "builtin:shapes"


# -- configuration ------------------------------------------------------------------------------
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


# -- models -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    """What identifies a loaded model: the spec and its weights (a key for caches)."""

    spec: str
    weights: str | None = DEFAULT
    trust_remote_code: bool = False
    labels_file: str | None = None

    @property
    def key(self) -> str:
        return f"{self.spec}|{self.weights}|{self.trust_remote_code}|{self.labels_file}"

    @property
    def title(self) -> str:
        if self.weights not in (DEFAULT, None) and self.weights:
            return f"{self.spec} + {Path(self.weights).name}"
        return self.spec + (" (random weights)" if self.weights is None else "")


@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def get_model(choice: ModelChoice) -> ModelHandle:
    """One model object per choice for every session (calls on it are serialised by its lock)."""
    labels = None
    if choice.labels_file:
        labels = [
            line.strip()
            for line in Path(choice.labels_file).read_text().splitlines()
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


def current_choice() -> ModelChoice:
    return st.session_state.get("model_choice", ModelChoice(DEFAULT_SPEC))


def current_model() -> ModelHandle:
    """The model chosen in the sidebar (the built-in one until the user picks another)."""
    choice = current_choice()
    try:
        return get_model(choice)
    except ExplainError as exc:  # e.g. a cached choice whose file disappeared
        st.session_state["model_choice"] = ModelChoice(DEFAULT_SPEC)
        st.error(str(exc))
        return get_model(ModelChoice(DEFAULT_SPEC))


def save_upload(data: bytes, suffix: str) -> str:
    """Store uploaded bytes under a content-addressed name; return the path."""
    folder = Path(tempfile.gettempdir()) / "gradcam-explorer-uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(data).hexdigest()[:24] + suffix)
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path)


# -- images -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Picture:
    """An image chosen in the sidebar."""

    name: str
    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    source: str  # "sample" or "upload"
    label: str | None = None  # the true class, when known

    @property
    def key(self) -> str:
        return hashlib.sha1(self.pixels.tobytes() + str(self.pixels.shape).encode()).hexdigest()


@st.cache_data(show_spinner=False)
def shapes_samples(
    n: int = 12, seed: int = 2024, marker: str = "none"
) -> list[tuple[str, np.ndarray, str]]:
    """Sample images from the built-in shapes generator: ``(name, (64, 64, 3) uint8, label)``."""
    from explain.builtin.shapes import CLASSES, make_dataset

    data = make_dataset(n, seed=seed, marker=marker)
    suffix = "" if marker == "none" else f"-{marker}-marker"
    return [
        (f"{CLASSES[int(y)]}-{i}{suffix}", img, CLASSES[int(y)])
        for i, (img, y) in enumerate(zip(data.images, data.labels, strict=True))
    ]


@st.cache_data(show_spinner=False)
def photo_samples() -> list[tuple[str, np.ndarray]]:
    """The two photographs that scikit-learn ships (a temple in China, a flower), offline."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return []
    bunch = load_sample_images()
    names = [Path(f).stem for f in bunch.filenames]
    return list(zip(names, bunch.images, strict=True))


def read_upload(name: str, data: bytes) -> Picture:
    """An uploaded file as a :class:`Picture` (raises ImageLoadError for bad files)."""
    loaded = load_image(data)
    return Picture(name=name, pixels=np.asarray(loaded.image), source="upload")


def current_pictures() -> list[Picture]:
    pictures = st.session_state.get("pictures")
    if not pictures:
        pictures = [
            Picture(name, pixels, "sample", label) for name, pixels, label in shapes_samples()[:6]
        ]
        st.session_state["pictures"] = pictures
    return pictures


# -- results ------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=256)
def cams(
    model_key: str,
    _handle: ModelHandle,
    image_key: str,
    _pixels: np.ndarray,
    method: str,
    layers: tuple[str, ...],
    targets: Any = None,
    eigen_smooth: bool = False,
    aug_smooth: bool = False,
    _progress: Any = None,
) -> CamResult:
    """Maps for one image, cached by model, image, method, layers, targets and options."""
    del model_key, image_key  # cache keys only
    return compute_cams(
        _handle,
        [_pixels],
        layers=list(layers),
        method=method,
        targets=targets,
        eigen_smooth=eigen_smooth,
        aug_smooth=aug_smooth,
        progress=_progress,
    )


@st.cache_data(show_spinner=False, max_entries=512)
def predict(
    model_key: str, _handle: ModelHandle, image_key: str, _pixels: np.ndarray
) -> np.ndarray:
    """Class probabilities ``(num_classes,)`` for one image."""
    del model_key, image_key
    return _handle.predict([_pixels])[0]


@st.cache_data(show_spinner=False, max_entries=512)
def model_view(
    model_key: str, _handle: ModelHandle, image_key: str, _pixels: np.ndarray
) -> np.ndarray:
    """The image resized / cropped as the model sees it, ``(H, W, 3)`` uint8."""
    del model_key, image_key
    return _handle.prepare([_pixels])[0]

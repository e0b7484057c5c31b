"""Pooled per-layer activations of a whole dataset, from one forward pass per batch.

All requested layers are hooked at once; each hook pools its layer's output on the spot
(global average for maps, class token or mean of patch tokens for token layers, identity for
vectors), so a batch's full feature maps are dropped as soon as the next module runs and memory
grows only with the pooled features. Batches are stored on disk as they finish (see
:mod:`embeddings.cache`): a repeated call reads them back without running the model, and an
interrupted one resumes.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explain.datasets import match_classes
from explain.errors import ImageLoadError, LayerError
from explain.hooks import Hooks, first_tensor
from explain.layers import LayerInfo, resolve_layers, to_nchw
from explain.progress import Progress, notify, tqdm_progress
from explain.runs import Engine, resolve_engine

from .cache import ActivationStore, cache_key
from .datasets import ImageDataset, load_dataset
from .errors import DatasetError

#: Pooling names: ``auto`` picks by layer kind; the others apply to any layer that allows them.
POOLINGS = ("auto", "avg", "max", "cls", "flatten")
#: Largest feature width ``flatten`` may give (a full map of a layer is rarely what one wants).
MAX_FLAT_FEATURES = 65_536


# -- pooling ----------------------------------------------------------------------------------
def resolve_pooling(info: LayerInfo, pooling: str = "auto") -> str:
    """The pooling used for one layer: ``auto`` becomes ``avg`` for spatial maps, ``cls`` for
    token layers with a class token (``avg`` of the patch tokens without one), ``flatten``
    (identity) for vectors.

    Raises:
        LayerError: the pooling does not fit the layer (``cls`` without a class token, ...).
    """
    if pooling not in POOLINGS:
        raise LayerError(f"Unknown pooling {pooling!r}.", hint=f"use one of {', '.join(POOLINGS)}.")
    if info.kind == "unused" or not info.shape:
        why = (
            "is never called by the forward pass"
            if info.kind == "unused"
            else "does not output a tensor"
        )
        raise LayerError(
            f"Layer {info.name!r} {why}, so it has no activations to collect.",
            hint="choose a layer from handle.layers whose kind is spatial, tokens or vector.",
        )
    if pooling == "auto":
        if info.kind == "tokens":
            return "cls" if info.prefix_tokens else "avg"
        return "flatten" if len(info.shape) == 1 else "avg"
    if pooling == "cls" and not (info.kind == "tokens" and info.prefix_tokens):
        raise LayerError(
            f"Layer {info.name!r} has no class token ({info.kind}, shape "
            f"{info.shape}), so 'cls' pooling does not apply.",
            hint="use 'avg' (mean of the patch tokens or of the map).",
        )
    if pooling == "flatten" and int(np.prod(info.shape)) > MAX_FLAT_FEATURES:
        raise LayerError(
            f"Flattening layer {info.name!r} gives {int(np.prod(info.shape)):,} "
            f"features per image (limit {MAX_FLAT_FEATURES:,}).",
            hint="use 'avg' or 'max' pooling.",
        )
    return pooling


def pool(output: torch.Tensor, info: LayerInfo, how: str) -> torch.Tensor:
    """Pool one layer's output to ``(N, D)``.

    Args:
        output: the layer's output (a tensor, or a structure :func:`first_tensor` unwraps):
            ``(N, C, h, w)``, channels-last ``(N, h, w, C)``, tokens ``(N, L, C)`` or ``(N, D)``.
        info: the layer's :class:`~explain.layers.LayerInfo` (layout, prefix tokens).
        how: ``"avg"`` (mean over the grid / the patch tokens), ``"max"``, ``"cls"`` (token 0),
            or ``"flatten"``.

    Returns:
        ``(N, D)``: ``D = C`` for maps and tokens, the flattened size for ``flatten``.
    """
    tensor = first_tensor(output)
    if tensor is None:
        raise LayerError(f"Layer {info.name!r} returned no tensor in this forward pass.")
    if how == "flatten" or tensor.ndim == 2:
        return tensor.flatten(1)
    if how == "cls":
        return tensor[:, 0]
    if info.kind in ("spatial", "tokens") and info.grid is not None:
        grid = to_nchw(tensor, info)
        return grid.mean(dim=(2, 3)) if how == "avg" else grid.amax(dim=(2, 3))
    # Another layout: reduce every axis after the channel/token-width one.
    dims = tuple(range(2, tensor.ndim)) if tensor.ndim > 3 else (1,)
    return tensor.mean(dim=dims) if how == "avg" else tensor.amax(dim=dims)


def forward_pooled(
    handle: Any, x: torch.Tensor, infos: Sequence[LayerInfo], poolings: Mapping[str, str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One forward pass of a batch with every layer pooled.

    Args:
        handle: a :class:`~explain.models.ModelHandle`.
        x: ``(B, 3, H, W)`` preprocessed images.
        infos: the layers; ``poolings``: layer name -> pooling.

    Returns:
        (layer -> ``(B, D)`` float32, softmax probabilities ``(B, num_classes)`` float32).
    """
    by_name = {info.name: info for info in infos}
    pooled: dict[str, torch.Tensor] = {}

    def keep(name: str, output: torch.Tensor) -> None:  # a repeated call keeps its last output
        pooled[name] = pool(output, by_name[name], poolings[name]).float()

    hooks = Hooks(handle.model).fast_pooling().watch(by_name, keep)
    with handle.lock, hooks, torch.inference_mode():
        logits = first_tensor(handle.model(x.to(handle.device)))
    missing = [info.name for info in infos if info.name not in pooled]
    if missing:
        raise LayerError(
            f"Layers {missing} did not run in the forward pass.",
            hint="choose layers that the model's forward calls.",
        )
    features = {name: out.cpu().numpy() for name, out in pooled.items()}
    probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return features, probs


# -- the result -------------------------------------------------------------------------------
@dataclass
class Activations:
    """Pooled activations of a dataset at several layers, with the model's predictions.

    Rows are the images that could be read, in dataset order; row ``r`` is ``paths[r]``.

    Attributes:
        features: layer -> ``(N, D)`` float32, layers in depth order (forward-pass order).
        labels: ``(N,)`` int64 index into ``label_names``; -1 where the dataset has no label.
        label_names: the dataset's class names.
        paths: where each image lives (file path, ``archive.zip/member``, ...).
        names: each image's name inside the dataset (``"cat/001.jpg"``).
        indices: ``(N,)`` int64 index of each row in the dataset it came from.
        probabilities: ``(N, num_classes)`` float32 softmax of the model.
        class_names: the model's class names (``predictions`` index into them).
        layer_infos: layer -> :class:`~explain.layers.LayerInfo`.
        pooling: layer -> the pooling used.
        skipped: ``(name, reason)`` for every file left out (listing and reading).
        key: the cache key; ``from_cache``: whether the model was not run at all.
        run: the run folder the activations were read from ("" when computed in memory).
        notes: anything worth telling about how they were read (a sample of a large run).
    """

    features: dict[str, np.ndarray]
    labels: np.ndarray
    label_names: list[str]
    paths: list[str]
    names: list[str]
    indices: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]
    layer_infos: dict[str, LayerInfo]
    pooling: dict[str, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    key: str = ""
    from_cache: bool = False
    run: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        dims = ", ".join(f"{name}: {arr.shape[1]}" for name, arr in self.features.items())
        return (
            f"Activations({len(self)} images, {len(self.skipped)} skipped, layers {{{dims}}}"
            f"{', from cache' if self.from_cache else ''})"
        )

    @property
    def layers(self) -> list[str]:
        """Layer names in depth order."""
        return list(self.features)

    @property
    def predictions(self) -> np.ndarray:
        """``(N,)`` int64 top-1 class of the model."""
        return self.probabilities.argmax(axis=1).astype(np.int64)

    @property
    def confidence(self) -> np.ndarray:
        """``(N,)`` float32 probability of the top-1 class."""
        return self.probabilities.max(axis=1)

    @functools.cached_property
    def targets(self) -> np.ndarray:
        """``(N,)`` int64 model class of each image's true label (-1: none of the same name)."""
        mapping = match_classes(self.label_names, self.class_names)
        if not len(mapping):
            return np.full(len(self), -1, dtype=np.int64)
        return np.where(self.labels >= 0, mapping[np.maximum(self.labels, 0)], -1)

    @property
    def correct(self) -> np.ndarray:
        """``(N,)`` bool: the prediction is the true class (False where that is unknown)."""
        return (self.targets >= 0) & (self.predictions == self.targets)

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy over the images whose label is a class of the model, or ``None``."""
        known = self.targets >= 0
        return float(self.correct[known].mean()) if known.any() else None

    @property
    def label_text(self) -> list[str]:
        """Per row, the true class name ("" when unlabelled)."""
        return [self.label_names[i] if i >= 0 else "" for i in self.labels]

    @property
    def prediction_text(self) -> list[str]:
        return [self.class_names[i] for i in self.predictions]

    def subset(self, rows: Iterable[int] | np.ndarray) -> Activations:
        """The same activations restricted to ``rows`` (indices or a boolean mask)."""
        rows = np.asarray(rows if isinstance(rows, np.ndarray) else list(rows))
        rows = (np.flatnonzero(rows) if rows.dtype == bool else rows).astype(np.int64)
        return Activations(
            features={name: arr[rows] for name, arr in self.features.items()},
            labels=self.labels[rows],
            label_names=list(self.label_names),
            paths=[self.paths[r] for r in rows],
            names=[self.names[r] for r in rows],
            indices=self.indices[rows],
            probabilities=self.probabilities[rows],
            class_names=list(self.class_names),
            layer_infos=dict(self.layer_infos),
            pooling=dict(self.pooling),
            skipped=list(self.skipped),
            key=self.key,
            from_cache=self.from_cache,
            run=self.run,
            notes=list(self.notes),
        )


# -- collection -------------------------------------------------------------------------------
def suggest_layers(handle: Any, k: int = 4) -> list[str]:
    """Layers that show a model's depth: the last block of every stage of a CNN, or ``k``
    evenly spaced blocks of a transformer (:meth:`explain.ModelHandle.stage_layers`)."""
    names = handle.stage_layers(k)
    if not names:
        raise LayerError(
            f"{handle.name} has no layer with a spatial or token output.",
            hint="pass layers= explicitly (vector layers work too).",
        )
    return names


def activation_key(
    handle: Any, dataset: ImageDataset, infos: Sequence[LayerInfo], poolings: Mapping[str, str]
) -> str:
    """The cache key: model spec and weights fingerprint, layers, pooling, preprocessing and
    the dataset's file list (names, sizes, modification times or CRCs)."""
    return cache_key(
        {
            "spec": handle.spec,
            "weights": handle.fingerprint,
            "layers": [info.name for info in infos],
            "pooling": dict(poolings),
            "preprocess": handle.preprocessor.describe(),
            "classes": list(handle.labels),
            "dataset": dataset.signature(),
        }
    )


def _plan(n: int, batch_size: int, stored: Mapping[int, int]) -> list[tuple[int, int, bool]]:
    """Batches ``(start, stop, stored)`` covering ``0..n``, reusing stored chunks that fit."""
    plan, pos = [], 0
    starts = sorted(s for s, e in stored.items() if e <= n)
    while pos < n:
        if pos in stored and stored[pos] <= n:
            plan.append((pos, stored[pos], True))
            pos = stored[pos]
            continue
        upcoming = next((s for s in starts if s > pos), n)
        stop = min(pos + batch_size, upcoming, n)
        plan.append((pos, stop, False))
        pos = stop
    return plan


def _read_batch(
    dataset: ImageDataset, start: int, stop: int
) -> tuple[list[Any], list[int], list[tuple[int, str]]]:
    """Decode images ``start..stop``: (PIL images, their indices, ``[(index, reason)]``)."""
    images, indices, failed = [], [], []
    for index in range(start, stop):
        try:
            images.append(dataset.load(index).image)
            indices.append(index)
        except (ImageLoadError, DatasetError, OSError, ValueError) as exc:
            failed.append((index, str(exc)))
    return images, indices, failed


def _run_batch(
    handle: Any,
    dataset: ImageDataset,
    start: int,
    stop: int,
    infos: Sequence[LayerInfo],
    poolings: Mapping[str, str],
) -> dict[str, np.ndarray]:
    images, indices, failed = _read_batch(dataset, start, stop)
    arrays: dict[str, np.ndarray] = {
        "indices": np.array(indices, dtype=np.int64),
        "failed": np.array([i for i, _ in failed], dtype=np.int64),
        "reasons": np.array([r for _, r in failed], dtype=np.str_),
    }
    if images:
        features, probs = forward_pooled(handle, handle.preprocess(images), infos, poolings)
    else:
        features = {info.name: np.zeros((0, 0), np.float32) for info in infos}
        probs = np.zeros((0, handle.num_classes), np.float32)
    arrays["probabilities"] = probs
    for j, info in enumerate(infos):
        arrays[f"f{j}"] = features[info.name]
    return arrays


def _concat(
    chunks: Sequence[Mapping[str, np.ndarray]], n_layers: int, num_classes: int
) -> dict[str, np.ndarray]:
    out = {}
    for name in ("indices", "failed", "reasons"):
        out[name] = np.concatenate([c[name] for c in chunks]) if chunks else np.zeros(0)
    out["probabilities"] = np.concatenate(
        [c["probabilities"] for c in chunks if len(c["indices"])]
        or [np.zeros((0, num_classes), np.float32)]
    )
    for j in range(n_layers):
        parts = [c[f"f{j}"] for c in chunks if len(c["indices"])]
        out[f"f{j}"] = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    return out


def collect_activations(
    handle: Any,
    dataset: Any,
    layers: str | Sequence[str] | None = None,
    *,
    pooling: str | Mapping[str, str] = "auto",
    batch_size: int = 64,
    progress: Progress | bool | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    max_images: int | None = None,
    seed: int = 0,
    engine: str | Engine | None = None,
    out: str | os.PathLike | None = None,
    block_size: int | None = None,
    max_points: int | None = None,
) -> Activations:
    """Pooled activations of every image of ``dataset`` at ``layers``, plus predictions.

    One forward pass per batch under ``torch.inference_mode`` serves all layers; each layer is
    pooled inside its hook, so memory holds the pooled features only.

    With ``engine`` or ``out``, the work is a run (:mod:`embeddings.runs`): blocks of images
    are computed in this process (``engine="local"``) or by a pool of Ray actors
    (``engine="ray"`` or an :class:`~explain.runs.RayEngine` with a cluster address), each
    block written to ``out`` as a Parquet file as soon as it is done; an interrupted run
    resumes from the blocks already written. The result is then read back from ``out``.

    Args:
        handle: a :class:`~explain.models.ModelHandle` (from ``explain.load_model``).
        dataset: anything :func:`~embeddings.datasets.load_dataset` takes (a folder, a zip, a
            list of files, ``"builtin:shapes"``, an :class:`~embeddings.datasets.ImageDataset`).
        layers: module paths (``handle.layers``), ``"all"`` or patterns such as ``"layer*"``
            (:func:`explain.layers.resolve_layers`; any layer, in depth order); ``None`` picks a
            few with :func:`suggest_layers`.
        pooling: ``"auto"`` (by layer kind), ``"avg"``, ``"max"``, ``"cls"``, ``"flatten"``, or
            a dict layer -> pooling (missing layers: ``"auto"``).
        batch_size: images per forward pass.
        progress: ``progress(done, total, message)`` (:data:`explain.progress.Progress`,
            images), or ``True`` for a tqdm bar.
        cache_dir: the disk cache folder; ``None`` the default (``$GCE_CACHE_DIR`` or
            ``~/.cache/gradcam-explorer/activations``); ``False`` for no disk cache.
        max_images: sub-sample the dataset to this many images, stratified by class.
        seed: seeds the sub-sampling.
        engine: ``None`` (in memory, with the disk cache), ``"local"`` or ``"ray"`` (a run
            folder), or an :class:`~explain.runs.Engine`.
        out: the run folder (default with an engine: ``<cache_dir>/runs/<key>``).
        block_size: images per block file of a run (default
            :data:`embeddings.runs.BLOCK_SIZE`; a resumed run keeps its own).
        max_points: with a run, read back at most this many images (a stratified sample
            seeded with ``seed``, said in ``acts.notes``); the whole run stays on disk.

    Returns:
        :class:`Activations`; ``acts.features[layer]`` is ``(N, D)`` float32.

    Raises:
        DatasetError: no image in the dataset could be read.
        LayerError: a layer that does not exist, never runs, or does not fit the pooling.
    """
    data = load_dataset(dataset, max_images=max_images, seed=seed)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    chosen = suggest_layers(handle) if layers is None else layers
    infos = resolve_layers(handle, chosen, maps_only=False, depth_order=True)
    per_layer = pooling if isinstance(pooling, Mapping) else {}
    default = pooling if isinstance(pooling, str) else "auto"
    poolings = {
        info.name: resolve_pooling(info, per_layer.get(info.name, default)) for info in infos
    }
    key = activation_key(handle, data, infos, poolings)
    if engine is not None or out is not None:
        return _collect_run(
            handle, data, infos, poolings, key, engine, out, cache_dir, block_size, progress,
            max_points, seed,
        )  # fmt: skip
    store = (
        None
        if cache_dir is False
        else ActivationStore(None if cache_dir in (None, True) else cache_dir, key)
    )
    with contextlib.ExitStack() as stack:
        if progress is True:
            progress = stack.enter_context(tqdm_progress("activations", unit="img"))
        update = progress or None
        arrays = store.load_result() if store is not None else None
        from_cache = arrays is not None
        if arrays is None:
            arrays = _compute(handle, data, infos, poolings, batch_size, store, update)
        notify(update, len(data), len(data), "activations")
    return _build(handle, data, infos, poolings, arrays, key, from_cache)


def _collect_run(
    handle: Any,
    data: ImageDataset,
    infos: Sequence[LayerInfo],
    poolings: Mapping[str, str],
    key: str,
    engine: str | Engine | None,
    out: str | os.PathLike | None,
    cache_dir: str | os.PathLike | bool | None,
    block_size: int | None,
    progress: Progress | bool | None,
    max_points: int | None,
    seed: int,
) -> Activations:
    """:func:`collect_activations` as a run folder (see :mod:`embeddings.runs`)."""
    from . import runs

    if out is None:
        if cache_dir is False:
            raise DatasetError(
                "A run needs a folder: cache_dir=False leaves it none.",
                hint="give out='run-folder/'.",
            )
        out = runs.default_run_dir(key, None if cache_dir in (None, True) else cache_dir)
    with contextlib.ExitStack() as stack:
        if progress is True:
            progress = stack.enter_context(tqdm_progress("activations", unit="img"))
        folder, stats = runs.collect_run(
            handle, data, infos, poolings, key, resolve_engine(engine), out,
            block_size=block_size or runs.BLOCK_SIZE, progress=progress or None,
        )  # fmt: skip
    if not folder.num_rows():
        raise DatasetError(
            f"None of the {len(data)} images of {data.description} could be read "
            f"({'; '.join(f'{n}: {r}' for n, r in folder.skipped()[:3])}).",
            hint="check that the files are images.",
        )
    rows, note = runs.sample_rows(folder, max_points, seed)
    acts = runs.read_activations(folder, rows=rows)
    acts.notes.extend([note] if note else [])
    acts.from_cache = stats.computed == 0
    return acts


def _compute(
    handle: Any,
    data: ImageDataset,
    infos: Sequence[LayerInfo],
    poolings: Mapping[str, str],
    batch_size: int,
    store: ActivationStore | None,
    update: Progress | None,
) -> dict[str, np.ndarray]:
    stored = store.chunk_ranges() if store is not None else {}
    chunks = []
    for start, stop, is_stored in _plan(len(data), batch_size, stored):
        chunk = store.load_chunk(start, stop) if is_stored and store is not None else None
        if chunk is None:
            chunk = _run_batch(handle, data, start, stop, infos, poolings)
            if store is not None:
                store.save_chunk(start, stop, chunk)
        chunks.append(chunk)
        notify(update, stop, len(data), "activations")
    arrays = _concat(chunks, len(infos), handle.num_classes)
    if len(arrays["indices"]) == 0:
        reasons = "; ".join(
            f"{data.items[int(i)].name}: {r}"
            for i, r in zip(arrays["failed"][:3], arrays["reasons"][:3], strict=True)
        )
        raise DatasetError(
            f"None of the {len(data)} images of {data.description} could be read ({reasons}).",
            hint="check that the files are images.",
        )
    if store is not None:
        store.save_result(
            arrays,
            {
                "spec": handle.spec,
                "layers": [i.name for i in infos],
                "pooling": dict(poolings),
                "dataset": data.description,
                "images": len(arrays["indices"]),
            },
        )
    return arrays


def _build(
    handle: Any,
    data: ImageDataset,
    infos: Sequence[LayerInfo],
    poolings: Mapping[str, str],
    arrays: Mapping[str, np.ndarray],
    key: str,
    from_cache: bool,
) -> Activations:
    indices = arrays["indices"].astype(np.int64)
    items = [data.items[int(i)] for i in indices]
    skipped = list(data.skipped) + [
        (data.items[int(i)].name, str(r))
        for i, r in zip(arrays["failed"], arrays["reasons"], strict=True)
    ]
    return Activations(
        features={
            info.name: arrays[f"f{j}"].astype(np.float32, copy=False)
            for j, info in enumerate(infos)
        },
        labels=np.array([item.label for item in items], dtype=np.int64),
        label_names=list(data.label_names),
        paths=[item.location for item in items],
        names=[item.name for item in items],
        indices=indices,
        probabilities=arrays["probabilities"].astype(np.float32, copy=False),
        class_names=list(handle.labels),
        layer_infos={info.name: info for info in infos},
        pooling=dict(poolings),
        skipped=skipped,
        key=key,
        from_cache=from_cache,
    )

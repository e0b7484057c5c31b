"""The :class:`ModelHandle`: a loaded classifier with what explaining it needs (labels,
preprocessing, layers, a lock), whatever source it came from."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import LayerError, PromptError, TargetError
from ..hooks import Hooks, first_tensor
from ..images import ImageSource
from ..layers import LayerInfo, Probe, block_layers, probe_model, stage_layers
from ..preprocessing import Preprocessor
from .dry_run import dry_run
from .prompts import PromptClassifier


class ModelHandle:
    """A classifier with what explaining it needs: labels, preprocessing, layers, a lock.

    Attributes:
        model: the ``nn.Module`` in eval mode; ``model(x)`` returns logits ``(N, num_classes)``.
        name: display name; ``spec``: the spec it was loaded from; ``source``: the name of
            the source in :data:`explain.models.registry.SOURCES` ("torchvision", "timm", "hf",
            "clip", "open_clip", "builtin" or "user").
        labels: class names, index -> name (a CLIP model's prompts).
        preprocessor: turns images into the model's input (see :mod:`explain.preprocessing`).
        device: where the model lives.
        lock: serialises calls that hook the model (one shared model, many threads).
        notes: things worth telling a user about how it was loaded.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        labels: Sequence[str],
        preprocessor: Preprocessor,
        spec: str,
        source: str,
        device: torch.device,
        default_layers: Sequence[str] = (),
        notes: Sequence[str] = (),
    ):
        self.model = model.eval()
        self.name = name
        self.labels = [str(label) for label in labels]
        self.preprocessor = preprocessor
        self.spec = spec
        self.source = source
        self.device = device
        self.lock = threading.RLock()
        self.notes = list(notes)
        self._preferred_layers = tuple(default_layers)
        #: how :func:`~explain.models.load_model` made it (``None`` for a model object).
        self.recipe = None
        self._probe: Probe | None = None
        self._weights_of: ModelHandle | None = None  # the handle whose weights hash is shared

    def __repr__(self) -> str:
        return (
            f"ModelHandle({self.name!r}, source={self.source!r}, classes={self.num_classes}, "
            f"device={self.device})"
        )

    # -- what the model expects -------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the model's input tensor."""
        return tuple(self.preprocessor.input_size)

    def preprocess(self, images: ImageSource | Sequence[ImageSource]) -> torch.Tensor:
        """Images (PIL, paths, bytes, arrays) -> ``(N, 3, H, W)`` float32 tensor on the CPU."""
        return self.preprocessor(images)

    def prepare(self, images: ImageSource | Sequence[ImageSource]) -> np.ndarray:
        """Images -> ``(N, H, W, 3)`` uint8: resized / cropped exactly as the model sees them,
        for overlays."""
        return self.preprocessor.prepare(images)

    # -- layers ---------------------------------------------------------------------------------
    def _ensure_probe(self) -> Probe:
        if self._probe is None:
            with self.lock:
                if self._probe is None:
                    self._probe = dry_run(
                        self.name,
                        self.preprocessor,
                        lambda x: probe_model(self.model, x, prefer=self._preferred_layers),
                        self.device,
                    )
        return self._probe

    @property
    def layers(self) -> list[LayerInfo]:
        """Every module by path (``named_modules()`` order), with its output kind and shape."""
        return list(self._ensure_probe().layers)

    @property
    def map_layers(self) -> list[LayerInfo]:
        """The layers where a CAM can be computed (spatial or token-grid outputs)."""
        return [info for info in self.layers if info.has_map]

    @property
    def default_layer(self) -> str:
        """The usual Grad-CAM layer for this architecture."""
        default = self._ensure_probe().default_layer
        if default is None:
            raise LayerError(f"{self.name} has no layer with a spatial or token-grid output.")
        return default

    def stage_layers(self, count: int = 4) -> list[str]:
        """The last block of every stage (CNNs) or ``count`` evenly spaced blocks
        (transformers): the layers to compare first."""
        return stage_layers(self._ensure_probe().layers, self.model, self.default_layer, count)

    def block_layers(self, limit: int = 64) -> list[str]:
        """Every block's output, in depth order (at most ``limit``)."""
        return block_layers(self._ensure_probe().layers, self.model, limit)

    def layer(self, name: str) -> LayerInfo:
        """The :class:`LayerInfo` of ``name``; a clear error (with close names) otherwise."""
        by_name = self._ensure_probe().by_name
        if name in by_name:
            return by_name[name]
        close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.5)
        raise LayerError(
            f"{self.name} has no layer {name!r}.",
            hint=(f"did you mean {', '.join(map(repr, close))}? " if close else "")
            + f"Layers with a map: {', '.join(i.name for i in self.map_layers[-6:])} "
            "(see handle.layers for all).",
        )

    def map_layer(self, name: str) -> LayerInfo:
        """Like :meth:`layer`, but the layer must have a spatial or token-grid output."""
        info = self.layer(name)
        if not info.has_map:
            raise LayerError(
                f"Layer {name!r} of {self.name} outputs {info.kind} data of shape {info.shape}, "
                "not a spatial map, so it cannot give a class-activation map.",
                hint=f"choose a convolutional or transformer-block layer, e.g. "
                f"{self.default_layer!r}.",
            )
        return info

    # -- classes --------------------------------------------------------------------------------
    def class_index(self, target: int | str) -> int:
        """A class index from an index or a (case-insensitive) label; a clear error otherwise."""
        if isinstance(target, bool):
            raise TargetError(f"{target!r} is not a class index.")
        if isinstance(target, int | np.integer):
            index = int(target)
            if not 0 <= index < self.num_classes:
                raise TargetError(
                    f"Class index {index} is out of range: {self.name} has {self.num_classes} "
                    f"classes (0 to {self.num_classes - 1}).",
                )
            return index
        if isinstance(target, str):
            lowered = [label.lower() for label in self.labels]
            if target.lower() in lowered:
                return lowered.index(target.lower())
            close = difflib.get_close_matches(target.lower(), lowered, n=3, cutoff=0.6)
            raise TargetError(
                f"{self.name} has no class named {target!r}.",
                hint=f"did you mean {', '.join(repr(self.labels[lowered.index(c)]) for c in close)}?"
                if close
                else "pass a class index or one of handle.labels.",
            )
        raise TargetError(f"A target class must be an int or a label, got {type(target).__name__}.")

    # -- text prompts (CLIP) ------------------------------------------------------------------
    @property
    def prompts(self) -> list[str] | None:
        """The text prompts that are the classes of a CLIP model; ``None`` for other models."""
        return list(self.model.prompts) if isinstance(self.model, PromptClassifier) else None

    def _prompt_model(self, prompts: str | Sequence[str]) -> PromptClassifier:
        if not isinstance(self.model, PromptClassifier):
            raise PromptError(
                f"{self.name} takes no text prompts: its classes are fixed.",
                hint="load a CLIP model ('clip:<hub id or folder>' or 'open_clip:<name>').",
            )
        return self.model.with_prompts(prompts)

    def with_prompts(self, prompts: str | Sequence[str]) -> ModelHandle:
        """A handle on the same model (the same modules, lock and layers; nothing reloaded)
        whose classes are ``prompts``; this handle is not changed, so a model shared between
        threads or sessions can be asked different questions at once. The prompts' text
        embeddings are computed once and cached.

        Raises:
            PromptError: not a CLIP model, or prompts empty or repeated.
        """
        model = self._prompt_model(prompts)
        twin = ModelHandle(
            model,
            name=self.name,
            labels=list(model.prompts),
            preprocessor=self.preprocessor,
            spec=self.spec,
            source=self.source,
            device=self.device,
            default_layers=self._preferred_layers,
            notes=self.notes,
        )
        twin.lock = self.lock  # the same modules: hooks must not overlap
        twin._probe = self._ensure_probe()  # the tower's layers do not depend on the prompts
        twin._weights_of = self._weights_of or self  # hashed once, by the first handle
        if self.recipe is not None:  # workers of a distributed run ask the same prompts
            twin.recipe = dataclasses.replace(self.recipe, prompts=tuple(model.prompts))
        return twin

    def set_prompts(self, prompts: str | Sequence[str]) -> None:
        """Make ``prompts`` the classes of this handle's CLIP model (nothing reloaded; text
        embeddings cached). Every user of this handle sees the change: for a handle shared
        between threads or sessions use :meth:`with_prompts`.

        Raises:
            PromptError: not a CLIP model, or prompts empty or repeated.
        """
        model = self._prompt_model(prompts)
        with self.lock:
            self.model = model.eval()
            self.labels = list(model.prompts)
            self.__dict__.pop("fingerprint", None)
            if self.recipe is not None:
                self.recipe = dataclasses.replace(self.recipe, prompts=tuple(model.prompts))

    # -- inference ------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Logits ``(N, num_classes)`` float32 on the CPU, without gradients."""
        if not isinstance(x, torch.Tensor):
            x = self.preprocess(x)
        x = x.contiguous()  # a caller's channels-last tensor breaks models that call x.view(...)
        chunks = []
        with self.lock, Hooks(self.model).fast_pooling(), torch.inference_mode():
            for start in range(0, len(x), batch_size):
                out = first_tensor(self.model(x[start : start + batch_size].to(self.device)))
                chunks.append(out.float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.num_classes)

    def predict(self, x: torch.Tensor | Sequence[ImageSource], batch_size: int = 64) -> np.ndarray:
        """Softmax probabilities ``(N, num_classes)`` float32; ``x`` a tensor or images."""
        return torch.softmax(self.logits(x, batch_size), dim=1).numpy()

    @functools.cached_property
    def _weights_hash(self) -> Any:
        """sha256 of the spec and all parameters and buffers (a CLIP model's prompt embeddings
        left out: the prompts are hashed as text), not finalised."""
        if self._weights_of is not None:
            return self._weights_of._weights_hash
        digest = hashlib.sha256(self.spec.encode())
        with torch.no_grad():
            for key, tensor in self.model.state_dict().items():
                if key == "text_features" and isinstance(self.model, PromptClassifier):
                    continue
                digest.update(key.encode())
                digest.update(
                    tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                )
        return digest

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of the spec and all parameters and buffers, and of a CLIP model's
        prompts (cache keys)."""
        digest = self._weights_hash.copy()
        if self.prompts is not None:
            digest.update("\n".join(["<prompts>", *self.prompts]).encode())
        return digest.hexdigest()[:16]

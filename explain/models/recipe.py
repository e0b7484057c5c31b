"""How to load a model again elsewhere: the arguments :func:`~explain.models.load_model` was
called with, so that a worker process (a Ray actor on another machine) builds the same model
from its spec and weights file instead of receiving a pickled live model."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .source import is_path


@dataclass(frozen=True)
class ModelRecipe:
    """The arguments of one :func:`~explain.models.load_model` call, minus the device.

    Attributes:
        spec: the model spec string (``"torchvision:resnet18"``, ``"pkg.module:factory"``).
        weights: ``"DEFAULT"``, ``None``, a weights name, or an absolute path to a file.
        labels: class names given by the caller, or ``None``.
        preprocess: the caller's preprocessing override (a ``Preprocess``, dict or callable).
        trust_remote_code: as given to ``load_model``.
        name: display name, or ``None``.
        model_args: factory keyword arguments.
        prompts: the text prompts of a CLIP model (its classes), or ``None``.
    """

    spec: str
    weights: Any = "DEFAULT"
    labels: tuple[str, ...] | None = None
    preprocess: Any = None
    trust_remote_code: bool = False
    name: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    prompts: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        spec: str,
        weights: Any,
        labels: Sequence[str] | None,
        preprocess: Any,
        trust_remote_code: bool,
        name: str | None,
        model_args: Mapping[str, Any] | None,
        prompts: Sequence[str] | None = None,
    ) -> ModelRecipe:
        """A recipe with a weights path made absolute (workers start in another folder)."""
        if is_path(weights):
            weights = str(Path(os.fspath(weights)).expanduser().resolve())
        return cls(
            spec=spec,
            weights=weights,
            labels=None if labels is None else tuple(str(label) for label in labels),
            preprocess=preprocess,
            trust_remote_code=bool(trust_remote_code),
            name=name,
            model_args=dict(model_args or {}),
            prompts=None if prompts is None else tuple(prompts),
        )

    def load(self, device: str | None = "auto") -> Any:
        """The model, loaded here: a :class:`~explain.models.ModelHandle` on ``device``."""
        from .load import load_model

        return load_model(
            self.spec,
            weights=self.weights,
            device=device,
            labels=None if self.labels is None else list(self.labels),
            preprocess=self.preprocess,
            trust_remote_code=self.trust_remote_code,
            name=self.name,
            model_args=dict(self.model_args) or None,
            prompts=None if self.prompts is None else list(self.prompts),
        )


def recipe_of(handle: Any) -> ModelRecipe:
    """The recipe of a loaded handle; a clear error for a model given as an object.

    Raises:
        ModelLoadError: the handle was made from an ``nn.Module`` or a callable, which another
            process cannot rebuild without pickling the live model.
    """
    recipe = getattr(handle, "recipe", None)
    if recipe is None:
        raise ModelLoadError(
            f"{handle.name} was given as a Python object, so worker processes cannot load it "
            "by itself.",
            hint="load it by spec: load_model('package.module:factory', weights='file.pth') "
            "(save its state_dict to a file first), or use engine='local'.",
        )
    return recipe

"""The ``builtin:<name>`` source: models shipped with the project, offline (see
:mod:`explain.builtin`)."""

from __future__ import annotations

from ..builtin import BUILTIN_MODELS, load_builtin
from ..checkpoints import load_weights
from ..errors import ModelLoadError
from ..preprocessing import Preprocess
from .source import DEFAULT, Loaded, Request


def load(request: Request) -> Loaded:
    """Load ``builtin:<name>`` (see :class:`~explain.models.source.Request`)."""
    name, weights = request.ref, request.weights
    if name not in BUILTIN_MODELS:
        raise ModelLoadError(
            f"There is no built-in model {name!r}.",
            hint=f"available: {', '.join('builtin:' + n for n in BUILTIN_MODELS)}.",
        )
    # Only the shipped weights need loading; random or a user's file start from a fresh model.
    model, labels, meta = load_builtin(name, pretrained=weights == DEFAULT)
    notes = []
    if weights is None:
        notes.append("random weights (weights=None).")
    elif weights != DEFAULT:
        load_weights(model, weights)
    return Loaded(
        model=model,
        labels=labels,
        preprocessor=Preprocess.from_dict(meta),
        notes=notes,
        default_layers=(meta["default_layer"],) if "default_layer" in meta else (),
    )

"""The most probable classes of a prediction, in one place for the command line, reports and
the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ExplainError


@dataclass(frozen=True)
class TopClasses:
    """The ``k`` most probable classes, most probable first (ties: the lower index first).

    Attributes:
        indices: ``(k,)`` int64 class indices, or ``(N, k)`` for a batch.
        probabilities: the same shape, float: their probabilities.
        labels: their names (``labels[i]`` per image for a batch); the index as text when no
            class names were given.
    """

    indices: np.ndarray
    probabilities: np.ndarray
    labels: list[str] | list[list[str]]


def top_classes(
    probs: np.ndarray | Sequence[float], k: int = 5, labels: Sequence[str] | None = None
) -> TopClasses:
    """The ``k`` most probable classes of one prediction ``(C,)`` or of a batch ``(N, C)``.

    Args:
        probs: probabilities (``handle.predict(x)``, ``res.probs``); any scores work.
        k: how many; more than ``C`` gives all ``C``.
        labels: class names (``handle.labels``).

    Raises:
        ExplainError: ``k < 1``, ``probs`` not 1-D or 2-D, or fewer labels than classes.
    """
    p = np.asarray(probs)
    if p.ndim not in (1, 2):
        raise ExplainError(f"Expected probabilities of shape (C,) or (N, C), got {p.shape}.")
    if k < 1:
        raise ExplainError(f"k must be at least 1, got {k}.")
    if labels is not None and len(labels) < p.shape[-1]:
        raise ExplainError(f"{len(labels)} class names for {p.shape[-1]} classes.")
    # Stable sort of the negated scores: equal probabilities keep the lower index first.
    indices = np.argsort(-p, axis=-1, kind="stable")[..., :k].astype(np.int64)
    names = np.asarray(labels, dtype=object) if labels is not None else None
    text = indices.astype(str) if names is None else names[indices]
    return TopClasses(
        indices=indices,
        probabilities=np.take_along_axis(p, indices, axis=-1),
        labels=text.tolist(),
    )


__all__ = ["TopClasses", "top_classes"]

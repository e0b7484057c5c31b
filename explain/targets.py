"""What to explain: which class (or which function of the logits) a map is computed for.

Accepted forms of ``targets`` everywhere in the library:

- ``None``: the top-1 class of each image;
- an ``int`` or a class name: that class for every image;
- a sequence of length N (ints or names): one class per image;
- :class:`Classes` ``([a, b, ...])``: every listed class for every image (explain each);
- :class:`TopK` ``(k)``: the k most probable classes of each image (explain each);
- a 2-D array ``(N, K)`` of class indices: K classes per image;
- :class:`Contrast` ``(a, b)``: "why ``a`` rather than ``b``", the score ``logit[a] - logit[b]``
  (``Contrast(None, b)``: each image's top-1 class rather than ``b``);
- a callable ``logits (N, C) -> scores (N,)`` or ``(N, K)``, e.g. ``lambda z: z[:, 3] - z[:, 5]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import TargetError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TopK:
    """The ``k`` most probable classes of each image."""

    k: int


@dataclass(frozen=True)
class Classes:
    """These classes, for every image (one map per class)."""

    classes: Sequence[int | str]


@dataclass(frozen=True)
class Contrast:
    """Why ``this`` rather than ``other``: the score is ``logit[this] - logit[other]``.

    ``this=None`` takes each image's top-1 class (the top-2 class where that is ``other``).
    With a CLIP model both are prompts (or their indices).
    """

    this: int | str | None
    other: int | str


@dataclass(frozen=True)
class ResolvedTargets:
    """Targets made concrete for a batch.

    Attributes:
        indices: ``(N, K)`` int64 class indices (``-1`` where a callable defines the score).
        multi: whether the caller asked for several maps per image (results keep the K axis).
        score_fn: ``logits (N, C) -> scores (N, K)``, differentiable.
        names: ``(N, K)`` display names of what each map explains.
        row_independent: ``score_fn`` scores any batch of logits alike (a callable target).
        other: the class subtracted from every score (:class:`Contrast`), or None.
    """

    indices: np.ndarray
    multi: bool
    score_fn: ScoreFn
    names: list[list[str]]
    row_independent: bool = False
    other: int | None = None

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def scorer(self, i: int) -> ScoreFn:
        """Scores of image ``i``'s targets for any batch of logits (e.g. of perturbed copies
        of image ``i``): ``(B, C) -> (B, K)``."""
        if self.row_independent:
            return self.score_fn
        row, other = self.indices[i], self.other
        if other is None:
            return lambda logits: logits[:, torch.as_tensor(row, device=logits.device)]
        return lambda logits: (
            logits[:, torch.as_tensor(row, device=logits.device)] - logits[:, other, None]
        )


def _gather(indices: np.ndarray, other: int | None = None) -> ScoreFn:
    """``logits[i, indices[i, k]]`` (minus ``logits[i, other]`` when given): ``(N, K)``."""

    def score(logits: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(indices, device=logits.device, dtype=torch.long)
        out = logits.gather(1, idx)
        return out if other is None else out - logits[:, other, None]

    return score


def _contrast(
    targets: Contrast, logits: torch.Tensor, labels: Sequence[str], class_index: Callable
) -> ResolvedTargets:
    """:class:`Contrast`: class indices ``(N, 1)`` and the score ``logit[this] - logit[other]``."""
    n = int(logits.shape[0])
    b = class_index(targets.other)
    if targets.this is None:
        if logits.shape[1] < 2:
            raise TargetError("Contrast(None, b) needs a model with at least two classes.")
        top2 = logits.topk(2, dim=1).indices.cpu().numpy()
        idx = np.where(top2[:, :1] == b, top2[:, 1:], top2[:, :1])  # never "b rather than b"
    else:
        idx = np.full((n, 1), class_index(targets.this), dtype=np.int64)
    if (idx == b).any():
        raise TargetError(
            f"Contrast({targets.this!r}, {targets.other!r}) compares a class with itself.",
            hint="give two different classes.",
        )
    names = [[f"{labels[int(a)]} rather than {labels[b]}"] for a in idx[:, 0]]
    return ResolvedTargets(idx, False, _gather(idx, b), names, other=b)


def resolve_targets(
    targets: Any,
    logits: torch.Tensor,
    labels: Sequence[str],
    class_index: Callable[[int | str], int],
) -> ResolvedTargets:
    """Turn any accepted ``targets`` form into class indices and a score function.

    Args:
        targets: see the module docstring.
        logits: ``(N, C)`` logits of the batch (used for top-1 / top-k and for checks).
        labels: class names.
        class_index: maps an int or name to a checked class index (raises TargetError).

    Raises:
        TargetError: out-of-range classes, a per-image list of the wrong length, a callable
            returning the wrong shape.
    """
    n = int(logits.shape[0])

    def names_of(idx: np.ndarray) -> list[list[str]]:
        return [[labels[int(c)] for c in row] for row in idx]

    if targets is None:
        idx = logits.argmax(dim=1, keepdim=True).cpu().numpy()
        return ResolvedTargets(idx, False, _gather(idx), names_of(idx))
    if isinstance(targets, TopK):
        if not 1 <= targets.k <= logits.shape[1]:
            raise TargetError(f"TopK({targets.k}) needs 1 <= k <= {logits.shape[1]}.")
        idx = logits.topk(targets.k, dim=1).indices.cpu().numpy()
        return ResolvedTargets(idx, True, _gather(idx), names_of(idx))
    if isinstance(targets, Classes):
        row = [class_index(c) for c in targets.classes]
        if not row:
            raise TargetError("Classes([]) lists no class.")
        idx = np.tile(np.array(row, dtype=np.int64), (n, 1))
        return ResolvedTargets(idx, True, _gather(idx), names_of(idx))
    if isinstance(targets, Contrast):
        return _contrast(targets, logits, labels, class_index)
    if callable(targets) and not isinstance(targets, str | int | np.integer):
        return _callable_targets(targets, logits)
    if isinstance(targets, int | np.integer | str):
        idx = np.full((n, 1), class_index(targets), dtype=np.int64)
        return ResolvedTargets(idx, False, _gather(idx), names_of(idx))
    arr = np.asarray(targets, dtype=object)
    if arr.ndim == 1:
        if len(arr) != n:
            raise TargetError(
                f"{len(arr)} targets were given for {n} images: give one class per image, "
                "Classes([...]) to explain several classes for every image, or one class.",
            )
        idx = np.array([[class_index(t)] for t in arr], dtype=np.int64)
        return ResolvedTargets(idx, False, _gather(idx), names_of(idx))
    if arr.ndim == 2 and arr.shape[0] == n and arr.shape[1] >= 1:
        idx = np.array([[class_index(t) for t in row] for row in arr], dtype=np.int64)
        return ResolvedTargets(idx, True, _gather(idx), names_of(idx))
    raise TargetError(f"targets of shape {arr.shape} do not fit {n} images.")


def _callable_targets(
    fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor
) -> ResolvedTargets:
    n = int(logits.shape[0])
    with torch.no_grad():
        probe = fn(logits.detach())
    if not isinstance(probe, torch.Tensor) or probe.ndim not in (1, 2) or probe.shape[0] != n:
        shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise TargetError(
            f"A target function must return a tensor of shape (N,) or (N, K) for N={n} "
            f"images; it returned {shape}.",
        )
    k = 1 if probe.ndim == 1 else int(probe.shape[1])

    def score(z: torch.Tensor) -> torch.Tensor:
        out = fn(z)
        return out[:, None] if out.ndim == 1 else out

    name = getattr(fn, "__name__", "custom score")
    return ResolvedTargets(
        np.full((n, k), -1, dtype=np.int64),
        probe.ndim == 2,
        score,
        [[name] * k for _ in range(n)],
        row_independent=True,
    )


def slice_targets(targets: Any, start: int, stop: int, n: int) -> Any:
    """The part of ``targets`` that belongs to images ``start:stop`` of ``n`` (per-image forms
    are sliced; forms that apply to every image are returned as they are)."""
    if isinstance(targets, list | tuple | np.ndarray) and len(targets) == n:
        part = targets[start:stop]
        return np.asarray(part) if isinstance(targets, np.ndarray) else list(part)
    return targets


def repeat_targets(resolved: ResolvedTargets, times: int) -> Any:
    """Targets for ``times`` augmented copies of each image (copy-major order), fixed to the
    classes resolved on the originals."""
    if resolved.row_independent:
        fn = resolved.score_fn
        return fn if resolved.multi else (lambda logits: fn(logits)[:, 0])
    idx = np.tile(resolved.indices, (times, 1))
    if resolved.other is not None:  # a contrast: the same score on every copy
        fn = _gather(idx, resolved.other)
        return fn if resolved.multi else (lambda logits: fn(logits)[:, 0])
    return idx if resolved.multi else idx[:, 0].tolist()

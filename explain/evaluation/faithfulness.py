"""Faithfulness: does the model's output really depend on the pixels a map calls important?

- Deletion and insertion (Petsiuk et al. 2018): move pixels from one image to another in the
  map's order of importance and follow the target class's probability; the area under the curve.
- Average Drop and Increase in Confidence (Chattopadhay et al. 2018): the probability when the
  model sees the input multiplied by the map.
- ROAD (Rong et al. 2022): remove the most (or least) relevant pixels and fill them by noisy
  linear imputation from their neighbours, so the removal leaves no shape for the model to see.

All model calls are batched: ``N`` images x ``S`` steps run as ``ceil(N * S / batch_size)``
forward passes (``batch_size=1`` evaluates one perturbed image per call). Scores are softmax
probabilities of the target class. Pixel order is a stable sort of the map, so tied values
(a constant map) go in raster order, as in the reference implementation of RISE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torchvision.transforms.functional as TF
from scipy.sparse.linalg import spsolve

from ..errors import ExplainError
from ..models import ModelHandle
from ..progress import Progress, notify

Baseline = str | float | torch.Tensor

#: Neighbour offsets (dy, dx) and weights of noisy linear imputation (Rong et al. 2022):
#: 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones (they sum to 1).
NEIGHBOUR_WEIGHTS: tuple[tuple[tuple[int, int], float], ...] = (
    ((-1, -1), 1 / 12),
    ((-1, 0), 1 / 6),
    ((-1, 1), 1 / 12),
    ((0, -1), 1 / 6),
    ((0, 1), 1 / 6),
    ((1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((1, 1), 1 / 12),
)

#: Removal fractions of ROAD, as in Rong et al. and pytorch-grad-cam.
ROAD_FRACTIONS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Curves:
    """Per-image curves of one perturbation metric.

    Attributes:
        x: ``(S,)`` fraction of pixels perturbed at each point, in [0, 1].
        values: ``(N, S)`` target-class probability at each point.
        scores: ``(N,)`` the metric per image (area under the curve, or mean over points).
        name: the metric's name.
    """

    x: np.ndarray
    values: np.ndarray
    scores: np.ndarray
    name: str = ""

    def mean_curve(self) -> np.ndarray:
        """``(S,)`` the curve averaged over images (NaN-safe)."""
        return np.nanmean(self.values, axis=0)


def auc(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Trapezoid area under ``values`` over ``x``, per row: ``sum (x[k+1] - x[k]) *
    (v[k] + v[k+1]) / 2``, divided by ``x[-1] - x[0]`` (so a constant curve at ``p`` gives
    ``p``).

    Args:
        x: ``(S,)`` increasing.
        values: ``(N, S)``.

    Returns:
        ``(N,)`` float64.
    """
    x = np.asarray(x, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    area = ((x[1:] - x[:-1]) * (v[:, 1:] + v[:, :-1]) / 2).sum(axis=1)
    return area / (x[-1] - x[0])


def pixel_ranks(maps: np.ndarray, descending: bool = True) -> np.ndarray:
    """Rank of every pixel in order of importance: 0 for the first pixel to perturb.

    Args:
        maps: ``(N, H, W)``.
        descending: rank the largest value first (else the smallest).

    Returns:
        ``(N, H * W)`` int64; ties keep raster order (stable sort).
    """
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    order = np.argsort(-flat if descending else flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None].repeat(len(flat), 0), axis=1)
    return ranks


def make_baseline(
    x: torch.Tensor, kind: Baseline = "zero", blur_sigma: float = 5.0, blur_kernel: int = 11
) -> torch.Tensor:
    """The image that perturbed pixels take their values from.

    Args:
        x: ``(N, 3, H, W)`` model input.
        kind: ``"zero"`` (zeros of the model input: the dataset's mean colour for the usual
            mean/std normalisation), ``"blur"`` (a Gaussian blur of each image, kernel
            ``blur_kernel``, sigma ``blur_sigma`` pixels, as in RISE), ``"mean"`` (each
            image's mean per channel), a number (that value everywhere), or a tensor
            broadcastable to ``x``.

    Returns:
        ``(N, 3, H, W)`` float32.
    """
    if isinstance(kind, torch.Tensor):
        if kind.shape == x.shape:
            return kind.to(x.dtype)  # read only: no copy of a full-size baseline
        return torch.broadcast_to(kind.to(x.dtype), x.shape).clone()
    if isinstance(kind, int | float) and not isinstance(kind, bool):
        return torch.full_like(x, float(kind))
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if kind == "blur":
        # Reflect padding needs the kernel's half-width below the image side.
        k = min(int(blur_kernel), 2 * min(x.shape[-2:]) - 1)
        k = k if k % 2 else k - 1
        return TF.gaussian_blur(x, [k, k], [blur_sigma, blur_sigma]) if k >= 3 else x.clone()
    raise ExplainError(
        f"Unknown baseline {kind!r}.",
        hint="use 'zero', 'blur', 'mean', a number, or a tensor of the input's shape.",
    )


def _check(x: torch.Tensor, maps: np.ndarray, targets: np.ndarray) -> None:
    n, _, h, w = x.shape
    if maps.shape != (n, h, w):
        raise ExplainError(
            f"Maps of shape {maps.shape} do not fit the input {tuple(x.shape)}.",
            hint="give one (H, W) map per image at the input's resolution (CamResult.maps).",
        )
    if targets.shape != (n,):
        raise ExplainError(f"Expected {n} target classes, got an array of shape {targets.shape}.")


def _targets(handle: ModelHandle, x: torch.Tensor, targets: Sequence[int] | None) -> np.ndarray:
    """Class index per image; the top-1 class when ``targets`` is None."""
    if targets is None:
        return handle.logits(x).argmax(dim=1).numpy()
    return np.asarray([handle.class_index(int(t)) for t in np.asarray(targets).ravel()])


def target_probabilities(
    handle: ModelHandle,
    count: int,
    build: Callable[[int, int], tuple[torch.Tensor, np.ndarray]],
    batch_size: int,
    progress: Progress | None = None,
    message: str = "",
) -> np.ndarray:
    """Run the model over ``count`` images made on the fly, ``batch_size`` per forward pass.

    Args:
        handle: the model.
        count: how many images.
        build: ``(start, stop) -> (images (stop - start, 3, H, W), target classes (stop -
            start,))``.
        batch_size: images per forward pass.

    Returns:
        ``(count,)`` float64 softmax probability of each image's target class.
    """
    out = np.empty(count, dtype=np.float64)
    step = max(1, int(batch_size))
    for lo in range(0, count, step):
        hi = min(count, lo + step)
        images, classes = build(lo, hi)
        probs = torch.softmax(handle.logits(images, batch_size=hi - lo), dim=1)
        out[lo:hi] = probs[torch.arange(hi - lo), torch.as_tensor(classes)].double().numpy()
        notify(progress, hi, count, message)
    return out


def perturbation_curve(
    handle: ModelHandle,
    start: torch.Tensor,
    end: torch.Tensor,
    ranks: np.ndarray,
    targets: np.ndarray,
    steps: int,
    batch_size: int = 64,
    endpoints: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The curve of images that go from ``start`` to ``end`` pixel by pixel in rank order.

    At point ``k`` of ``steps`` the ``round(k / steps * H * W)`` pixels of lowest rank come from
    ``end``, the others from ``start``. The two endpoints do not depend on the map; pass them in
    ``endpoints`` to skip their forward passes when several maps are scored.

    Args:
        start, end: ``(N, 3, H, W)``.
        ranks: ``(N, H * W)`` from :func:`pixel_ranks`.
        targets: ``(N,)`` class per image.
        steps: number of intervals (``steps + 1`` points).
        endpoints: ``(p_start (N,), p_end (N,))`` if already known.

    Returns:
        ``x (steps + 1,)`` the fraction of pixels taken from ``end``, and ``values (N, steps +
        1)`` the target probability at each point.
    """
    n, c, h, w = start.shape
    if steps < 1:
        raise ExplainError(f"steps must be at least 1, got {steps}.")
    counts = np.rint(np.linspace(0, h * w, steps + 1)).astype(np.int64)
    inner = steps - 1
    ranks_t = torch.from_numpy(ranks)
    start_flat, end_flat = start.reshape(n, c, h * w), end.reshape(n, c, h * w)

    def build(lo: int, hi: int) -> tuple[torch.Tensor, np.ndarray]:
        j = np.arange(lo, hi)
        img, k = j // inner, j % inner + 1
        moved = ranks_t[img] < torch.from_numpy(counts[k])[:, None]  # (B, H*W)
        out = torch.where(moved[:, None], end_flat[img], start_flat[img])
        return out.reshape(len(j), c, h, w), targets[img]

    values = np.empty((n, steps + 1), dtype=np.float64)
    if endpoints is None:
        both = torch.cat([start, end])
        p = target_probabilities(
            handle, 2 * n, lambda lo, hi: (both[lo:hi], np.tile(targets, 2)[lo:hi]), batch_size
        )
        endpoints = (p[:n], p[n:])
    values[:, 0], values[:, -1] = endpoints
    if inner > 0:
        values[:, 1:-1] = target_probabilities(
            handle, n * inner, build, batch_size, progress
        ).reshape(n, inner)
    return counts / (h * w), values


def deletion(
    handle: ModelHandle,
    x: torch.Tensor,
    maps: np.ndarray,
    targets: Sequence[int] | None = None,
    *,
    steps: int = 20,
    baseline: Baseline = "zero",
    batch_size: int = 64,
    endpoints: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> Curves:
    """Deletion curve and its area (lower is better).

    The most important pixels are replaced by ``baseline`` first; ``p_k`` is the target
    probability after a fraction ``k / steps`` of the pixels is gone, and the score is the
    trapezoid area under ``p`` over the fraction removed (0 to 1).

    Args:
        handle: the model.
        x: ``(N, 3, H, W)`` model input.
        maps: ``(N, H, W)`` importance, larger = more important.
        targets: ``(N,)`` class per image (default: the top-1 class of each image).
        steps: number of deletion steps.
        baseline: see :func:`make_baseline` (default zeros of the model input).
        batch_size: perturbed images per forward pass (1 = no batching).

    Returns:
        :class:`Curves` with ``steps + 1`` points per image.
    """
    x = x.float()
    maps = np.asarray(maps)
    tgt = _targets(handle, x, targets)
    _check(x, maps, tgt)
    end = make_baseline(x, baseline)
    fx, values = perturbation_curve(
        handle, x, end, pixel_ranks(maps), tgt, steps, batch_size, endpoints, progress
    )
    return Curves(fx, values, auc(fx, values), "deletion")


def insertion(
    handle: ModelHandle,
    x: torch.Tensor,
    maps: np.ndarray,
    targets: Sequence[int] | None = None,
    *,
    steps: int = 20,
    baseline: Baseline = "blur",
    batch_size: int = 64,
    endpoints: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> Curves:
    """Insertion curve and its area (higher is better).

    Starts from ``baseline`` (a blurred copy of each image by default) and puts the original
    pixels back, most important first; the score is the area under the target probability.

    Args: as :func:`deletion`.

    Returns:
        :class:`Curves` with ``steps + 1`` points per image.
    """
    x = x.float()
    maps = np.asarray(maps)
    tgt = _targets(handle, x, targets)
    _check(x, maps, tgt)
    start = make_baseline(x, baseline)
    fx, values = perturbation_curve(
        handle, start, x, pixel_ranks(maps), tgt, steps, batch_size, endpoints, progress
    )
    return Curves(fx, values, auc(fx, values), "insertion")


@dataclass
class ConfidenceChange:
    """Average Drop and Increase in Confidence, per image.

    Attributes:
        average_drop: ``(N,)`` ``100 * max(0, p - p_map) / p`` in percent.
        increase_in_confidence: ``(N,)`` 100 where ``p_map > p``, else 0.
        p: ``(N,)`` target probability on the input.
        p_map: ``(N,)`` target probability on the input multiplied by the map.
    """

    average_drop: np.ndarray
    increase_in_confidence: np.ndarray
    p: np.ndarray
    p_map: np.ndarray


def confidence_change(
    handle: ModelHandle,
    x: torch.Tensor,
    maps: np.ndarray,
    targets: Sequence[int] | None = None,
    *,
    batch_size: int = 64,
    p: np.ndarray | None = None,
) -> ConfidenceChange:
    """Average Drop and Increase in Confidence (Chattopadhay et al. 2018).

    The model sees ``x * map`` (the map scales the model input, so unimportant regions tend to
    the input's zero, as in pytorch-grad-cam); ``p`` is the target probability on ``x`` and
    ``p_map`` on ``x * map``.

    Args:
        handle: the model.
        x: ``(N, 3, H, W)`` model input.
        maps: ``(N, H, W)`` in [0, 1].
        targets: ``(N,)`` class per image (default top-1).
        batch_size: images per forward pass.
        p: the target probabilities on ``x``, if already known.
    """
    x = x.float()
    maps = np.asarray(maps)
    tgt = _targets(handle, x, targets)
    _check(x, maps, tgt)
    masked = x * torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    if p is None:
        p = target_probabilities(handle, len(x), lambda lo, hi: (x[lo:hi], tgt[lo:hi]), batch_size)
    p_map = target_probabilities(
        handle, len(x), lambda lo, hi: (masked[lo:hi], tgt[lo:hi]), batch_size
    )
    safe = np.where(p > 0, p, 1.0)
    drop = np.where(p > 0, 100.0 * np.maximum(0.0, p - p_map) / safe, 0.0)
    increase = 100.0 * (p_map > p)
    return ConfidenceChange(drop, increase.astype(np.float64), np.asarray(p), p_map)


# -- ROAD ---------------------------------------------------------------------------------------
def imputation_system(removed: np.ndarray) -> tuple[np.ndarray, sp.csc_matrix, sp.csr_matrix]:
    """The linear system of noisy linear imputation for one mask.

    Every removed pixel ``i`` equals the weighted mean of its neighbours inside the image,
    ``s_i v_i - sum_{j removed} w_ij v_j = sum_{j kept} w_ij u_j`` with ``s_i`` the sum of the
    weights of ``i``'s in-image neighbours (:data:`NEIGHBOUR_WEIGHTS`) and ``u`` the kept
    values. The matrix is symmetric and, when every group of removed pixels touches a kept one,
    positive definite.

    Args:
        removed: ``(H, W)`` bool.

    Returns:
        ``(idx (m,) flat indices of the removed pixels, A (m, m), K (m, H * W))``: solve
        ``A v = K u`` where ``u`` is the image flattened to ``(H * W, C)``.
    """
    h, w = removed.shape
    flat = removed.ravel()
    idx = np.flatnonzero(flat)
    m = len(idx)
    var = np.full(h * w, -1, dtype=np.int64)
    var[idx] = np.arange(m)
    r, c = np.divmod(idx, w)
    eqs = np.arange(m)
    diag = np.zeros(m)
    a_rows, a_cols, a_vals, k_rows, k_cols, k_vals = [eqs], [eqs], [diag], [], [], []
    for (dy, dx), weight in NEIGHBOUR_WEIGHTS:
        rr, cc = r + dy, c + dx
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        diag[inside] += weight
        j, e = rr[inside] * w + cc[inside], eqs[inside]
        miss = flat[j]
        a_rows.append(e[miss])
        a_cols.append(var[j[miss]])
        a_vals.append(np.full(int(miss.sum()), -weight))
        k_rows.append(e[~miss])
        k_cols.append(j[~miss])
        k_vals.append(np.full(int((~miss).sum()), weight))
    a = sp.csc_matrix(
        (np.concatenate(a_vals), (np.concatenate(a_rows), np.concatenate(a_cols))), shape=(m, m)
    )
    k = sp.csr_matrix(
        (np.concatenate(k_vals), (np.concatenate(k_rows), np.concatenate(k_cols))),
        shape=(m, h * w),
    )
    return idx, a, k


def noisy_linear_impute(
    image: np.ndarray | torch.Tensor,
    removed: np.ndarray,
    noise: float = 0.01,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Fill the removed pixels of one image from their neighbours (Rong et al. 2022).

    Solves :func:`imputation_system` once for all channels (one sparse LU factorisation) and
    adds Gaussian noise of standard deviation ``noise`` to the imputed values only; kept pixels
    are returned unchanged. If nothing is kept there is nothing to impute from: removed pixels
    become 0 (plus noise).

    Args:
        image: ``(C, H, W)``.
        removed: ``(H, W)`` bool, True where a pixel is removed.
        noise: standard deviation of the noise, in the image's units (0 for none).
        rng: source of the noise (default ``np.random.default_rng(0)``).

    Returns:
        ``(C, H, W)`` float32.
    """
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    removed = np.asarray(removed, dtype=bool)
    ch, h, w = img.shape
    if removed.shape != (h, w):
        raise ExplainError(f"The removal mask {removed.shape} does not fit the image {img.shape}.")
    flat = img.reshape(ch, h * w).astype(np.float64)
    out = flat.copy()
    idx = np.flatnonzero(removed)
    if len(idx) == 0:
        return img.astype(np.float32)
    if len(idx) == h * w:
        values = np.zeros((len(idx), ch))
    else:
        _, a, k = imputation_system(removed)
        values = spsolve(a, k @ flat.T)
        values = values.reshape(len(idx), ch)
    if noise:
        values = values + noise * (rng or np.random.default_rng(0)).standard_normal(values.shape)
    out[:, idx] = values.T
    return out.reshape(ch, h, w).astype(np.float32)


def road(
    handle: ModelHandle,
    x: torch.Tensor,
    maps: np.ndarray,
    targets: Sequence[int] | None = None,
    *,
    order: str = "morf",
    fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int = 64,
    progress: Progress | None = None,
    ids: Sequence[int] | np.ndarray | None = None,
) -> Curves:
    """ROAD: RemOve And Debias (Rong et al. 2022).

    For each fraction ``q``, the ``round(q * H * W)`` most relevant (``order="morf"``, lower
    is better) or least relevant (``"lerf"``, higher is better) pixels are removed and filled
    by :func:`noisy_linear_impute` on the model input; the score is the mean target
    probability over the fractions. The noise of image ``i`` at fraction ``k`` comes from
    ``np.random.default_rng([seed, i, k, order])``, so results do not depend on batching.

    Args:
        handle: the model.
        x: ``(N, 3, H, W)`` model input.
        maps: ``(N, H, W)``.
        targets: ``(N,)`` class per image (default top-1).
        order: ``"morf"`` or ``"lerf"``.
        fractions: removal fractions, each in (0, 1).
        noise: imputation noise (model-input units).
        seed: seed of the noise.
        batch_size: imputed images per forward pass.
        ids: the index of each image in its dataset (default ``0..N-1``): image ``i`` draws
            its noise with ``ids[i]``, so a block of a dataset gets the same noise as the whole.

    Returns:
        :class:`Curves` with one point per fraction.
    """
    if order not in ("morf", "lerf"):
        raise ExplainError(f"order must be 'morf' or 'lerf', got {order!r}.")
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) == 0 or (fr <= 0).any() or (fr >= 1).any():
        raise ExplainError(f"ROAD fractions must lie in (0, 1), got {list(fractions)}.")
    x = x.float()
    maps = np.asarray(maps)
    tgt = _targets(handle, x, targets)
    _check(x, maps, tgt)
    n, c, h, w = x.shape
    ranks = pixel_ranks(maps, descending=(order == "morf"))
    counts = np.rint(fr * h * w).astype(np.int64)
    code = 0 if order == "morf" else 1
    x_np = x.numpy()
    index = np.arange(n) if ids is None else np.asarray(ids, dtype=np.int64)

    def build(lo: int, hi: int) -> tuple[torch.Tensor, np.ndarray]:
        out = np.empty((hi - lo, c, h, w), dtype=np.float32)
        for b, j in enumerate(range(lo, hi)):
            i, k = divmod(j, len(fr))
            removed = (ranks[i] < counts[k]).reshape(h, w)
            rng = np.random.default_rng([int(seed), int(index[i]), k, code])
            out[b] = noisy_linear_impute(x_np[i], removed, noise, rng)
        return torch.from_numpy(out), tgt[np.arange(lo, hi) // len(fr)]

    values = target_probabilities(handle, n * len(fr), build, batch_size, progress).reshape(
        n, len(fr)
    )
    return Curves(fr, values, values.mean(axis=1), f"road_{order}")

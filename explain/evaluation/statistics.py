"""Is a method better than a baseline? A paired test over images, never a comparison of means.

Each image gives a method score ``a_i`` and a baseline score ``b_i`` on the same picture, so
the question is whether the differences ``d_i = a_i - b_i`` lean one way:

- Wilcoxon signed-rank test (default; :func:`scipy.stats.wilcoxon`, two-sided, zero
  differences dropped as in Wilcoxon's original test): robust to outliers and to the skewed,
  bounded scores these metrics give.
- Paired bootstrap: resample images with replacement; the p-value is the share of resampled
  mean differences, centred on zero, at least as far from zero as the observed one.

Either way the confidence interval is the percentile bootstrap interval of the mean
difference, and a verdict is given only when the (Holm-adjusted) p-value is below ``alpha``:
"better" or "worse" by the metric's direction, otherwise "no significant difference".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from ..errors import ExplainError

TESTS: tuple[str, ...] = ("wilcoxon", "bootstrap")
#: Resamples for bootstrap intervals and p-values.
N_RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of two score arrays over the same images.

    Attributes:
        test: ``"wilcoxon"`` or ``"bootstrap"``.
        n: images with both scores.
        mean_a, mean_b: means over those images.
        diff: mean of ``a - b``.
        ci_low, ci_high: percentile bootstrap interval of ``diff`` at ``confidence``.
        p_value: two-sided p-value of "no difference" (1.0 when every difference is zero).
        statistic: the Wilcoxon statistic (smaller rank sum), or the mean difference.
        confidence: level of the interval.
    """

    test: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    confidence: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ExplainError(f"Paired scores need equal lengths, got {len(a)} and {len(b)}.")
    keep = np.isfinite(a) & np.isfinite(b)
    return np.stack([a[keep], b[keep]])


def _boot_means(d: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``d``, in chunks."""
    rng = np.random.default_rng(seed)
    n = len(d)
    out = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = d[idx].mean(axis=1)
    return out


def bootstrap_ci(
    d: np.ndarray, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``d`` ``(n,)``."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) == 0:
        return float("nan"), float("nan")
    means = _boot_means(d, n_resamples, seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    test: str = "wilcoxon",
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> PairedTest:
    """Compare scores ``a`` and ``b`` ``(N,)`` of the same images (pairs with a NaN dropped).

    Args:
        a, b: per-image scores, e.g. a method's and a baseline's.
        test: ``"wilcoxon"`` (signed-rank) or ``"bootstrap"`` (paired, centred).
        confidence: level of the interval of the mean difference.
        n_resamples: bootstrap resamples.
        seed: seeds the bootstrap.

    Returns:
        A :class:`PairedTest`; with no pair left every number is NaN.
    """
    if test not in TESTS:
        raise ExplainError(f"Unknown paired test {test!r}.", hint=f"use {' or '.join(TESTS)}.")
    if not 0.0 < confidence < 1.0:
        raise ExplainError(f"confidence must be between 0 and 1, got {confidence}.")
    pa, pb = _pairs(a, b)
    n = len(pa)
    nan = float("nan")
    if n == 0:
        return PairedTest(test, 0, nan, nan, nan, nan, nan, nan, nan, confidence)
    d = pa - pb
    diff = float(d.mean())
    low, high = bootstrap_ci(d, confidence, n_resamples, seed)
    if not np.any(d != 0):
        p, statistic = 1.0, 0.0
    elif test == "wilcoxon":
        result = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        p, statistic = float(result.pvalue), float(result.statistic)
    else:
        centred = _boot_means(d - diff, n_resamples, seed + 1)
        extreme = np.count_nonzero(np.abs(centred) >= abs(diff) - 1e-12)
        p, statistic = (extreme + 1.0) / (n_resamples + 1.0), diff
    return PairedTest(
        test, n, float(pa.mean()), float(pb.mean()), diff, low, high, p, statistic, confidence
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN).

    ``p_(i)`` sorted ascending becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))`` over the
    ``m`` finite p-values.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def verdict(diff: float, p: float, higher_is_better: bool, alpha: float = 0.05) -> str:
    """``"better"``, ``"worse"`` or ``"no significant difference"`` (``"not tested"`` when
    there is no p-value)."""
    if not np.isfinite(p) or not np.isfinite(diff):
        return "not tested"
    if p >= alpha or diff == 0:
        return "no significant difference"
    return "better" if (diff > 0) == higher_is_better else "worse"

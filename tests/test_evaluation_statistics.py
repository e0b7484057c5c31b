"""Paired tests behind every "better than the baseline" verdict, on constructed cases with known
answers and against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from explain import ExplainError
from explain.evaluation import compare_with_baselines, holm, paired_test, verdict_sentence
from explain.evaluation.statistics import bootstrap_ci, verdict


def test_wilcoxon_p_value_is_scipys():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.2, 40)
    b = a - rng.normal(0.05, 0.1, 40)
    b[[3, 7]] = a[[3, 7]]  # zero differences are dropped, as in Wilcoxon's test
    r = paired_test(a, b)
    expected = stats.wilcoxon(a - b, zero_method="wilcox")
    assert r.p_value == pytest.approx(expected.pvalue)
    assert r.statistic == pytest.approx(expected.statistic)
    assert r.n == 40 and r.diff == pytest.approx((a - b).mean())
    assert r.mean_a == pytest.approx(a.mean()) and r.mean_b == pytest.approx(b.mean())
    assert r.ci_low < r.diff < r.ci_high


def test_exact_wilcoxon_when_every_difference_has_one_sign():
    a = np.arange(10) + 1.0
    b = np.zeros(10)
    # All ten signs positive, no ties: the exact two-sided p is 2 / 2**10.
    assert paired_test(a, b).p_value == pytest.approx(2 / 1024)


def test_constant_difference_has_a_degenerate_interval():
    a = np.linspace(0, 1, 25)
    r = paired_test(a + 0.1, a, test="bootstrap", n_resamples=999)
    assert r.diff == pytest.approx(0.1)
    assert r.ci_low == pytest.approx(0.1) and r.ci_high == pytest.approx(0.1)
    # No resample of the centred differences reaches 0.1: p = 1 / (B + 1).
    assert r.p_value == pytest.approx(1 / 1000)
    same = paired_test(a, a)
    assert same.p_value == 1.0 and same.diff == 0.0


def test_means_differ_but_the_paired_test_is_not_significant():
    """One huge outlier drags the mean; the other images go either way."""
    rng = np.random.default_rng(1)
    base = rng.random(20)
    noise = np.tile([0.01, -0.01], 10) * rng.uniform(0.5, 1.5, 20)
    ours = base + noise
    ours[0] = base[0] + 5.0
    r = paired_test(ours, base)
    assert ours.mean() - base.mean() > 0.2  # a mean comparison would call this "better"
    assert r.p_value > 0.3
    assert verdict(r.diff, r.p_value, higher_is_better=True) == "no significant difference"


def test_paired_design_sees_what_an_unpaired_test_cannot():
    """A small but consistent gain on images whose difficulty varies a lot."""
    rng = np.random.default_rng(2)
    difficulty = rng.uniform(0, 1, 30)
    base = difficulty
    ours = difficulty + 0.02 + rng.normal(0, 0.005, 30)
    assert stats.ttest_ind(ours, base).pvalue > 0.5
    r = paired_test(ours, base)
    assert r.p_value < 1e-5
    assert verdict(r.diff, r.p_value, higher_is_better=True) == "better"
    assert verdict(r.diff, r.p_value, higher_is_better=False) == "worse"


def test_bootstrap_interval_agrees_with_scipy():
    rng = np.random.default_rng(4)
    d = rng.exponential(1.0, 60) - 0.8
    ours = bootstrap_ci(d, 0.9, n_resamples=20_000, seed=0)
    theirs = stats.bootstrap(
        (d,), np.mean, confidence_level=0.9, n_resamples=20_000, method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval  # fmt: skip
    # Two Monte Carlo estimates of the same quantiles.
    assert ours[0] == pytest.approx(theirs.low, abs=0.02)
    assert ours[1] == pytest.approx(theirs.high, abs=0.02)


def test_bootstrap_p_value_agrees_with_the_t_test_on_normal_data():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, 200)
    b = a - rng.normal(0.15, 1, 200)
    r = paired_test(a, b, test="bootstrap", n_resamples=20_000)
    assert r.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=0.01)


def test_nan_pairs_are_dropped_and_bad_input_is_refused():
    r = paired_test(np.array([1.0, np.nan, 3.0, 4.0]), np.array([0.0, 1.0, np.nan, 1.0]))
    assert r.n == 2 and r.diff == pytest.approx(2.0)
    empty = paired_test(np.array([np.nan]), np.array([1.0]))
    assert empty.n == 0 and np.isnan(empty.p_value)
    assert verdict(empty.diff, empty.p_value, True) == "not tested"
    with pytest.raises(ExplainError, match="equal lengths"):
        paired_test(np.ones(3), np.ones(4))
    with pytest.raises(ExplainError, match="Unknown paired test"):
        paired_test(np.ones(3), np.ones(3), test="t")


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    # Sorted 0.01, 0.03, 0.04, 0.2 -> 4 x 0.01, 3 x 0.03, max(0.09, 2 x 0.04), max(.., 0.2).
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, 0.2, np.nan])
    assert np.isnan(holm(np.array([np.nan]))).all()


def _table(values: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    frames = []
    for (method, metric), v in values.items():
        frames.append(pd.DataFrame({
            "image": np.arange(len(v)), "method": method,
            "layer": "" if method in ("random", "gaussian") else "layer4",
            "metric": metric, "value": v,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_verdict_table_pairs_images_and_adjusts_per_subset():
    rng = np.random.default_rng(6)
    base = rng.random(30)
    table = _table({
        ("gradcam", "deletion"): base - 0.1 - rng.random(30) * 0.05,  # lower is better
        ("gaussian", "deletion"): base,
        ("gradcam", "pointing_game"): np.r_[np.ones(20), np.zeros(10)],
        ("gaussian", "pointing_game"): np.r_[np.ones(20), np.zeros(10)],
    })  # fmt: skip
    v = compare_with_baselines(table, {"all": np.arange(30), "first ten": np.arange(10)})
    assert list(v.subset) == ["all", "all", "first ten", "first ten"]
    assert (v.baseline == "gaussian").all()  # no random map in this table
    deletion = v[(v.metric == "deletion") & (v.subset == "all")].iloc[0]
    ours = table.query("method == 'gradcam' and metric == 'deletion'").value.to_numpy()
    assert deletion["p_value"] == pytest.approx(stats.wilcoxon(ours, base).pvalue)
    assert deletion["p_adjusted"] == pytest.approx(min(1.0, 2 * deletion["p_value"]))
    assert deletion["verdict"] == "better" and deletion["diff"] < 0
    same = v[(v.metric == "pointing_game") & (v.subset == "all")].iloc[0]
    assert same["p_value"] == 1.0 and same["verdict"] == "no significant difference"
    ten = v[(v.metric == "deletion") & (v.subset == "first ten")].iloc[0]
    assert ten["n"] == 10
    assert ten["p_value"] == pytest.approx(stats.wilcoxon(ours[:10], base[:10]).pvalue)
    text = verdict_sentence(deletion.to_dict())
    assert text.startswith("gradcam @ layer4, Deletion AUC (all, n=30): better than the gaussian")

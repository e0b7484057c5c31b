"""Evaluation results people can read (``explain.evaluation.figures``), the one metric
description type behind them (``explain.metric_info.MetricInfo``), and ``evaluate`` driven by
an ``EvaluationSettings``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import embeddings
from explain import ExplainError, load_model
from explain.evaluation import (
    METRICS,
    EvaluationSettings,
    Metric,
    boxes_to_mask,
    evaluate,
    shapes_bias_study,
)
from explain.evaluation.figures import (
    BEST_STYLE,
    best_rows,
    bias_table,
    column_titles,
    curves_figure,
    draw_boxes,
    draw_mask,
    leaderboard_figure,
    leaderboard_table,
    method_title,
    styled_leaderboard,
    styled_verdicts,
    verdict_table,
)
from explain.metric_info import MetricInfo


# -- one metric-description type --------------------------------------------------------------------
def test_one_type_describes_every_metric():
    assert Metric is MetricInfo and embeddings.MetricInfo is MetricInfo
    assert all(isinstance(m, MetricInfo) for m in [*METRICS.values(), *embeddings.METRICS.values()])
    assert embeddings.METRICS["knn_accuracy"].higher_is_better
    assert embeddings.METRICS["silhouette"].bounds == (-1.0, 1.0)
    drop, hits, deletion = METRICS["average_drop"], METRICS["pointing_game"], METRICS["deletion"]
    assert (drop.unit, hits.unit, deletion.unit) == ("%", "fraction", "")
    assert drop.format(12.345) == "12.3%" and hits.format(0.8125) == "81.2%"
    assert deletion.format(0.12345) == "0.123" and deletion.format(float("nan")) == "–"
    assert hits.format(-0.05, signed=True, unit=False) == "-5.0"
    assert drop.column_title == "Average Drop (%) ↓"
    assert hits.column_title == "Pointing game (% of images) ↑"
    assert deletion.column_title == "Deletion AUC (0–1) ↓"
    assert deletion.best([0.3, math.nan, 0.1, 0.2]) == 0.1 and hits.best([0.3, 0.9]) == 0.9
    with pytest.raises(ValueError, match="direction"):
        MetricInfo("x", "X", "faithfulness", "up", "A metric that goes up.")
    with pytest.raises(ValueError, match="unit"):
        MetricInfo("x", "X", "faithfulness", "higher", "A share.", unit="percent")


# -- the leaderboard ----------------------------------------------------------------------------
@pytest.fixture
def summary():
    """Average Drop: lower is better, so Grad-CAM (12.5) beats the random map (40.0);
    pointing game: higher is better, so Grad-CAM++ (0.95) beats Grad-CAM (0.9)."""
    return pd.DataFrame(
        {
            "method": ["gradcam", "gradcam", "gradcampp", "gradcampp", "random", "random"],
            "layer": ["layer3", "layer3", "layer3", "layer3", "", ""],
            "metric": ["pointing_game", "average_drop"] * 3,
            "mean": [0.9, 12.5, 0.95, 30.0, 0.25, 40.0],
        }
    )


def test_leaderboard_names_units_and_best_values(summary):
    board = leaderboard_table(summary)
    names = ["Grad-CAM at layer3", "Grad-CAM++ at layer3", "Random map (baseline)"]
    assert list(board.index) == names
    assert list(board.columns) == ["average_drop", "pointing_game"]  # registry order
    np.testing.assert_allclose(board["pointing_game"], [90.0, 95.0, 25.0])  # a share -> %
    np.testing.assert_allclose(board["average_drop"], [12.5, 30.0, 40.0])  # already a %
    assert best_rows(board) == {
        "average_drop": ["Grad-CAM at layer3"],  # the lowest
        "pointing_game": ["Grad-CAM++ at layer3"],  # the highest
    }
    html = styled_leaderboard(board).to_html()
    assert "12.5 ★" in html and "95.0 ★" in html
    assert "40.0 ★" not in html and "90.0 ★" not in html and BEST_STYLE.split(";")[0] in html
    titled = styled_leaderboard(board, titles=True).to_html()
    assert "Average Drop (%) ↓" in titled and "Pointing game (% of images) ↑" in titled
    assert "95.0 ★" in titled and "12.5 ★" in titled
    # The labels are the frame's own (Streamlit's st.table shows data labels, not relabels).
    assert list(styled_leaderboard(board, titles=True).data.columns) == [
        "Average Drop (%) ↓",
        "Pointing game (% of images) ↑",
    ]
    assert column_titles(board.columns)["pointing_game"] == "Pointing game (% of images) ↑"
    # A column with one value has no best; a tie marks every row that holds it.
    assert best_rows(board.iloc[:1]) == {"average_drop": [], "pointing_game": []}
    tied = board.copy()
    tied.loc["Grad-CAM at layer3", "pointing_game"] = 95.0
    assert best_rows(tied)["pointing_game"] == names[:2]
    figure = leaderboard_figure(board)
    cells = figure.data[0].cells.values
    assert cells[0] == names and cells[1][0] == "<b>12.5 ★</b>" and cells[2][2] == "25.0"


@pytest.fixture(scope="module")
def result():
    handle = load_model("builtin:shapes", device="cpu")
    return evaluate(
        handle, "builtin:shapes", ["gradcam", "eigencam"], "layer3",
        ["deletion", "pointing_game", "sanity_spearman"], max_images=6, steps=4,
        sanity_stages=["fc", "layer3"], n_resamples=200,
    )  # fmt: skip


def test_leaderboard_of_a_result_is_its_means(result):
    board = leaderboard_table(result)
    s = result.summary.set_index(["method", "layer", "metric"])["mean"]
    assert board.loc["Eigen-CAM at layer3", "deletion"] == pytest.approx(
        s[("eigencam", "layer3", "deletion")]
    )
    assert board.loc["Centred blob (baseline)", "pointing_game"] == pytest.approx(
        100 * s[("gaussian", "", "pointing_game")]
    )
    table = result.table
    one = leaderboard_table(table[table["image"] == 2], value="value")
    row = table.query("image == 2 and method == 'gradcam' and metric == 'pointing_game'")
    assert one.loc["Grad-CAM at layer3", "pointing_game"] == pytest.approx(100 * row.value.iloc[0])
    small = leaderboard_table(result, subset="small objects")
    assert small.shape == board.shape  # every shape covers less than half of the image


def test_curves_figure(result):
    deletion = curves_figure(result, "deletion")
    assert [t.name for t in deletion.data] == [
        "Grad-CAM at layer3", "Eigen-CAM at layer3", "Random map (baseline)",
        "Centred blob (baseline)",
    ]  # fmt: skip
    means = result.mean_curves("deletion").query("method == 'gradcam'")
    np.testing.assert_allclose(deletion.data[0].y, means["mean"])
    np.testing.assert_allclose(deletion.data[0].x, [0, 0.25, 0.5, 0.75, 1.0], atol=1e-3)
    assert deletion.data[0].line.dash == "solid" and deletion.data[2].line.dash == "dot"
    assert deletion.layout.title.text == "Deletion AUC (↓ is better)"
    sanity = curves_figure(result, "sanity_spearman")
    assert list(sanity.data[0].x) == ["fc", "layer3"]
    with pytest.raises(KeyError, match="no curves"):
        curves_figure(result, "pointing_game")


def test_verdict_table_reads_in_words_and_units(result):
    table = verdict_table(result)
    row = table[table["metric"] == "Pointing game (% of images) ↑"].iloc[0]
    verdict = result.verdicts.query(
        "subset == 'all' and method == 'gradcam' and metric == 'pointing_game' "
        "and baseline == 'random'"
    ).iloc[0]
    assert row["method"] == "Grad-CAM at layer3" and row["n"] == 6
    assert row["mean"] == f"{100 * verdict['mean']:.1f}%"
    assert row["vs random"] == verdict["verdict"]
    assert set(table["vs random"]) <= {"better", "worse", "no significant difference"}
    shown = pd.DataFrame({"method": ["a", "b"], "vs random": ["better", "worse"]})
    html = styled_verdicts(shown).to_html()
    assert "background-color: #d3f9d8" in html and "background-color: #ffe3e3" in html


# -- the bias study -----------------------------------------------------------------------------
def test_bias_table_in_words_and_percent():
    study = shapes_bias_study(n=6, markers=("class",))
    table = bias_table(study)
    raw = study.table.set_index("model")
    biased = table[table["Model"] == "Biased model (builtin:shapes-biased)"].iloc[0]
    assert biased["Marker in the images"] == "yes, in the true class's colour"
    assert biased["Map on the marker (%)"] == pytest.approx(
        100 * raw.loc["builtin:shapes-biased", "share_marker"]
    )
    assert biased["Accuracy (%)"] == pytest.approx(
        100 * raw.loc["builtin:shapes-biased", "accuracy"]
    )


# -- ground truth on images ---------------------------------------------------------------------
def test_a_drawn_box_lands_on_the_pixels_of_the_box():
    image = np.zeros((12, 10, 3), dtype=np.uint8)
    for box in [(2, 3, 6, 9), (1.4, 0.6, 4.5, 5.5), (-3, 7, 20, 30)]:
        drawn = draw_boxes(image, [box], color=(255, 0, 0))
        on = drawn[..., 0] == 255
        inside = boxes_to_mask(np.array([box]), (12, 10))
        # The outline is the border of exactly the pixels the box covers.
        rows, cols = np.nonzero(inside)
        border = inside & (
            np.isin(np.arange(12)[:, None], [rows.min(), rows.max()])
            | np.isin(np.arange(10)[None, :], [cols.min(), cols.max()])
        )
        np.testing.assert_array_equal(on, border)
        assert (drawn[~on] == 0).all() and (image == 0).all()  # a copy; the rest untouched
    drawn = draw_boxes(image, [(1, 1, 9, 11)], width=2)
    assert drawn[1:3, 1:9].all() and drawn[9:11, 1:9].all() and drawn[1:11, 7:9].all()
    assert not drawn[3:9, 3:7].any()  # two pixels thick, hollow inside
    assert not draw_boxes(image, [(20, 20, 30, 30)]).any()  # outside the image: nothing


def test_a_drawn_mask_is_tinted_and_outlined():
    image = np.full((6, 7, 3), 100, dtype=np.uint8)
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:5, 2:6] = True
    drawn = draw_mask(image, mask, color=(200, 0, 0), alpha=0.5)
    border = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[:-2, 1:-1]
    border |= mask & ~np.pad(mask, 1)[1:-1, 2:] | mask & ~np.pad(mask, 1)[1:-1, :-2]
    np.testing.assert_array_equal(drawn[border], np.tile([200, 0, 0], (border.sum(), 1)))
    inside = mask & ~border
    assert inside.sum() == 4
    np.testing.assert_array_equal(drawn[inside], [[150, 50, 50]] * 4)  # half tint, half image
    np.testing.assert_array_equal(drawn[~mask], image[~mask])
    with pytest.raises(ValueError, match="does not match"):
        draw_mask(image, mask[:5])


# -- evaluate with a settings object ------------------------------------------------------------
def test_settings_object_and_keywords_are_the_same_call():
    handle = load_model("builtin:shapes", device="cpu")
    settings = EvaluationSettings(steps=3, baselines=["random"], seed=2, n_resamples=100)
    common = ("builtin:shapes", "gradcam", "layer3", "deletion")
    by_object = evaluate(handle, *common, max_images=3, settings=settings)
    by_keywords = evaluate(
        handle, *common, max_images=3, steps=3, baselines=("random",), seed=2, n_resamples=100
    )
    pd.testing.assert_frame_equal(by_object.table, by_keywords.table)
    assert by_object.params["steps"] == 3 and by_object.params["baselines"] == ["random"]
    assert by_object.curves[("gradcam", "layer3", "deletion")].values.shape == (3, 4)
    # Keywords override the object.
    more = evaluate(handle, *common, max_images=3, settings=settings, steps=5)
    assert more.curves[("gradcam", "layer3", "deletion")].values.shape == (3, 6)
    with pytest.raises(TypeError, match=r"stepz.*settings are"):
        evaluate(handle, *common, stepz=3)
    with pytest.raises(ExplainError, match="alpha must lie between"):
        EvaluationSettings(alpha=1.5)
    with pytest.raises(ExplainError, match="Unknown baseline"):
        settings.replace(baselines=("uniform",))
    assert method_title("gradcampp", "layer4") == "Grad-CAM++ at layer4"

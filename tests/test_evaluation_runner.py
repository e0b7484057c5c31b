"""``evaluate``: the shape of its tables and curves, datasets it accepts, determinism, progress,
and the ``python -m explain.evaluation`` command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.stats import wilcoxon

from explain import ExplainError, load_model
from explain.builtin.shapes import CLASSES, make_dataset
from explain.cli.evaluate import main
from explain.evaluation import METRICS, evaluate

FAST = {"steps": 4, "road_fractions": (0.25, 0.5, 0.75), "sanity_stages": ["fc", "layer3"]}


@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", device="cpu")


def test_full_evaluation_on_shapes(shapes, tmp_path):
    """One run with every metric (xdist would repeat a shared fixture on each worker)."""
    calls: list[tuple[int, int, str]] = []
    result = evaluate(
        shapes, "builtin:shapes", ["gradcam", "Grad-CAM++"], ["layer3"], None,
        max_images=6, progress=lambda d, t, m: calls.append((d, t, m)), **FAST,
    )  # fmt: skip
    check_table(result)
    check_summary(result)
    check_curves(result)
    check_progress(calls)
    check_save(result, tmp_path)


def check_table(result):
    """One row per image x method x layer x metric."""
    table = result.table
    assert list(table.columns) == [
        "image", "name", "label", "target", "prediction", "method", "layer", "metric",
        "category", "direction", "value",
    ]  # fmt: skip
    assert len(table) == 6 * 4 * len(METRICS)  # 2 methods x 1 layer + 2 baselines
    assert set(table.method) == {"gradcam", "gradcampp", "random", "gaussian"}
    assert set(table.loc[table.method.isin(["random", "gaussian"]), "layer"]) == {""}
    assert table.groupby(["method", "layer", "metric"]).size().eq(6).all()
    assert (table.target == table.prediction).all()  # default: explain the top-1 class
    assert table.value.notna().all()
    for name, meta in METRICS.items():
        rows = table[table.metric == name]
        assert (rows.category == meta.category).all() and (rows.direction == meta.direction).all()
        low, high = meta.value_range
        assert rows.value.between(low - 1e-9, high + 1e-9).all(), name


def check_summary(result):
    """The summary compares every row with the baselines."""
    s = result.summary
    assert len(s) == 4 * len(METRICS)
    assert {"mean", "std", "sem", "median", "n", "random", "gaussian", "unit"} <= set(s.columns)
    assert str(s.better_than_random.dtype) == "boolean"
    assert s.loc[s.method == "random", "better_than_random"].isna().all()
    row = s[(s.method == "gradcam") & (s.metric == "deletion")].iloc[0]
    table = result.table
    values = table[(table.method == "gradcam") & (table.metric == "deletion")].value
    assert row["mean"] == pytest.approx(values.mean()) and row["n"] == 6
    assert row["random"] == pytest.approx(
        table[(table.method == "random") & (table.metric == "deletion")].value.mean()
    )
    # "Better" comes from a paired Wilcoxon test over the six images, not from the means.
    ours = values.to_numpy()
    base = table[(table.method == "random") & (table.metric == "deletion")].value.to_numpy()
    verdict = result.verdicts.query(
        "subset == 'all' and method == 'gradcam' and metric == 'deletion' and baseline == 'random'"
    ).iloc[0]
    assert verdict["p_value"] == pytest.approx(wilcoxon(ours, base).pvalue)
    assert verdict["diff"] == pytest.approx((ours - base).mean())
    assert row["p_random"] == pytest.approx(verdict["p_adjusted"])
    assert verdict["p_adjusted"] >= verdict["p_value"]  # Holm over the subset's comparisons
    assert row["better_than_random"] == (verdict["verdict"] == "better")
    assert not row["better_than_random"]  # six images cannot make any difference significant
    # Model-independent baselines fail the sanity check by design.
    sanity = s[s.method.isin(["random", "gaussian"]) & (s.category == "randomisation")]
    np.testing.assert_allclose(sanity["mean"], 1.0)


def check_curves(result):
    """Curves per image, and the table's values are their scores."""
    t = result.table
    for method, layer in (("gradcam", "layer3"), ("gaussian", "")):
        for metric in ("deletion", "insertion", "road_morf", "road_lerf"):
            c = result.curves[(method, layer, metric)]
            rows = t[(t.method == method) & (t.layer == layer) & (t.metric == metric)]
            np.testing.assert_allclose(c.scores, rows.value)
        assert result.curves[(method, layer, "deletion")].values.shape == (6, 5)
        assert result.curves[(method, layer, "road_morf")].values.shape == (6, 3)
    combined = t[(t.method == "gradcam") & (t.metric == "road_combined")].value.to_numpy()
    lerf = result.curves[("gradcam", "layer3", "road_lerf")].scores
    morf = result.curves[("gradcam", "layer3", "road_morf")].scores
    np.testing.assert_allclose(combined, (lerf - morf) / 2)
    assert result.stages == ["fc", "layer3"]
    sanity = result.curves[("gradcampp", "layer3", "sanity_ssim")]
    np.testing.assert_array_equal(sanity.x, [1, 2])
    assert ("random", "", "sanity_ssim") not in result.curves
    frame = result.curve_frame("sanity_spearman")
    assert set(frame.stage_name) == {"fc", "layer3"} and len(frame) == 2 * 6 * 2
    means = result.mean_curves("deletion")
    assert set(means.columns) >= {"method", "layer", "x", "mean", "std", "n"}
    assert len(means) == 4 * 5


def check_progress(calls):
    """Progress only goes forward and ends at its total."""
    done = [d for d, _, _ in calls]
    totals = {t for _, t, _ in calls}
    assert len(totals) == 1 and done == sorted(done) and done[-1] == totals.pop()
    assert any("ROAD" in m for *_, m in calls) and any("randomis" in m for *_, m in calls)


def check_save(result, tmp_path):
    """``save`` writes the tables, the curves and the settings."""
    paths = result.save(tmp_path / "out")
    assert {p.name for p in paths.values()} == {
        "table.csv", "summary.csv", "curves.csv", "mean_curves.csv", "meta.json",
        "verdicts.csv", "images.csv", "report.md",
    }  # fmt: skip
    table = pd.read_csv(paths["table"], keep_default_na=False)
    assert len(table) == len(result.table)
    np.testing.assert_allclose(table.value, result.table.value)
    meta = json.loads(paths["meta"].read_text())
    assert meta["params"]["methods"] == ["gradcam", "gradcampp"]
    assert meta["metrics"]["deletion"]["direction"] == "lower"


def test_seeded_and_batching_independent(shapes):
    kwargs = {"max_images": 2, "steps": 3, "road_fractions": (0.5,), "seed": 3}
    metrics = ["deletion", "road_morf", "average_drop"]
    runs = [
        evaluate(shapes, "builtin:shapes", "gradcam", "layer3", metrics, baselines=("random",),
                 batch_size=batch, **kwargs)
        for batch in (1, 64)
    ]  # fmt: skip
    pd.testing.assert_frame_equal(runs[0].table, runs[1].table, atol=1e-6, check_exact=False)
    kwargs["seed"] = 4  # drives the random maps and the ROAD noise
    other = evaluate(shapes, "builtin:shapes", "gradcam", "layer3", "road_morf", baselines=(),
                     **kwargs)  # fmt: skip
    road_3 = runs[1].table.query("metric == 'road_morf' and method == 'gradcam'").value
    assert not np.allclose(road_3.to_numpy(), other.table.value.to_numpy(), atol=1e-9)


def test_arrays_labels_and_masks(shapes):
    data = make_dataset(6, seed=1000)
    result = evaluate(
        shapes, (data.images, data.labels, data.masks), "gradcam", None, "localisation",
        targets="label", baselines=(),
    )  # fmt: skip
    localisation = {name for name, m in METRICS.items() if m.category == "localisation"}
    assert set(result.table.metric) == localisation
    for metric in localisation:
        rows = result.table[result.table.metric == metric]
        np.testing.assert_array_equal(rows.target, data.labels)  # targets="label"
    x = shapes.preprocess(list(data.images))
    from_tensor = evaluate(shapes, x, "gradcam", None, "pointing_game", masks=data.masks)
    np.testing.assert_allclose(
        from_tensor.table[from_tensor.table.method == "gradcam"].value,
        result.table[result.table.metric == "pointing_game"].value,
    )


def test_folder_without_masks(shapes, tmp_path):
    data = make_dataset(6, seed=1000)
    for i, (img, label) in enumerate(zip(data.images, data.labels, strict=True)):
        folder = tmp_path / CLASSES[label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    (tmp_path / "circle" / "notes.txt").write_text("not an image")
    (tmp_path / "square" / "broken.png").write_bytes(b"not a png")
    result = evaluate(shapes, tmp_path, "gradcam", None, ["pointing_game", "average_drop"])
    assert set(result.table.metric) == {"average_drop"}
    assert any("pointing_game" in note and "no object masks" in note for note in result.notes)
    assert any("skipped" in note for note in result.notes)
    assert sorted(result.table.label.unique()) == sorted(set(data.labels.tolist()))
    assert len(result.table) == 6 * 3
    # A dataset object of the embeddings package reads the same.
    from embeddings.datasets import load_dataset

    other = evaluate(shapes, load_dataset(tmp_path), "gradcam", None, "average_drop")
    pd.testing.assert_frame_equal(other.table, result.table)


def test_bad_input_gives_clear_errors(shapes, tmp_path):
    with pytest.raises(ExplainError, match="Unknown metric"):
        evaluate(shapes, "builtin:shapes", "gradcam", None, "accuracy", max_images=2)
    with pytest.raises(ExplainError, match="Unknown method"):
        evaluate(shapes, "builtin:shapes", "gradkam", None, "pointing_game", max_images=2)
    with pytest.raises(ExplainError, match="no layer"):
        evaluate(shapes, "builtin:shapes", "gradcam", "layer9", "pointing_game", max_images=2)
    with pytest.raises(ExplainError, match="needs a known label"):
        evaluate(shapes, torch.zeros(2, 3, 64, 64), "gradcam", None, "deletion", targets="label")
    with pytest.raises(ExplainError, match="not found"):
        evaluate(shapes, tmp_path / "missing", "gradcam", None, "deletion")
    with pytest.raises(ExplainError, match="Unknown paired test 'ttest'"):
        evaluate(shapes, "builtin:shapes", "gradcam", None, "deletion", test="ttest")
    with pytest.raises(ExplainError, match=r"loc_threshold must lie between 0\.0 and 1\.0"):
        evaluate(shapes, "builtin:shapes", "gradcam", None, "box_iou", loc_threshold=15)


# -- command line -------------------------------------------------------------------------------
def test_cli_writes_the_tables(tmp_path, capsys):
    out = tmp_path / "eval"
    code = main([
        "--model", "builtin:shapes", "--data", "builtin:shapes", "--methods", "gradcam",
        "--metrics", "deletion,pointing_game", "--steps", "3", "--max-images", "6",
        "--region", "56,56,62,62", "--region-name", "the corner", "--out", str(out),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    for name in ("table.csv", "summary.csv", "curves.csv", "mean_curves.csv", "meta.json"):
        assert (out / name).is_file()
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert set(summary.metric) == {"deletion", "pointing_game"}
    assert "pointing_game" in printed and "does not rely on the corner" in printed
    bias = json.loads((out / "bias.json").read_text())
    assert bias["verdict"] == "This model does not rely on the corner."


def test_cli_usage_errors(tmp_path, capsys):
    code = main(["--model", "builtin:shapes", "--metrics", "accuracy", "--out", str(tmp_path)])
    assert code == 2 and "Unknown metric 'accuracy'" in capsys.readouterr().err
    code = main(["--model", "builtin:nope", "--out", str(tmp_path)])
    assert code == 2 and "no built-in model" in capsys.readouterr().err.lower()

"""Evaluation on real models: the built-in shapes CNNs (with object masks and a planted bias)
and the pretrained CIFAR-10 ResNet-20 on real CIFAR-10 test images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from explain import load_model
from explain.builtin.shapes import make_dataset, marker_box_for
from explain.evaluation import (
    cascade_stages,
    cascading_randomisation,
    evaluate,
    find_bias,
    load_eval_data,
    shapes_bias_study,
)


@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", device="cpu")


def _mean(result, method, metric):
    row = result.summary[(result.summary.method == method) & (result.summary.metric == metric)]
    assert len(row) == 1, f"no single summary row for {method}/{metric}"
    return float(row["mean"].iloc[0])


def test_gradcam_points_at_the_shapes(shapes):
    result = evaluate(
        shapes, "builtin:shapes", ["gradcam"], ["layer3"],
        ["pointing_game", "energy_pointing_game"], max_images=60,
    )  # fmt: skip
    hits = _mean(result, "gradcam", "pointing_game")
    assert hits >= 0.9
    assert hits >= _mean(result, "random", "pointing_game") + 0.5
    assert hits >= _mean(result, "gaussian", "pointing_game") + 0.3
    energy = _mean(result, "gradcam", "energy_pointing_game")
    assert energy > 2 * _mean(result, "random", "energy_pointing_game")
    assert result.summary.loc[result.summary.method == "gradcam", "better_than_random"].all()
    assert len(result.table) == 60 * 2 * 3  # images x metrics x (gradcam, random, gaussian)


def test_gradcam_beats_a_random_map_on_cifar(cifar_handle, shared_data):
    result = evaluate(
        cifar_handle, shared_data / "cifar10-test", ["gradcam"], ["layer3"],
        ["deletion", "insertion"], baselines=("random",), max_images=200, steps=6, batch_size=200,
    )  # fmt: skip
    assert result.params["images"] == 200 and "200 of 1000 images" in result.params["data"]
    assert (result.table.label >= 0).all()  # folder names are the model's class names
    deletion = _mean(result, "gradcam", "deletion")
    insertion = _mean(result, "gradcam", "insertion")
    assert deletion < _mean(result, "random", "deletion") - 0.03
    assert insertion > _mean(result, "random", "insertion") + 0.1
    curves = result.curves[("gradcam", "layer3", "deletion")]
    assert curves.values.shape == (200, 7)
    np.testing.assert_allclose(curves.x, np.arange(7) / 6, atol=1e-3)  # whole pixels
    # The curve starts at the target probability on the intact image.
    probs = cifar_handle.predict(load_eval_data(cifar_handle, shared_data / "cifar10-test",
                                                max_images=200).x)  # fmt: skip
    np.testing.assert_allclose(curves.values[:, 0], probs.max(axis=1), atol=1e-5)


def test_randomisation_cascade_destroys_gradcam(shapes):
    data = load_eval_data(shapes, "builtin:shapes", max_images=16)
    before = {k: v.clone() for k, v in shapes.model.state_dict().items()}
    stages = cascade_stages(shapes, depth=2)
    assert [s.name for s in stages][:3] == ["fc", "layer3.1", "layer3.0"]
    assert stages[-1].name == "stem.0"
    result = cascading_randomisation(shapes, data.x, ["gradcam"], ["layer3"], seed=0)
    rho = result.spearman[("gradcam", "layer3")].mean(axis=0)
    structure = result.ssim[("gradcam", "layer3")].mean(axis=0)
    assert rho.shape == (len(stages),)
    assert rho[0] > rho[-1] + 0.3  # falls as more layers are randomised ...
    assert spearmanr(np.arange(len(rho)), rho).statistic < -0.6
    assert abs(rho[-1]) < 0.2 and structure[-1] < 0.25  # ... and is low once all are
    # The shared model was never touched.
    after = shapes.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    again = cascading_randomisation(shapes, data.x, ["gradcam"], ["layer3"], seed=0)
    np.testing.assert_allclose(
        again.spearman[("gradcam", "layer3")], result.spearman[("gradcam", "layer3")]
    )


def test_bias_finder_exposes_the_marker_model():
    study = shapes_bias_study(n=30)
    biased, clean = "builtin:shapes-biased", "builtin:shapes"
    assert "relies on the corner marker, not on the shape" in study.verdicts[biased]
    assert "relies on" not in study.verdicts[clean]
    assert "looks at the shape" in study.verdicts[clean]
    table = study.table.set_index(["model", "marker"])
    assert table.loc[(biased, "class"), "relies"] and not table.loc[(clean, "class"), "relies"]
    assert (
        table.loc[(biased, "class"), "share_marker"]
        > 10 * table.loc[(clean, "class"), "share_marker"]
    )
    assert table.loc[(biased, "class"), "flip_rate"] > 0.5
    assert table.loc[(clean, "class"), "flip_rate"] < 0.1
    # Without markers the biased model loses its shortcut (and its accuracy).
    assert table.loc[(biased, "none"), "accuracy"] < 0.5 < table.loc[(clean, "none"), "accuracy"]


def test_bias_finder_with_a_user_box(shapes):
    biased = load_model("builtin:shapes-biased", device="cpu")
    data = make_dataset(24, seed=1000, marker="class")
    box = marker_box_for(64)  # a "watermark" given in pixels, no object masks
    report = find_bias(biased, list(data.images), box, region_name="the watermark")
    assert report.relies_on_region and report.verdict == "This model relies on the watermark."
    assert report.density_region > 3 and report.share_object is None
    clean = find_bias(shapes, list(data.images), [box] * 24, region_name="the watermark")
    assert not clean.relies_on_region
    assert clean.verdict == "This model does not rely on the watermark."
    assert len(clean.per_image) == 24 and clean.region_area == pytest.approx(36 / 4096)

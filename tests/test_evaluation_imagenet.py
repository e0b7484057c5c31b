"""A real ImageNet model on real validation photos with their official boxes: Grad-CAM of the
true class against the centre baseline, by a paired test over images.

ImageNet objects are large and centred (the boxes cover about half of the picture), so a map
that always points at the centre already hits most of them; the test therefore looks at the
photos whose objects cover less than half of what the model sees (120 of the 300), where a
map has to find the object. The full 300 are measured by ``scripts/evaluate_imagenet_val.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from explain import load_model
from explain.evaluation import AnnotatedDataset, evaluate, load_annotated


@pytest.fixture(scope="module")
def lite0():
    return load_model("builtin:efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def val(lite0, shared_data):
    folder = shared_data / "imagenet-val"
    return load_annotated(lite0, AnnotatedDataset(folder / "images", folder / "boxes.csv"))


def test_the_validation_boxes_follow_the_crop(val):
    # 300 photos; one has its only object (a basketball at the right edge) outside the
    # centre crop, so 299 items remain, each with its class and at least one box.
    assert len(val) == 299 and len(val.skipped) == 1
    assert (val.labels >= 0).all() and all(len(b) >= 1 for b in val.boxes)
    assert 0.4 < val.object_fraction.mean() < 0.7  # "about half of the image"
    assert (val.object_fraction < 0.5).sum() == 120


def test_gradcam_beats_the_centre_baseline_on_small_objects(lite0, val):
    small = val.object_fraction < 0.5
    result = evaluate(
        lite0, (val.x[small], val.labels[small], val.masks[small]), "gradcam", None,
        ["pointing_game", "energy_pointing_game"], targets="label", baselines=("gaussian",),
        cam_batch_size=32,
    )  # fmt: skip
    v = result.verdicts.query("subset == 'all'").set_index("metric")
    assert (v["n"] == 120).all() and (v["baseline"] == "gaussian").all()
    hits, centre = v.loc["pointing_game", ["mean", "baseline_mean"]]
    assert hits > 0.72 and centre < hits
    # The verdict is the paired test's: Wilcoxon over the 120 images, Holm-adjusted.
    assert v.loc["pointing_game", "verdict"] == "better"
    assert v.loc["pointing_game", "p_adjusted"] < 0.05
    assert v.loc["energy_pointing_game", "verdict"] == "better"
    assert v.loc["energy_pointing_game", "p_adjusted"] < 1e-6
    assert v.loc["energy_pointing_game", "ci_low"] > 0.05
    assert np.isclose(result.summary.set_index("method").loc["gradcam", "p_gaussian"].min(),
                      v["p_adjusted"].min())  # fmt: skip

"""Several methods at once (``methods="all"``): methods that do not apply to a model are
skipped with the reason, the others give exactly what ``compute_cams`` gives; contrasts
("why a rather than b") through CAM, the perturbation scorer and aug_smooth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_models import small_timm_vit

from explain import (
    METHODS,
    Contrast,
    LayerError,
    MethodNotApplicable,
    Preprocess,
    applicable_methods,
    compute_cams,
    compute_methods,
    load_model,
)
from explain.cams import method_names
from explain.targets import resolve_targets

ATTENTION = {"rollout", "chefer", "legrad"}


@pytest.fixture(scope="module")
def vit():
    return load_model(
        small_timm_vit(), weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64))
    )


def test_method_names_expand_all():
    assert [m.name for m in method_names("all")] == list(METHODS)
    assert [m.name for m in method_names(["Grad-CAM", "all"])] == list(METHODS)
    assert [m.name for m in method_names(["score_cam", "gradcam++"])] == ["scorecam", "gradcampp"]


def test_attention_methods_do_not_apply_to_a_cnn(small_cnn):
    ok, skipped = applicable_methods(small_cnn)
    assert set(skipped) == ATTENTION
    assert all("no transformer blocks" in why for why in skipped.values())
    assert ok == [m for m in METHODS if m not in ATTENTION]
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = compute_methods(small_cnn, x, "3", ["gradcam", "rollout", "cam"], targets=1)
    assert out.methods == ["gradcam", "cam"] and list(out.skipped) == ["rollout"]
    assert out.notes[0].startswith("rollout skipped: ")
    for method in out:
        alone = compute_cams(small_cnn, x, "3", method, targets=1)
        np.testing.assert_array_equal(out[method].raw["3"], alone.raw["3"])
    with pytest.raises(MethodNotApplicable, match="None of the methods"):
        compute_methods(small_cnn, x, "3", ["rollout", "legrad"])
    # CAM applies to this model, at the layer its classifier pools: another layer is the
    # caller's mistake, not a method to skip.
    with pytest.raises(LayerError, match="pick the layer the classifier pools"):
        compute_methods(small_cnn, x, "1", ["gradcam", "cam"])


def test_cam_is_skipped_where_the_head_does_not_read_the_pooled_layer(vit):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ok, _ = applicable_methods(vit, ["cam", "rollout"])
    assert ok == ["cam", "rollout"]  # CAM's check needs a forward pass: found while computing
    out = compute_methods(vit, x, methods=["cam", "rollout", "gradcam"])
    assert out.methods == ["rollout", "gradcam"]
    assert "global average" in out.skipped["cam"]


def test_contrast_through_cam_perturbation_scores_and_aug_smooth(small_cnn):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    # CAM is linear in the head's weights: the map of a - b is the map of a minus that of b.
    a, b = (compute_cams(small_cnn, x, "3", "cam", targets=c).raw["3"] for c in (0, 3))
    both = compute_cams(small_cnn, x, "3", "cam", targets=Contrast(0, 3)).raw["3"]
    np.testing.assert_allclose(both, a - b, rtol=1e-5, atol=1e-6)
    # The score of perturbed copies of one image is logit a - logit b too.
    z = torch.randn(5, 4)
    resolved = resolve_targets(Contrast(0, 3), z[:2], small_cnn.labels, small_cnn.class_index)
    torch.testing.assert_close(resolved.scorer(1)(z), (z[:, 0] - z[:, 3])[:, None])
    # aug_smooth keeps the contrast on every copy: as with the same score written as a function.
    smooth = compute_cams(small_cnn, x, "3", targets=Contrast(0, 3), aug_smooth=True).raw["3"]
    by_fn = compute_cams(
        small_cnn, x, "3", targets=lambda z: z[:, 0] - z[:, 3], aug_smooth=True
    ).raw["3"]
    np.testing.assert_allclose(smooth, by_fn, rtol=1e-5, atol=1e-7)
    # Ablation-CAM of a - b (perturbation scores per image).
    ablation = compute_cams(small_cnn, x, "3", "ablationcam", targets=Contrast(0, 3)).raw["3"]
    by_fn = compute_cams(small_cnn, x, "3", "ablationcam", targets=lambda z: z[:, 0] - z[:, 3])
    np.testing.assert_allclose(ablation, by_fn.raw["3"], rtol=1e-5, atol=1e-6)

"""Box localisation (Grad-CAM, section 4.1) with exact numbers on hand-made maps and boxes, and
against an independent labelling of connected regions (scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from explain import ExplainError
from explain.evaluation import (
    box_iou,
    box_localisation,
    component_boxes,
    largest_component_box,
    localisation_error,
)


def test_iou_exact():
    a = np.array([[0, 0, 4, 4]])
    b = np.array([[2, 2, 6, 6], [0, 0, 4, 4], [4, 0, 8, 4], [1, 1, 3, 3], [0.5, 0, 4, 4]])
    # 4/28, identical, touching only, inside (4/16), a float box (3.5*4 / 16).
    np.testing.assert_allclose(box_iou(a, b)[0], [4 / 28, 1.0, 0.0, 0.25, 14 / 16])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 5)
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0])[0, 0] == 0.0  # empty union


def test_largest_component_threshold_and_box():
    cam = np.zeros((8, 10))
    cam[1:3, 1:4] = 1.0  # 6 pixels, the peak
    cam[4:8, 5:9] = 0.2  # 16 pixels, above 15 % of the peak
    cam[0, 9] = 0.14  # below 15 %: not kept
    assert largest_component_box(cam, 0.15) == (5, 4, 9, 8)
    # At 25 % the big faint region drops out and the peak region is the only one.
    assert largest_component_box(cam, 0.25) == (1, 1, 4, 3)
    # The threshold is inclusive: a value of exactly 15 % of the max is kept.
    cam[0, 9] = 0.15
    cam[4:8, 5:9] = 0.0
    assert largest_component_box(cam, 0.15) == (1, 1, 4, 3)  # 6 pixels beat 1


def test_connectivity_and_ties():
    cam = np.zeros((6, 6))
    cam[0, 0] = cam[1, 1] = cam[2, 2] = 1.0  # a diagonal: one region with 8-connectivity
    cam[4, 4] = cam[4, 5] = 1.0  # two pixels side by side
    assert largest_component_box(cam, 0.5, connectivity=8) == (0, 0, 3, 3)
    assert largest_component_box(cam, 0.5, connectivity=4) == (4, 4, 6, 5)
    tie = np.zeros((4, 6))
    tie[0, 4:6] = tie[3, 0:2] = 1.0  # equal areas: the first in row-major order wins
    assert largest_component_box(tie, 0.5) == (4, 0, 6, 1)
    # Nothing positive: nothing is singled out, the box is the whole image.
    assert largest_component_box(np.zeros((4, 6)), 0.15) == (0, 0, 6, 4)
    with pytest.raises(ExplainError, match="connectivity"):
        largest_component_box(tie, 0.5, connectivity=6)
    with pytest.raises(ExplainError, match="fraction"):
        largest_component_box(tie, 1.5)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_largest_component_agrees_with_scikit_image(connectivity):
    rng = np.random.default_rng(connectivity)
    for _ in range(40):
        cam = rng.random((24, 31)) ** 3
        fraction = float(rng.uniform(0.1, 0.6))
        labels = sk_label(cam >= fraction * cam.max(), connectivity=connectivity // 4)
        regions = regionprops(labels)
        biggest = max(r.area for r in regions)
        # scikit-image numbers regions in the same row-major order, so ties resolve alike.
        first = next(r for r in regions if r.area == biggest)
        r0, c0, r1, c1 = first.bbox
        assert largest_component_box(cam, fraction, connectivity) == (c0, r0, c1, r1)


def test_component_boxes_agree_with_scikit_image():
    rng = np.random.default_rng(3)
    mask = rng.random((20, 20)) > 0.7
    ours = component_boxes(mask)
    theirs = [
        (r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2])
        for r in regionprops(sk_label(mask, connectivity=2))
    ]
    np.testing.assert_array_equal(ours, np.array(theirs, dtype=float))
    assert component_boxes(np.zeros((3, 3), bool)).shape == (0, 4)


def test_box_localisation_and_error():
    maps = np.zeros((3, 10, 10))
    maps[0, 2:6, 2:6] = 1.0  # box (2, 2, 6, 6)
    maps[1, 0:2, 0:10] = 1.0  # box (0, 0, 10, 2)
    maps[2, 5:10, 5:10] = 1.0  # box (5, 5, 10, 10)
    truth = [
        np.array([[2, 2, 6, 6], [7, 7, 9, 9]]),  # the first box matches exactly
        np.array([[0, 0, 10, 4]]),  # IoU 20/40 = 0.5, exactly on the threshold
        np.zeros((0, 4)),  # no ground truth
    ]
    boxes, iou = box_localisation(maps, truth)
    np.testing.assert_array_equal(boxes, [[2, 2, 6, 6], [0, 0, 10, 2], [5, 5, 10, 10]])
    np.testing.assert_allclose(iou[:2], [1.0, 0.5])
    assert np.isnan(iou[2])
    correct = np.array([1.0, 1.0, 1.0])
    np.testing.assert_array_equal(localisation_error(iou, correct)[:2], [0.0, 0.0])
    wrong_class = np.array([0.0, 1.0, 1.0])
    np.testing.assert_array_equal(localisation_error(iou, wrong_class)[:2], [100.0, 0.0])
    # Stricter IoU: the second box no longer counts; unknown class or box gives NaN.
    err = localisation_error(iou, np.array([1.0, 1.0, np.nan]), iou_threshold=0.6)
    np.testing.assert_array_equal(err[:2], [0.0, 100.0])
    assert np.isnan(err[2])
    assert np.isnan(localisation_error(np.array([0.9]), np.array([-1.0]))[0])
    with pytest.raises(ExplainError, match="one box array per map"):
        box_localisation(maps, truth[:2])

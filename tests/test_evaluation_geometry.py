"""Ground truth follows the image through the model's preprocessing: a box drawn into an image's
pixels and the same box mapped by ``input_geometry`` land on the same model-input pixels, for
torchvision-style presets (resize + centre crop, squash, a crop larger than the resized image),
Hugging Face image processors and a user's own transform, on odd image sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from explain import ExplainError, Preprocess
from explain.evaluation import boxes_to_mask, input_geometry, replay_masks
from explain.evaluation.geometry import measured_geometry, preprocess_geometry
from explain.preprocessing import CallablePreprocess, HFPreprocess

SIZES = [(227, 227), (301, 157), (157, 301), (97, 131), (640, 479)]
PRESETS = {
    "resize 256, crop 224": Preprocess(224, resize=256),
    "squash to 224": Preprocess(224),
    "resize 200, crop 224 (padded)": Preprocess(224, resize=200),
    "bicubic, 160x224 crop of 180": Preprocess((160, 224), resize=180, interpolation="bicubic"),
    "nearest, 256 -> 224": Preprocess(224, resize=256, interpolation="nearest"),
}


def _drawn(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    w, h = size
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = 255
    return Image.fromarray(pixels)


def _box_for(
    size: tuple[int, int], rng: np.random.Generator, inner: bool
) -> tuple[int, int, int, int]:
    """A random box: inside what every crop here keeps (``inner``), or large enough to be cut."""
    w, h = size
    lo, hi = (0.3, 0.4) if inner else (0.05, 0.3)
    return (
        int(rng.integers(w * lo, w * hi)),
        int(rng.integers(h * lo, h * hi)),
        int(rng.integers(w * (1 - hi), w * (1 - lo))),
        int(rng.integers(h * (1 - hi), h * (1 - lo))),
    )


def _unit(pre, image: Image.Image) -> np.ndarray:
    """What the model sees of a white-on-black picture, back in [0, 1] (normalisation undone)."""
    size = image.size
    black, white = Image.new("RGB", size), Image.new("RGB", size, (255, 255, 255))
    out = pre([black, white, image]).double().numpy()
    span = out[1] - out[0]
    padded = np.abs(span) < 1e-9
    unit = (out[2] - out[0]) / np.where(padded, 1.0, span)
    return np.where(padded, 0.0, unit).mean(axis=0)


def _crossings(profile: np.ndarray) -> tuple[float, float]:
    """Where a bump profile crosses 1/2 going up and coming down (pixel-edge coordinates)."""
    p = profile
    up = int(np.flatnonzero((p[:-1] < 0.5) & (p[1:] >= 0.5))[0])
    down = int(np.flatnonzero((p[:-1] >= 0.5) & (p[1:] < 0.5))[-1])
    return (
        up + 0.5 + (0.5 - p[up]) / (p[up + 1] - p[up]),
        down + 0.5 + (p[down] - 0.5) / (p[down] - p[down + 1]),
    )


def _check(pre, size, box, edge_tolerance: float | None) -> None:
    geometry = input_geometry(pre, size)
    mapped = geometry.map_boxes([box])[0]
    seen = _unit(pre, _drawn(size, box))
    ours = boxes_to_mask(mapped[None], tuple(pre.input_size))
    theirs = seen >= 0.5
    # Pixels may differ only at the box's corners, where two half-covered edges meet, and
    # where a pixel centre lies on an edge (8-bit rounding; the fit's precision if measured).
    yy, xx = np.mgrid[0 : ours.shape[0], 0 : ours.shape[1]] + 0.5
    dx = np.minimum(abs(xx - mapped[0]), abs(xx - mapped[2]))
    dy = np.minimum(abs(yy - mapped[1]), abs(yy - mapped[3]))
    on_edge = 0.3 if geometry.measured else 0.05
    excused = ((dx < 1.5) & (dy < 1.5)) | (dx < on_edge) | (dy < on_edge)
    assert not (ours != theirs)[~excused].any(), (size, box, mapped)
    assert (ours != theirs).sum() <= 0.01 * ours.sum()
    assert ours.sum() > 100
    if edge_tolerance is not None:
        row = seen[int((mapped[1] + mapped[3]) / 2)]
        col = seen[:, int((mapped[0] + mapped[2]) / 2)]
        edges = [*_crossings(row), *_crossings(col)]
        expected = [mapped[0], mapped[2], mapped[1], mapped[3]]
        np.testing.assert_allclose(edges, expected, atol=edge_tolerance)


@pytest.mark.parametrize("name", list(PRESETS))
def test_drawn_and_mapped_boxes_coincide(name):
    pre = PRESETS[name]
    rng = np.random.default_rng(len(name))
    tolerance = None if pre.interpolation == "nearest" else 0.12
    for size in SIZES:
        _check(pre, size, _box_for(size, rng, inner=True), tolerance)
        _check(pre, size, _box_for(size, rng, inner=False), None)  # cut by the crop


def test_known_geometry_of_a_centre_crop():
    # 301 x 157 -> shorter side 256: 490 x 256 (int(256 * 301 / 157) = 490), crop 224:
    # left = round(266 / 2) = 133, top = round(32 / 2) = 16.
    g = preprocess_geometry(Preprocess(224, resize=256), (301, 157))
    assert g.scale == pytest.approx((490 / 301, 256 / 157))
    assert g.offset == (-133.0, -16.0)
    # A crop larger than the resized image pads: 97 x 131 -> 200 x 270, padded 12 left.
    g = preprocess_geometry(Preprocess(224, resize=200), (97, 131))
    assert g.offset == (12.0, -23.0)  # top = round(46 / 2)
    box = g.map_boxes([[0, 0, 97, 131]])[0]
    np.testing.assert_allclose(box, [12.0, 0.0, 212.0, 224.0])  # clipped to the frame


def test_measured_geometry_matches_the_worked_out_one():
    for pre in (PRESETS["resize 256, crop 224"], PRESETS["bicubic, 160x224 crop of 180"]):
        for size in SIZES:
            exact, fitted = preprocess_geometry(pre, size), measured_geometry(pre, size)
            np.testing.assert_allclose(fitted.scale, exact.scale, rtol=3e-3)
            np.testing.assert_allclose(fitted.offset, exact.offset, atol=0.25)
            assert fitted.measured and not exact.measured


@pytest.fixture(scope="module")
def other_preprocessors():
    from transformers import ConvNextImageProcessor, ViTImageProcessor

    user = T.Compose([T.Resize(240), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)])  # fmt: skip
    return {
        "convnext crop_pct": HFPreprocess(
            ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875)
        ),
        "vit squash": HFPreprocess(ViTImageProcessor(size={"height": 224, "width": 224})),
        "user transform": CallablePreprocess(user, (224, 224)),
    }


def test_other_preprocessors_are_followed(other_preprocessors):
    rng = np.random.default_rng(9)
    for pre in other_preprocessors.values():
        for size in SIZES[:4]:
            _check(pre, size, _box_for(size, rng, inner=True), 0.25)
            _check(pre, size, _box_for(size, rng, inner=False), None)


def test_masks_replay_through_any_preprocessor(other_preprocessors):
    size = (157, 301)
    mask = np.zeros((301, 157), dtype=bool)
    mask[40:200, 30:120] = True
    for pre in [PRESETS["resize 256, crop 224"], *other_preprocessors.values()]:
        replayed = replay_masks(pre, mask[None])[0]
        mapped = input_geometry(pre, size).map_boxes([[30, 40, 120, 200]])
        expected = boxes_to_mask(mapped, tuple(pre.input_size))
        assert (replayed != expected).sum() <= 4  # the four corners at most


def test_a_flip_is_not_a_resize_and_crop():
    flip = CallablePreprocess(
        T.Compose([T.Resize((64, 64)), T.RandomHorizontalFlip(p=1.0), T.ToTensor()]), (64, 64)
    )
    with pytest.raises(ExplainError, match="not a plain resize and crop"):
        input_geometry(flip, (80, 100))


def test_boxes_to_mask_uses_pixel_centres():
    mask = boxes_to_mask(np.array([[0.4, 1.5, 2.6, 2.5], [3.0, 0.0, 9.0, 0.2]]), (4, 5))
    expected = np.zeros((4, 5), dtype=bool)
    expected[1:2, 0:3] = True  # centres 0.5, 1.5, 2.5 in [0.4, 2.6); row centre 1.5 in [1.5, 2.5)
    np.testing.assert_array_equal(mask, expected)  # the second box covers no centre
    assert torch.is_tensor(torch.from_numpy(mask))

"""explain.render with exact values: colour tables, blending, resizing, masks, contours, grids,
PNG encoding, gradient pictures, and maps with NaN in them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explain.render import (
    COLORMAPS,
    colorize,
    colormap_css,
    colormap_lut,
    common_scale,
    draw_contours,
    gradient_image,
    grid,
    mask_edges,
    masked_image,
    overlay,
    resize_map,
    threshold_mask,
    to_png,
)

RED = (255, 0, 0)


@pytest.fixture
def image() -> np.ndarray:
    """A (6, 8, 3) uint8 picture with every pixel different."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)


def square_mask(size: int, lo: int, hi: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[lo:hi, lo:hi] = True
    return mask


def ring(size: int, lo: int, hi: int) -> np.ndarray:
    """The outermost pixels of the square [lo, hi) x [lo, hi), drawn by hand."""
    out = np.zeros((size, size), bool)
    for r in range(lo, hi):
        for c in range(lo, hi):
            out[r, c] = r in (lo, hi - 1) or c in (lo, hi - 1)
    return out


# -- colour tables ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("jet", (0, 0, 131), (128, 0, 0)),
        ("viridis", (68, 1, 84), (253, 231, 37)),
        ("inferno", (0, 0, 4), (252, 255, 164)),
        ("hot", (0, 0, 0), (255, 255, 255)),
        ("gray", (0, 0, 0), (255, 255, 255)),
    ],
)
def test_colormap_endpoints(name, low, high):
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == low and tuple(lut[255]) == high


def test_every_colormap_has_a_table_and_case_does_not_matter():
    for name in COLORMAPS:
        assert colormap_lut(name).shape == (256, 3)
    np.testing.assert_array_equal(colormap_lut("JET"), colormap_lut("jet"))
    np.testing.assert_array_equal(colormap_lut("gray")[:, 1], np.arange(256))
    with pytest.raises(ValueError, match="Unknown colour map 'rainbow'"):
        colormap_lut("rainbow")


def test_jet_interior_is_plotly_piecewise_linear():
    # Plotly's Jet: (5, 255, 255) at 0.375 and (255, 255, 0) at 0.625.
    t = (128 / 255 - 0.375) / 0.25
    expected = np.array([5, 255, 255]) * (1 - t) + np.array([255, 255, 0]) * t
    np.testing.assert_allclose(colormap_lut("jet")[128], expected, atol=1.0)


def test_colorize_indexes_the_table():
    lut = colormap_lut("jet")
    heat = np.array([[0.0, 1.0, 0.5], [-1.0, 2.0, np.nan]], np.float32)
    rgb = colorize(heat, "jet")
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    expected = lut[[[0, 255, 128], [0, 255, 0]]]  # clipped to [0, 1]; NaN -> 0
    np.testing.assert_array_equal(rgb, expected)


# -- overlays -----------------------------------------------------------------------------------
def test_overlay_alpha_0_is_the_image_and_alpha_1_the_heatmap(image):
    heat = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, heat, alpha=1.0), colorize(heat, "jet"))
    np.testing.assert_array_equal(
        overlay(Image.fromarray(image), heat, alpha=1.0, cmap="hot"), colorize(heat, "hot")
    )


def test_overlay_half_blend_by_hand():
    img = np.zeros((2, 2, 3), np.uint8)
    img[:] = (200, 100, 0)
    out = overlay(img, np.zeros((2, 2)), alpha=0.5, cmap="jet")  # jet(0) = (0, 0, 131)
    # 0.5 * 200, 0.5 * 100, 0.5 * 131 = 65.5 -> 66 (round half to even)
    assert out.dtype == np.uint8 and (out == (100, 50, 66)).all()


def test_weighted_overlay_leaves_zero_map_pixels_untouched(image):
    heat = np.zeros((6, 8), np.float32)
    heat[2:4, 3:6] = 1.0
    heat[0, 0] = 0.5
    out = overlay(image, heat, alpha=0.6, weighted=True, cmap="jet")
    untouched = heat == 0
    np.testing.assert_array_equal(out[untouched], image[untouched])
    top = colormap_lut("jet")[255].astype(np.float64)
    np.testing.assert_array_equal(
        out[2, 3], np.rint(0.4 * image[2, 3].astype(np.float64) + 0.6 * top)
    )
    mid = colormap_lut("jet")[128].astype(np.float64)  # opacity 0.6 * 0.5 = 0.3
    np.testing.assert_allclose(out[0, 0], 0.7 * image[0, 0] + 0.3 * mid, atol=0.5 + 1e-6)


def test_overlay_resizes_the_map_and_checks_alpha(image):
    out = overlay(image, np.ones((2, 2), np.float32), alpha=1.0, cmap="viridis")
    assert out.shape == (6, 8, 3)
    assert (out == colormap_lut("viridis")[255]).all()
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        overlay(image, np.ones((6, 8)), alpha=1.5)


# -- resizing, masks and contours ---------------------------------------------------------------
@pytest.mark.parametrize("size", [(20, 31), (3, 4), (7, 9)])
def test_resize_map_keeps_a_constant_map_constant(size):
    out = resize_map(np.full((7, 9), 0.3, np.float64), size)
    assert out.shape == size and out.dtype == np.float32
    np.testing.assert_allclose(out, np.float32(0.3), rtol=0, atol=1e-7)


def test_resize_map_stays_within_the_range_of_its_input():
    ramp = np.tile(np.linspace(0.2, 0.9, 5, dtype=np.float32), (4, 1))
    out = resize_map(ramp, (16, 20))
    assert out.min() >= 0.2 - 1e-6 and out.max() <= 0.9 + 1e-6
    assert (np.diff(out, axis=1) >= -1e-6).all()  # still increasing left to right
    np.testing.assert_allclose(out[:, 0], out[0, 0])  # rows stay equal


def test_mask_edges_of_a_square():
    edges = mask_edges(square_mask(9, 2, 7))
    np.testing.assert_array_equal(edges, ring(9, 2, 7))
    assert edges.sum() == 16
    # A mask that touches the border: the image border counts as outside.
    np.testing.assert_array_equal(mask_edges(np.ones((4, 4), bool)), ring(4, 0, 4))
    assert not mask_edges(np.zeros((4, 4), bool)).any()


def test_threshold_mask_is_at_least():
    heat = np.array([[0.49, 0.5, 0.51, np.nan]], np.float32)
    np.testing.assert_array_equal(threshold_mask(heat, 0.5), [[False, True, True, False]])


def test_draw_contours_colours_exactly_the_boundary():
    base = np.full((10, 10, 3), 40, np.uint8)
    heat = np.zeros((10, 10), np.float32)
    heat[3:7, 3:7] = 0.8
    out = draw_contours(base, heat, levels=(0.5,), colour=RED)
    boundary = ring(10, 3, 7)
    assert (out[boundary] == RED).all()
    assert (out[~boundary] == 40).all()
    assert (base == 40).all()  # the input is not changed


def test_draw_contours_thickness_and_levels():
    heat = np.zeros((10, 10), np.float32)
    heat[3:7, 3:7] = 0.8
    heat[4:6, 4:6] = 1.0
    thick = draw_contours(np.zeros((10, 10, 3), np.uint8), heat, colour=RED, thickness=2)
    coloured = (thick == RED).all(axis=-1)
    ring1 = ring(10, 3, 7)
    p = np.pad(ring1, 1)
    grown = ring1 | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]  # 4-neighbours
    np.testing.assert_array_equal(coloured, grown)
    assert coloured[2, 4] and not coloured[2, 2]  # grown outwards, not diagonally
    two = draw_contours(np.zeros((10, 10, 3), np.uint8), heat, levels=(0.5, 0.9), colour=RED)
    np.testing.assert_array_equal((two == RED).all(axis=-1), ring1 | square_mask(10, 4, 6))


def test_masked_image_keeps_and_dims():
    img = np.full((4, 4, 3), 200, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[:2] = 0.9
    out = masked_image(img, heat, threshold=0.5, dim=0.25)
    assert (out[:2] == 200).all() and (out[2:] == 50).all()


# -- grids and PNG ------------------------------------------------------------------------------
def test_grid_size_arithmetic():
    tile = np.zeros((10, 20, 3), np.uint8)
    # 5 images in 2 columns -> 3 rows of 96-pixel cells (the minimum) with 6-pixel padding.
    assert grid([tile] * 5, columns=2).shape == (3 * 96 + 4 * 6, 2 * 96 + 3 * 6, 3)
    assert grid([tile] * 5, cell=50, padding=0, columns=5).shape == (50, 250, 3)
    assert grid([np.zeros((150, 120, 3), np.uint8)] * 2).shape == (150 + 12, 2 * 150 + 18, 3)
    # Captions add the same text height to every row; a two-line caption, twice as much.
    plain = grid([tile] * 3).shape[0]
    one = grid([tile] * 3, captions=["a", "b", "c"]).shape[0]
    two = grid([tile] * 3, captions=["a", "b\nc", ""]).shape[0]
    assert one > plain and two - plain == 2 * (one - plain)


def test_grid_places_tiles_in_their_cells():
    red = np.zeros((96, 96, 3), np.uint8)
    red[..., 0] = 255
    out = grid([red, np.zeros((10, 20, 3), np.uint8)])
    assert out.shape == (108, 210, 3)
    assert (out[6:102, 6:102] == RED).all()
    assert (out[:6] == 255).all() and (out[:, 102:108] == 255).all()
    # 10x20 scaled by 96/20 (nearest) to 48x96, centred vertically in the second cell.
    dark = (out[:, 108:] != 255).any(axis=-1)
    rows, cols = np.nonzero(dark)
    assert (rows.min(), rows.max(), cols.min() + 108, cols.max() + 108) == (30, 77, 108, 203)


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="2 captions for 3 images"):
        grid([np.zeros((4, 4, 3), np.uint8)] * 3, captions=["a", "b"])
    with pytest.raises(ValueError, match="at least one image"):
        grid([])


def test_to_png_round_trip(image):
    data = to_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as png:
        assert png.mode == "RGB" and png.size == (8, 6)
        np.testing.assert_array_equal(np.asarray(png), image)
    floats = np.array([[[0.0, 0.5, 1.0]]], np.float32)  # [0, 1] floats are scaled to 0..255
    assert np.asarray(Image.open(io.BytesIO(to_png(floats)))).tolist() == [[[0, 128, 255]]]
    gray = np.array([[0, 7], [200, 255]], np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(to_png(gray))))
    np.testing.assert_array_equal(decoded, np.stack([gray] * 3, axis=-1))


# -- gradients and NaN --------------------------------------------------------------------------
def test_gradient_image_values():
    assert (gradient_image(np.zeros((4, 5, 3), np.float32)) == 128).all()  # mid-grey
    g = np.ones((2, 2, 3))
    g[0] = -1.0  # mean 0, std 1 -> 0.5 +- 0.1
    out = gradient_image(g * 1e-4)  # scale-free
    assert out.dtype == np.uint8
    assert (out[0] == 102).all() and (out[1] == 153).all()
    assert (gradient_image(np.full((3, 3, 3), np.nan)) == 128).all()


def test_nan_maps_render_as_zero(image):
    nan = np.full((6, 8), np.nan, np.float32)
    zero = np.zeros((6, 8), np.float32)
    for weighted in (False, True):
        np.testing.assert_array_equal(
            overlay(image, nan, 0.5, weighted=weighted),
            overlay(image, zero, 0.5, weighted=weighted),
        )
    np.testing.assert_array_equal(
        overlay(image, np.full((3, 4), np.nan), 0.5), overlay(image, zero)
    )
    partly = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    cleaned = partly.copy()
    partly[1, 2] = cleaned[1, 2] = np.nan
    cleaned[1, 2] = 0.0
    np.testing.assert_array_equal(overlay(image, partly), overlay(image, cleaned))
    np.testing.assert_array_equal(draw_contours(image, nan), image)
    np.testing.assert_array_equal(masked_image(image, nan, dim=0.0), np.zeros_like(image))


# -- edge cases: RGBA and wide-integer arrays, NaN, rounding ------------------------------------
def test_overlay_accepts_rgba_arrays(image):
    rgba = np.dstack([image, np.full((6, 8), 255, np.uint8)])
    np.testing.assert_array_equal(overlay(rgba, np.zeros((6, 8)), 0.0), image)


def test_one_nan_does_not_spread_when_resized(image):
    heat = np.full((3, 4), 0.7, np.float32)
    clean = heat.copy()
    heat[1, 1], clean[1, 1] = np.nan, 0.0
    np.testing.assert_array_equal(overlay(image, heat), overlay(image, clean))


def test_integer_images_are_not_rescaled():
    dark = np.ones((2, 2, 3), np.int64)  # values 0..255 held in a wider integer type
    np.testing.assert_array_equal(overlay(dark, np.zeros((2, 2)), 0.0), np.ones((2, 2, 3)))


def test_masked_image_rounds():
    out = masked_image(np.full((1, 1, 3), 255, np.uint8), np.zeros((1, 1)), dim=0.25)
    assert (out == 64).all()  # 63.75


def test_common_scale_puts_every_layer_on_one_scale():
    small = np.array([[0.0, 1.0], [2.0, -3.0]], np.float32)  # negative parts are cut to 0
    large = np.full((4, 4), 8.0, np.float32)
    scaled = common_scale({"early": small, "late": large}, (4, 4))
    assert scaled["late"].shape == scaled["early"].shape == (4, 4)
    np.testing.assert_allclose(scaled["late"], 1.0)
    assert scaled["early"].max() <= 2.0 / 8.0 + 1e-6 and scaled["early"].min() >= 0.0
    zeros = common_scale({"a": np.zeros((2, 2)), "b": -np.ones((2, 2))}, (3, 3))
    assert all(np.all(m == 0) and m.shape == (3, 3) for m in zeros.values())


def test_colormap_css_runs_from_low_to_high():
    lut = colormap_lut("jet")
    stops = [
        f"rgb({','.join(str(int(v)) for v in lut[i])}) {p}%"
        for i, p in ((0, 0), (128, 50), (255, 100))
    ]
    assert colormap_css("jet", stops=3) == "linear-gradient(90deg, " + ", ".join(stops) + ")"
    assert stops[0].startswith("rgb(0,0,") and stops[-1].startswith("rgb(128,0,0)")  # blue to red


def test_presentation_has_legend_model_date_and_opens_on_a_slide():
    from explain.narrative import legend_words
    from explain.report import Slide, legend_html, presentation_html

    assert legend_words("jet") == ("dark blue = mattered least", "red = mattered most")
    assert legend_words("inferno")[1] == "bright yellow = mattered most"
    assert "red = mattered most" in legend_html("jet") and colormap_css("jet") in legend_html()
    slides = [
        Slide(f"Slide {i}", f"Sentence {i} <b>", np.zeros((8, 8, 3), np.uint8)) for i in range(3)
    ]
    html = presentation_html(slides, model="builtin:shapes", date="3 December 2026", start=4)
    assert "Model: builtin:shapes · 3 December 2026" in html
    assert html.count("red = mattered most") == 3 and "show(1);" in html  # 4 % 3 slides
    assert "Sentence 0 &lt;b&gt;" in html  # text is escaped
    bare = presentation_html(slides, cmap=None)
    assert "mattered most" not in bare and "show(0);" in bare

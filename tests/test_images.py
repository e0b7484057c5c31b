"""Image reading: every mode a user may upload becomes the right RGB image, or a clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explain import ImageLoadError, load_image
from explain.errors import ImageTooLargeError, ImageTooSmallError
from explain.images import load_images


def _png(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def test_real_jpeg_photo(photo_paths):
    loaded = load_image(photo_paths[0])
    assert loaded.image.mode == "RGB"
    assert loaded.image.size == Image.open(photo_paths[0]).size
    assert loaded.name == photo_paths[0].name


def test_grayscale_becomes_three_equal_channels():
    gray = Image.fromarray(np.arange(64 * 32, dtype=np.uint32).reshape(32, 64).astype(np.uint8))
    rgb = np.asarray(load_image(_png(gray)).image)
    assert rgb.shape == (32, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.asarray(gray))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 257 * 100], [65535, 257 * 10]], dtype=np.uint16)
    img = Image.fromarray(np.kron(values, np.ones((8, 8), dtype=np.uint16)))
    assert img.mode.startswith("I")
    rgb = np.asarray(load_image(_png(img)).image)
    assert rgb[0, 0, 0] == 0 and rgb[0, 8, 0] == 100 and rgb[8, 0, 1] == 255 and rgb[8, 8, 2] == 10


def test_rgba_is_composited_on_white():
    arr = np.zeros((16, 16, 4), dtype=np.uint8)
    arr[..., 0] = 200  # red, fully transparent on the left half, opaque on the right
    arr[:, 8:, 3] = 255
    rgb = np.asarray(load_image(_png(Image.fromarray(arr, "RGBA"))).image)
    np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(rgb[0, 15], [200, 0, 0])


def test_palette_with_transparency_and_cmyk():
    pal = Image.new("P", (16, 16), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.info["transparency"] = 0
    np.testing.assert_array_equal(np.asarray(load_image(pal).image)[0, 0], [10, 20, 30])
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG", quality=95)
    red = np.asarray(load_image(buf.getvalue()).image)[8, 8].astype(int)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red, right half blue
    arr[:, 20:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    shown = np.asarray(load_image(buf.getvalue()).image)
    assert shown.shape == (40, 20, 3)
    assert shown[2, 10, 0] > 200 and shown[37, 10, 2] > 200  # red on top, blue below


def test_arrays_float_and_uint8():
    arr = np.full((10, 12, 3), 0.5, dtype=np.float32)
    assert np.asarray(load_image(arr).image)[0, 0, 0] == 128
    assert load_image(np.zeros((10, 12), dtype=np.uint8)).image.size == (12, 10)
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((10, 12, 5), dtype=np.uint8))


def test_not_an_image(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is text, not a JPEG")
    with pytest.raises(ImageLoadError, match="not an image file"):
        load_image(bad)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_truncated_jpeg(photo_paths):
    data = photo_paths[0].read_bytes()
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(data[: len(data) // 3])


def test_one_pixel_image_is_refused():
    with pytest.raises(ImageTooSmallError, match="1x1 pixels"):
        load_image(_png(Image.new("RGB", (1, 1))))


def test_huge_png_is_refused_before_decoding():
    # 20,000 x 20,000 pixels (400 MP); as a 1-bit PNG it is a small file.
    data = _png(Image.new("1", (20_000, 20_000)), optimize=False)
    assert len(data) < 2_000_000
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        load_image(data)


def test_big_jpeg_is_decoded_at_reduced_scale():
    img = Image.new("RGB", (4000, 3000), (10, 200, 30))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    loaded = load_image(buf.getvalue(), max_pixels=1_000_000, max_side=1000)
    assert max(loaded.image.size) <= 1000
    assert loaded.original_size == (4000, 3000)
    assert any("reduced scale" in note for note in loaded.notes)
    assert abs(int(np.asarray(loaded.image)[10, 10, 1]) - 200) < 8


def test_load_images_reports_and_keeps_going(tmp_path, photo_paths):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    loaded, skipped = load_images([photo_paths[0], bad, photo_paths[1]])
    assert [item.name for item in loaded] == [photo_paths[0].name, photo_paths[1].name]
    assert skipped[0][0] == "broken.png" and "truncated or corrupt" in skipped[0][1]

"""Write the sample photos shipped in ``explain/builtin/samples/`` from the copies that
scikit-image and scikit-learn bundle (licences in that folder's README.md).

    .venv/bin/python scripts/make_sample_photos.py

Each photo is resized so its longer side is at most 512 pixels and saved as a JPEG of at most
80 KB (quality lowered in steps of 5 from 90 until it fits).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "explain" / "builtin" / "samples"
MAX_SIDE = 512
MAX_BYTES = 80_000


def sources() -> dict[str, np.ndarray]:
    """File stem -> RGB uint8 array, from the packages' own loaders."""
    from skimage import data
    from sklearn.datasets import load_sample_image

    return {
        "chelsea-the-cat": data.chelsea(),
        "espresso": data.coffee(),
        "astronaut": data.astronaut(),
        "rocket-launch": data.rocket(),
        "chinese-palace": load_sample_image("china.jpg"),
        "dahlia": load_sample_image("flower.jpg"),
    }


def encode(image: Image.Image) -> bytes:
    for quality in range(90, 40, -5):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= MAX_BYTES:
            return buffer.getvalue()
    raise ValueError("cannot fit the photo in the size limit")


def main() -> int:
    for stem, array in sources().items():
        image = Image.fromarray(np.asarray(array, dtype=np.uint8)).convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        payload = encode(image)
        (OUT / f"{stem}.jpg").write_bytes(payload)
        print(f"{stem}.jpg {image.size[0]}x{image.size[1]} {len(payload) / 1000:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The caller's ``preprocess=`` argument turned into a preprocessor, alone or over a source's
own preprocessing."""

from __future__ import annotations

from typing import Any

from ..errors import ModelLoadError
from ..preprocessing import (
    IMAGENET_DEFAULT,
    CallablePreprocess,
    HFPreprocess,
    Preprocess,
    Preprocessor,
    with_overrides,
)


def as_preprocessor(preprocess: Any) -> tuple[Preprocessor, list[str]]:
    """``preprocess`` (``None``, a preprocessor, a dict or a callable ``PIL image -> (3, H, W)
    tensor``) as a preprocessor, with notes; ``None`` gives ImageNet's defaults."""
    if preprocess is None:
        return IMAGENET_DEFAULT, [
            "no preprocessing given: ImageNet defaults (resize 256, crop 224, ImageNet mean/std)."
        ]
    if isinstance(preprocess, Preprocess | HFPreprocess | CallablePreprocess):
        return preprocess, []
    if isinstance(preprocess, dict):
        return Preprocess.from_dict(preprocess), []
    if callable(preprocess):
        from PIL import Image

        sample = preprocess(Image.new("RGB", (64, 64)))
        return CallablePreprocess(preprocess, (int(sample.shape[-2]), int(sample.shape[-1]))), []
    raise ModelLoadError(
        f"preprocess={type(preprocess).__name__} is not understood.",
        hint="pass explain.Preprocess(...), a dict, or a callable PIL image -> (3, H, W) tensor.",
    )


def override_preprocessor(base: Preprocessor, preprocess: Any) -> Preprocessor:
    """The caller's preprocessing for a model that has its own: a dict replaces only the fields
    it names (see :func:`~explain.preprocessing.with_overrides`), anything else all of it."""
    if isinstance(preprocess, dict):
        try:
            return with_overrides(base, preprocess)
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"preprocess={preprocess!r} is not understood: {exc}") from exc
    return as_preprocessor(preprocess)[0]

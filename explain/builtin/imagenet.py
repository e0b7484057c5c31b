"""The 1,000 ImageNet-1k classes, offline: names (torchvision order) and WordNet ids.

Index ``i`` is the same class in both lists: torchvision's class order is the sorted list of the
1,000 WordNet ids (``n01440764`` = 0, tench), which is how ImageNet validation files, Pascal VOC
style box files and folder names refer to classes.
"""

from __future__ import annotations

import functools

from ..errors import ModelLoadError, TargetError


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 class names in index order, from torchvision's weights metadata (no download)."""
    import torchvision.models as tvm

    return tuple(tvm.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 WordNet ids in index order (``("n01440764", "n01443537", ...)``).

    Read from the synset list that ``timm`` ships with its package (no download).

    Raises:
        ModelLoadError: timm is not installed.
    """
    try:
        from timm.data import ImageNetInfo
    except ImportError as exc:
        raise ModelLoadError(
            "The ImageNet WordNet ids come with the package timm, which is not installed.",
            hint="pip install timm",
        ) from exc
    wnids = tuple(ImageNetInfo("imagenet-1k").label_names())
    if len(wnids) != 1000 or list(wnids) != sorted(wnids):
        raise ModelLoadError(
            f"timm's ImageNet-1k synset list is not the sorted 1,000 ({len(wnids)})."
        )
    return wnids


def wnid_index(wnid: str) -> int:
    """The class index of a WordNet id such as ``"n01440764"`` (0); a clear error otherwise."""
    wnids = imagenet_wnids()
    try:
        return wnids.index(wnid.strip())
    except ValueError as exc:
        raise TargetError(
            f"{wnid!r} is not one of the 1,000 ImageNet-1k WordNet ids.",
            hint="ImageNet-1k ids look like 'n01440764' (tench).",
        ) from exc

"""What the oracle tests share: random-init models behind handles (torchvision ResNet-18, a small
torchvision and a small timm vision transformer) and the comparison of two sets of maps."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (1 for two equal constant maps, 0 for unequal ones)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if a.std() == 0 and b.std() == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def agree(ours: np.ndarray, theirs: np.ndarray, threshold: float = 0.99) -> int:
    """Assert that every map of ours correlates with the reference's at ``threshold`` or more;
    return how many of ours carry a pattern (random-weight models can give an all-zero map for
    some class: callers check that most are informative, or the comparison proves nothing)."""
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        r = pearson(a, b)
        assert r >= threshold, f"image {i}: Pearson {r:.4f} < {threshold}"
    return int(sum(np.ptp(a) > 0 for a in ours))


def random_resnet18():
    """torchvision ResNet-18, random init (seed 0), 224 x 224 crops of 256 resizes."""
    import torchvision

    from explain import Preprocess, load_model

    torch.manual_seed(0)
    return load_model(
        torchvision.models.resnet18(weights=None).eval(),
        weights=None,
        device="cpu",
        labels=[str(i) for i in range(1000)],
        preprocess=Preprocess(input_size=(224, 224), resize=256),
    )


def small_vit() -> nn.Module:
    """torchvision ``VisionTransformer``: 64 x 64 input, 8 x 8 patches, 3 blocks, 10 classes."""
    import torchvision

    torch.manual_seed(3)
    vit = torchvision.models.VisionTransformer(
        image_size=64,
        patch_size=8,
        num_layers=3,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=10,
    ).eval()
    with torch.no_grad():  # torchvision zero-initialises the head; give it real weights
        vit.heads.head.weight.normal_(0, 0.5)
    return vit


def small_timm_vit(fused: bool = True, **kwargs) -> nn.Module:
    """timm ``VisionTransformer`` of the same size as :func:`small_vit`; ``fused`` chooses
    timm's scaled-dot-product-attention path or its explicit softmax."""
    import timm

    torch.manual_seed(3)
    vit = timm.models.VisionTransformer(
        img_size=64, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_classes=10, **kwargs
    ).eval()
    with torch.no_grad():
        vit.head.weight.normal_(0, 0.5)
    for block in vit.blocks:
        block.attn.fused_attn = fused
    return vit

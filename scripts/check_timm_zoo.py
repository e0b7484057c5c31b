"""Load a representative list of timm image classifiers with random weights, find each one's
default layer and stage layers, and compute one Grad-CAM on a real photo: a maintainer's check
that the ``timm:`` source and layer discovery work across timm's families (too slow for the
test suite). A model passes when its map is not constant; the share that passes is printed.

Parameters that timm initialises to zero (the heads of MLP-Mixer, ResMLP, Sequencer and Hiera,
LeViT's residual-branch BatchNorm gains) get small random values first: with them every
gradient, or every activation after the first block, is the same everywhere by construction,
so no map could vary. Names may carry ``timm.create_model`` arguments, as in the spec
(``vit_small_patch14_reg4_dinov2(num_classes=1000)`` for a backbone without a head).

    .venv/bin/python scripts/check_timm_zoo.py [NAME ...]
"""

from __future__ import annotations

import gc
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from explain import compute_cams, load_model

#: Small variants of each family (CNNs, mobile nets, ViT-like, hierarchical and hybrid
#: transformers, MLP and pooling mixers).
ARCHITECTURES = (
    # CNNs
    "resnet18",
    "resnet26d",
    "resnext26ts",
    "seresnext26d_32x4d",
    "res2net50_14w_8s",
    "regnetx_002",
    "regnety_002",
    "densenet121",
    "dla34",
    "dpn48b",
    "vgg11",
    "inception_v3",
    "cspdarknet53",
    "nf_resnet26",
    "repvgg_a0",
    "hrnet_w18_small",
    "ese_vovnet19b_dw",
    "hgnet_tiny",
    # mobile / efficient CNNs
    "efficientnet_b0",
    "efficientnet_lite0",
    "tf_efficientnetv2_b0",
    "mobilenetv2_050",
    "mobilenetv3_small_100",
    "mobilenetv4_conv_small",
    "mnasnet_small",
    "ghostnet_100",
    "rexnet_100",
    # ConvNeXt and relatives
    "convnext_atto",
    "convnextv2_atto",
    "inception_next_tiny",
    "edgenext_xx_small",
    "mambaout_femto",
    "starnet_s1",
    # MetaFormer / MLP
    "poolformer_s12",
    "poolformerv2_s12",
    "mixer_s32_224",
    "resmlp_12_224",
    "sequencer2d_s",
    # plain vision transformers (class / distillation / register tokens)
    "vit_tiny_patch16_224",
    "vit_small_patch14_reg4_dinov2(num_classes=1000)",  # its pretrained config has no head
    "vit_tiny_r_s16_p8_224",
    "deit_tiny_patch16_224",
    "deit_tiny_distilled_patch16_224",
    "eva02_tiny_patch14_224(num_classes=1000)",  # likewise
    "beit_base_patch16_224",
    "beitv2_base_patch16_224",
    "cait_xxs24_224",
    "xcit_nano_12_p16_224",
    "crossvit_tiny_240",
    # hierarchical transformers (channels-last Swin included)
    "swin_tiny_patch4_window7_224",
    "swinv2_tiny_window8_256",
    "swinv2_cr_tiny_ns_224",
    "pvt_v2_b0",
    "twins_pcpvt_small",
    "pit_ti_224",
    "focalnet_tiny_srf",
    "davit_tiny",
    "gcvit_xxtiny",
    "nest_tiny_jx",
    "mvitv2_tiny",
    "hiera_tiny_224",
    "coat_lite_tiny",
    # hybrids
    "maxvit_nano_rw_256",
    "maxvit_tiny_tf_224",
    "coatnet_nano_rw_224",
    "coatnet_0_rw_224",
    "levit_128s",
    "levit_conv_128s",
    "efficientformer_l1",
    "efficientformerv2_s0",
    "mobilevit_xxs",
    "mobilevitv2_050",
    "fastvit_t8",
    "tiny_vit_5m_224",
)

_PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "photos"


def _image() -> object:
    """A real photo when the shared data is there, else a fixed random image."""
    photos = sorted(_PHOTOS.glob("*.jpg")) if _PHOTOS.is_dir() else []
    if photos:
        return photos[0]
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)


def _randomise_zeros(model: torch.nn.Module) -> None:
    """Small random values for parameters initialised to all zeros (see the module doc)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.numel() and not param.any():
                param.copy_(0.02 * torch.randn(param.shape, generator=generator))


def main(names: list[str]) -> int:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    image = _image()
    failed = []
    chosen = names or list(ARCHITECTURES)
    for name in chosen:
        start = time.perf_counter()
        torch.manual_seed(0)  # the same random weights whatever runs before
        try:
            handle = load_model(f"timm:{name}", weights=None, device="cpu")
            _randomise_zeros(handle.model)
            layer = handle.default_layer
            res = compute_cams(handle, handle.preprocess([image]), layers=layer)
            spread = float(res.maps[layer].std())
            status = "ok" if spread > 1e-6 else "CONSTANT MAP"
            if status != "ok":
                failed.append(name)
            print(
                f"{name:48s} {handle.layer(layer).describe():60s} "
                f"{len(handle.stage_layers())} stages  std {spread:.3f}  "
                f"{time.perf_counter() - start:5.1f} s  {status}",
                flush=True,
            )
            del handle, res
        except Exception as exc:  # report every failure, keep going
            failed.append(name)
            print(f"{name:48s} FAILED {type(exc).__name__}: {exc}", flush=True)
        gc.collect()
    passed = len(chosen) - len(failed)
    print(
        f"\n{passed}/{len(chosen)} architectures work ({100 * passed / len(chosen):.1f} %)"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Tiny Hugging Face image classifiers built from configs (random weights), saved offline."""

from __future__ import annotations

from pathlib import Path

LABELS = {0: "ant", 1: "bee", 2: "cat", 3: "dog", 4: "eel"}


def make_hf_model(kind: str, folder: Path, with_processor: bool = True):
    """Build a small ``kind`` model, ``save_pretrained`` it (and a processor) to ``folder``."""
    import torch
    from transformers import (
        AutoModelForImageClassification,
        BeitConfig,
        ConvNextConfig,
        ConvNextImageProcessor,
        DeiTConfig,
        EfficientNetConfig,
        MobileNetV2Config,
        ResNetConfig,
        SwinConfig,
        ViTConfig,
        ViTImageProcessor,
    )

    common = {"id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}}
    vit_like = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "image_size": 64,
        "patch_size": 8,
    }
    configs = {
        "resnet": (
            ResNetConfig(
                embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], **common
            ),
            ConvNextImageProcessor(size={"shortest_edge": 96}, crop_pct=0.875),
        ),
        "convnext": (
            ConvNextConfig(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], **common),
            ConvNextImageProcessor(size={"shortest_edge": 96}, crop_pct=0.875),
        ),
        "vit": (
            ViTConfig(**vit_like, **common),
            ViTImageProcessor(size={"height": 64, "width": 64}),
        ),
        "deit": (
            DeiTConfig(
                **vit_like, architectures=["DeiTForImageClassificationWithTeacher"], **common
            ),
            ViTImageProcessor(size={"height": 64, "width": 64}),
        ),
        "beit": (
            BeitConfig(**vit_like, use_mean_pooling=True, **common),
            ViTImageProcessor(size={"height": 64, "width": 64}),
        ),
        "swin": (
            SwinConfig(
                image_size=64,
                patch_size=4,
                embed_dim=16,
                depths=[1, 1],
                num_heads=[2, 2],
                window_size=4,
                **common,
            ),
            ViTImageProcessor(size={"height": 64, "width": 64}),
        ),
        "efficientnet": (
            EfficientNetConfig(
                image_size=64,
                width_coefficient=0.25,
                depth_coefficient=0.2,
                hidden_dim=320,
                **common,
            ),
            None,
        ),
        "mobilenet_v2": (MobileNetV2Config(image_size=64, depth_multiplier=0.35, **common), None),
    }
    config, processor = configs[kind]
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(config).eval()
    model.save_pretrained(folder)
    if with_processor and processor is not None:
        processor.save_pretrained(folder)
    return model, processor

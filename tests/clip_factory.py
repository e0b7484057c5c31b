"""Tiny CLIP models with random weights, saved offline: a Hugging Face ``CLIPModel`` (with a
byte-level tokenizer and an image processor) and open_clip models with ViT and ResNet
(``ModifiedResNet``) image towers, each in a folder their library loads from."""

from __future__ import annotations

import json
from pathlib import Path

#: Token ids of the tiny tokenizer: 256 bytes, the same with an end-of-word mark, two specials.
BOS, EOS = 512, 513
TEXT_LENGTH = 16


def make_tokenizer(folder: Path):
    """A CLIP tokenizer over single bytes (no merges), saved to ``folder``."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_hf_clip(folder: Path, image_size: int = 32, with_processor: bool = True):
    """A 2-layer ViT CLIP (patch 8, width 32) and its tokenizer (and processor) in ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    config = CLIPConfig(
        text_config={
            "vocab_size": EOS + 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": TEXT_LENGTH,
            "bos_token_id": BOS,
            "eos_token_id": EOS,
            "pad_token_id": EOS,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer = make_tokenizer(folder)
    if with_processor:
        CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ).save_pretrained(folder)
    return model, tokenizer


#: open_clip configurations: a ViT tower (patch 8) and a ModifiedResNet tower (one block a stage).
OPEN_CLIP_TOWERS = {
    "vit": {"layers": 2, "width": 32, "head_width": 16, "patch_size": 8, "image_size": 32},
    "resnet": {"layers": [1, 1, 1, 1], "width": 16, "head_width": 8, "image_size": 64},
}


def make_open_clip(folder: Path, tower: str):
    """An open_clip CLIP with a ``tower`` ("vit" or "resnet") image tower, saved as a folder
    open_clip loads (``open_clip_config.json`` and ``open_clip_model.safetensors``)."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": OPEN_CLIP_TOWERS[tower],
        "text_cfg": {"context_length": TEXT_LENGTH, "width": 32, "heads": 2, "layers": 1},
    }
    torch.manual_seed(1)
    model = CLIP(**model_cfg).eval()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return model

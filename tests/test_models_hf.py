"""Hugging Face loading through local stand-ins: models saved with save_pretrained to tmp_path."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from hf_factory import LABELS, make_hf_model
from PIL import Image

from explain import ModelLoadError, NetworkError, load_model
from explain.layers import to_nchw

# kind -> (default layer, kind of its output, channels, grid, prefix tokens)
EXPECTED = {
    "resnet": ("resnet.encoder.stages.3", "spatial", 128, (3, 3), 0),
    "convnext": ("convnext.encoder.stages.3", "spatial", 128, (3, 3), 0),
    "vit": ("vit.layers.1.layernorm_before", "tokens", 64, (8, 8), 1),
    "deit": ("deit.layers.1.layernorm_before", "tokens", 64, (8, 8), 2),
    "beit": ("beit.layers.1.layernorm_after", "tokens", 64, (8, 8), 1),
    "swin": ("swin.layernorm", "tokens", 32, (8, 8), 0),
    "efficientnet": ("efficientnet.encoder.top_activation", "spatial", 320, (2, 2), 0),
    "mobilenet_v2": ("mobilenet_v2.conv_1x1", "spatial", 1280, (2, 2), 0),
}


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {kind: (root / kind, make_hf_model(kind, root / kind)) for kind in EXPECTED}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_hf_local_folder_loads_with_layers_and_same_logits(hf_folders, kind, photo_paths):
    folder, (hf_model, processor) = hf_folders[kind]
    handle = load_model(f"hf:{folder}", device="cpu")
    assert handle.source == "hf"
    assert handle.labels == [LABELS[i] for i in range(5)]
    layer, out_kind, channels, grid, prefix = EXPECTED[kind]
    assert handle.default_layer == layer
    info = handle.layer(layer)
    assert (info.kind, info.channels, info.grid, info.prefix_tokens) == (
        out_kind,
        channels,
        grid,
        prefix,
    )
    # The wrapper keeps Hugging Face's module paths and gives exactly the model's own logits.
    assert dict(handle.model.named_parameters()).keys() == dict(hf_model.named_parameters()).keys()
    image = Image.open(photo_paths[0])
    x = handle.preprocess([image])
    if processor is not None:
        expected_x = processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(x, expected_x)
    with torch.no_grad():
        expected = torch.softmax(hf_model(pixel_values=x).logits, dim=1).numpy()
    np.testing.assert_allclose(handle.predict(x), expected, rtol=1e-5, atol=1e-6)
    # The display images have the model's input geometry.
    assert handle.prepare([image]).shape == (1, *x.shape[-2:], 3)


def test_hf_token_layer_reshapes_to_grid(hf_folders):
    folder, _ = hf_folders["vit"]
    handle = load_model(f"hf:{folder}", device="cpu")
    info = handle.layer(handle.default_layer)
    tokens = torch.arange(2 * 65 * 64, dtype=torch.float32).reshape(2, 65, 64)
    grid = to_nchw(tokens, info)
    assert grid.shape == (2, 64, 8, 8)
    # Patch token k (after the class token) lands at row k // 8, column k % 8.
    torch.testing.assert_close(grid[1, :, 2, 3], tokens[1, 1 + 2 * 8 + 3])


def test_hf_random_weights_and_state_dict_file(hf_folders, tmp_path):
    folder, (hf_model, _) = hf_folders["resnet"]
    random = load_model(f"hf:{folder}", weights=None, device="cpu")
    assert "random weights" in " ".join(random.notes)
    random_state = random.model.state_dict()
    assert any(not torch.equal(random_state[k], v) for k, v in hf_model.state_dict().items())
    from safetensors.torch import save_file

    file = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in hf_model.state_dict().items()}, str(file))
    loaded = load_model(f"hf:{folder}", weights=str(file), device="cpu")
    for key, value in hf_model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value)


def test_hf_processor_missing_falls_back_to_config_size(tmp_path):
    make_hf_model("vit", tmp_path / "vit", with_processor=False)
    handle = load_model(f"hf:{tmp_path / 'vit'}", device="cpu")
    assert handle.input_size == (64, 64)
    assert any("no image processor" in note for note in handle.notes)


def test_hf_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="folder not found"):
        load_model(f"hf:{tmp_path / 'nope'}")


def test_hf_without_network_fails_fast_with_advice(monkeypatch):
    from explain.models import network

    monkeypatch.setattr(network, "reachable", lambda url, timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(NetworkError) as info:
        load_model("hf:some-org/some-model-that-is-not-cached")
    text = str(info.value)
    assert "some-org/some-model-that-is-not-cached" in text
    assert "not reachable" in text and "save_pretrained" in text and "builtin:shapes" in text
    assert time.perf_counter() - start < 30  # no retry loop with back-off


def test_hf_remote_code_is_never_run_implicitly(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "my-custom-net",
                "architectures": ["CustomModel"],
                "auto_map": {
                    "AutoConfig": "configuration_custom.CustomConfig",
                    "AutoModelForImageClassification": "modeling_custom.CustomModel",
                },
            }
        )
    )
    marker = tmp_path / "ran.txt"
    (tmp_path / "configuration_custom.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        load_model(f"hf:{tmp_path}")
    assert not marker.exists()


def test_hf_text_model_is_not_an_image_classifier(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not an image-classification model"):
        load_model(f"hf:{tmp_path}")

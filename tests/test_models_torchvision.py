"""torchvision loading offline: weights=None, state-dict files, checkpoint wrappers, the cache."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from explain import ModelLoadError, NetworkError, WeightsError, load_model, torchvision_classifiers
from explain.layers import to_nchw

# name -> (default layer, kind, layout, channels, grid, prefix tokens)
FAMILIES = {
    "resnet18": ("layer4", "spatial", "nchw", 512, (7, 7), 0),
    "resnet50": ("layer4", "spatial", "nchw", 2048, (7, 7), 0),
    "vgg16": ("features.29", "spatial", "nchw", 512, (14, 14), 0),
    "densenet121": ("features", "spatial", "nchw", 1024, (7, 7), 0),
    "mobilenet_v3_large": ("features", "spatial", "nchw", 960, (7, 7), 0),
    "efficientnet_b0": ("features", "spatial", "nchw", 1280, (7, 7), 0),
    "convnext_tiny": ("features", "spatial", "nchw", 768, (7, 7), 0),
    "regnet_y_400mf": ("trunk_output", "spatial", "nchw", 440, (7, 7), 0),
    "vit_b_16": ("encoder.layers.encoder_layer_11.ln_1", "tokens", "nlc", 768, (14, 14), 1),
    "swin_t": ("norm", "spatial", "nhwc", 768, (7, 7), 0),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_layers_and_default_layer(name):
    handle = load_model(f"torchvision:{name}", weights=None, device="cpu")
    layer, kind, layout, channels, grid, prefix = FAMILIES[name]
    assert handle.default_layer == layer
    info = handle.layer(layer)
    assert (info.kind, info.layout, info.channels, info.grid, info.prefix_tokens) == (
        kind,
        layout,
        channels,
        grid,
        prefix,
    )
    # Every module is listed by its path, in named_modules() order.
    assert [i.name for i in handle.layers] == [n for n, _ in handle.model.named_modules() if n]
    assert handle.labels[0] == "tench" and handle.num_classes == 1000
    assert handle.input_size == (224, 224)


def test_layer_kinds_of_a_vision_transformer():
    handle = load_model("torchvision:vit_b_16", weights=None, device="cpu")
    by_name = {i.name: i for i in handle.layers}
    assert by_name["conv_proj"].kind == "spatial" and by_name["conv_proj"].grid == (14, 14)
    assert by_name["encoder.layers.encoder_layer_3"].shape == (197, 768)
    assert by_name["heads.head"].kind == "vector" and by_name["heads.head"].shape == (1000,)
    # Patch tokens after the class token map onto the 14x14 grid, row-major.
    tokens = torch.randn(1, 197, 768)
    grid = to_nchw(tokens, by_name["encoder.layers.encoder_layer_3"])
    torch.testing.assert_close(grid[0, :, 5, 9], tokens[0, 1 + 5 * 14 + 9])


def test_swin_channels_last_maps_are_permuted():
    handle = load_model("torchvision:swin_t", weights=None, device="cpu")
    info = handle.layer("features.1")
    assert (info.layout, info.shape, info.grid, info.channels) == (
        "nhwc",
        (56, 56, 96),
        (56, 56),
        96,
    )
    act = torch.randn(2, 56, 56, 96)
    torch.testing.assert_close(to_nchw(act, info)[1, :, 3, 4], act[1, 3, 4])


def test_preprocessing_matches_the_weights_transforms(photo_paths):
    handle = load_model("torchvision:efficientnet_b0", weights=None, device="cpu")
    image = Image.open(photo_paths[3]).convert("RGB")
    expected = torchvision.models.EfficientNet_B0_Weights.DEFAULT.transforms()(image)
    torch.testing.assert_close(handle.preprocess([image])[0], expected, atol=1e-5, rtol=0)
    shown = handle.prepare([image])[0]
    assert shown.shape == (224, 224, 3) and shown.dtype == np.uint8


def test_every_classifier_name_is_known():
    names = torchvision_classifiers()
    assert {"resnet50", "vit_b_16", "swin_t", "convnext_tiny", "maxvit_t"} <= set(names)
    assert "fasterrcnn_resnet50_fpn" not in names


def test_unknown_and_non_classifier_names():
    with pytest.raises(ModelLoadError, match="did you mean resnet50"):
        load_model("torchvision:resnet5O", weights=None)
    with pytest.raises(ModelLoadError, match="not an image classifier"):
        load_model("torchvision:fasterrcnn_resnet50_fpn", weights=None)


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None).state_dict()


def _assert_same_weights(handle, state):
    own = handle.model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(own[key], value)


@pytest.mark.parametrize(
    "wrap", ["plain", "state_dict", "module_prefix", "compiled_prefix", "safetensors"]
)
def test_state_dict_files_and_wrappers(tmp_path, resnet18_state, wrap):
    path = tmp_path / ("w.safetensors" if wrap == "safetensors" else "w.pth")
    if wrap == "plain":
        torch.save(resnet18_state, path)
    elif wrap == "state_dict":
        torch.save({"epoch": 3, "best_acc": 0.7, "state_dict": resnet18_state}, path)
    elif wrap == "module_prefix":
        torch.save({"model": {f"module.{k}": v for k, v in resnet18_state.items()}}, path)
    elif wrap == "compiled_prefix":
        torch.save({f"_orig_mod.{k}": v for k, v in resnet18_state.items()}, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in resnet18_state.items()}, str(path))
    handle = load_model("torchvision:resnet18", weights=str(path), device="cpu")
    _assert_same_weights(handle, resnet18_state)


def test_state_dict_with_another_number_of_classes(tmp_path):
    torch.manual_seed(2)
    state = torchvision.models.resnet18(weights=None, num_classes=7).state_dict()
    torch.save(state, tmp_path / "seven.pth")
    handle = load_model("torchvision:resnet18", weights=tmp_path / "seven.pth", device="cpu")
    assert handle.num_classes == 7 and handle.labels[3] == "class 3"
    _assert_same_weights(handle, state)
    named = load_model(
        "torchvision:resnet18", weights=tmp_path / "seven.pth", device="cpu", labels=list("abcdefg")
    )
    assert named.labels == list("abcdefg")
    with pytest.raises(ModelLoadError, match="7 scores but 3 labels"):
        load_model("torchvision:resnet18", weights=tmp_path / "seven.pth", labels=["a", "b", "c"])


def test_state_dict_of_another_architecture_is_refused(tmp_path, resnet18_state):
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match="unexpected"):
        load_model("torchvision:resnet18", weights=tmp_path / "r34.pth")


def test_default_weights_come_from_the_hub_cache(tmp_path, monkeypatch, resnet18_state):
    # A file already in the cache is used without any network (a "pre-downloaded cache").
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    (tmp_path / "checkpoints").mkdir()
    torch.save(resnet18_state, tmp_path / "checkpoints" / url.rsplit("/", 1)[-1])
    handle = load_model("torchvision:resnet18", device="cpu")
    _assert_same_weights(handle, resnet18_state)
    assert handle.labels[0] == "tench"


def test_default_weights_without_network_is_a_clear_error(tmp_path, monkeypatch):
    from explain.models import network

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(network, "reachable", lambda url, timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(NetworkError) as info:
        load_model("torchvision:resnet50", weights="IMAGENET1K_V2")
    text = str(info.value)
    assert "torchvision:resnet50" in text and "resnet50-11ad3fa6.pth" in text
    assert "weights=None" in text and "builtin:shapes" in text
    assert time.perf_counter() - start < 30


def test_default_weights_download_really_attempted(tmp_path, monkeypatch):
    """The real download path: no network on test machines, so it ends in a NetworkError."""
    from explain.models.network import reachable

    if reachable(torchvision.models.ResNet18_Weights.DEFAULT.url):
        pytest.skip("this machine reaches download.pytorch.org; the offline path is untestable")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(NetworkError, match="resnet18"):
        load_model("torchvision:resnet18")


def test_bad_weights_argument():
    with pytest.raises(ModelLoadError, match="IMAGENET1K_V1"):
        load_model("torchvision:resnet18", weights=12)


@pytest.mark.parametrize(
    ("name", "stages", "blocks"),
    [
        ("resnet50", ["layer1", "layer2", "layer3", "layer4"], 16),
        ("vgg16", ["features.3", "features.8", "features.15", "features.22", "features.29"], 26),
        ("swin_t", ["features.1", "features.3", "features.5", "norm"], 15),
        (
            "vit_b_16",
            [
                "encoder.layers.encoder_layer_0",
                "encoder.layers.encoder_layer_4",
                "encoder.layers.encoder_layer_7",
                "encoder.layers.encoder_layer_11.ln_1",
            ],
            12,
        ),
    ],
)
def test_suggested_layers_for_comparisons(name, stages, blocks):
    handle = load_model(f"torchvision:{name}", weights=None, device="cpu")
    assert handle.stage_layers() == stages
    assert len(handle.block_layers()) == blocks
    assert all(handle.layer(n).has_map for n in handle.block_layers())

"""The ``timm:`` source offline: preprocessing and labels from the pretrained config, the real
pretrained path through a local hub-cache stand-in, local weights files with key checks, a clear
error without network, default layers per family, and Grad-CAM on a timm ViT and Swin against
pytorch-grad-cam with the same reshape."""

from __future__ import annotations

import huggingface_hub.constants as hub_constants
import pytest
import torch
from PIL import Image
from reference_models import agree
from safetensors.torch import save_file

from explain import (
    AttentionError,
    ModelLoadError,
    NetworkError,
    WeightsError,
    applicable_methods,
    compute_cams,
    load_model,
)
from explain.builtin.imagenet import imagenet_labels
from explain.hooks import Hooks
from explain.models import network

timm = pytest.importorskip("timm")

VIT = "timm:vit_tiny_patch16_224(img_size=96, depth=2)"
SWIN = "timm:swin_tiny_patch4_window7_224(img_size=96, depths=(1, 1, 1, 1), embed_dim=24)"
SMALL = {"input_size": 96}  # CNNs take any size: keep them small


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return load_model(VIT, weights=None, device="cpu")


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return load_model(SWIN, weights=None, device="cpu")


def test_preprocessing_and_labels_follow_the_pretrained_config(photo_paths):
    handle = load_model("timm:resnet10t", weights=None, device="cpu")
    assert handle.source == "timm" and handle.spec == "timm:resnet10t"
    assert handle.labels == list(imagenet_labels()) and handle.labels[0] == "tench"
    config = timm.data.resolve_model_data_config(handle.model)
    assert config["input_size"] == (3, 176, 176) and config["crop_pct"] == 0.875
    assert config["interpolation"] == "bicubic"
    expected = timm.data.create_transform(**config)
    images = [Image.open(p).convert("RGB") for p in photo_paths[:2]]
    ours = handle.preprocess(images)
    assert ours.shape == (2, 3, 176, 176) and handle.input_size == (176, 176)
    for image, tensor in zip(images, ours, strict=True):
        torch.testing.assert_close(tensor, expected(image), atol=1e-5, rtol=0)
    assert handle.preprocessor.resize == 201  # floor(176 / 0.875), as timm


def test_img_size_argument_sets_the_input_size(vit, photo_paths):
    assert vit.input_size == (96, 96)
    assert vit.spec == "timm:vit_tiny_patch16_224(depth=2, img_size=96)"
    config = timm.data.resolve_data_config({"input_size": (3, 96, 96)}, model=vit.model)
    expected = timm.data.create_transform(**config)
    image = Image.open(photo_paths[4]).convert("RGB")
    torch.testing.assert_close(vit.preprocess([image])[0], expected(image), atol=1e-5, rtol=0)
    assert vit.preprocessor.mean == (0.5, 0.5, 0.5)


def test_labels_from_the_config_label_names_and_descriptions():
    overlay = {
        "label_names": ["n01", "n02", "n03"],
        "label_descriptions": {"n01": "cat", "n02": "dog", "n03": "bird"},
    }
    handle = load_model(
        "timm:resnet10t",
        weights=None,
        device="cpu",
        preprocess=SMALL,
        model_args={"num_classes": 3, "pretrained_cfg_overlay": overlay},
    )
    assert handle.labels == ["cat", "dog", "bird"]
    assert handle.class_index("dog") == 1


def _hub_cache_stand_in(root, repo: str, state: dict) -> None:
    """A Hugging Face cache holding ``model.safetensors`` of ``repo``, as a download leaves it."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    save_file(state, folder / "snapshots" / commit / "model.safetensors")


def test_pretrained_weights_come_through_timm_from_the_hub_cache(tmp_path, monkeypatch):
    """The real path, ``timm.create_model(name, pretrained=True)``, with a cached file."""
    repo = timm.models.get_pretrained_cfg("resnet10t").hf_hub_id
    torch.manual_seed(1)
    trained = timm.create_model("resnet10t").eval()
    _hub_cache_stand_in(tmp_path, repo, trained.state_dict())
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    handle = load_model("timm:resnet10t", device="cpu", preprocess=SMALL)
    assert not any("random" in note for note in handle.notes)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(handle.logits(x), trained(x), atol=1e-5, rtol=1e-5)


def test_pretrained_weights_without_network_fail_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    monkeypatch.setattr(network, "reachable", lambda url, timeout=3.0: False)
    downloads = []  # timm (and its retrying hub client) is never asked for the weights
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: downloads.append(a) or 1 / 0)
    with pytest.raises(NetworkError) as info:
        load_model("timm:resnet10t.c3_in1k", device="cpu")
    assert not downloads
    text = str(info.value)
    assert "timm:resnet10t.c3_in1k" in text and "timm/resnet10t.c3_in1k" in text
    assert "not reachable" in text and "weights=None" in text and "weights.safetensors" in text
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1: same answer
    monkeypatch.setattr(network, "reachable", lambda url, timeout=3.0: True)
    with pytest.raises(NetworkError, match="not reachable"):
        load_model("timm:resnet10t", device="cpu")


def test_pretrained_download_really_attempted(tmp_path, monkeypatch):
    """No network on test machines: the unpatched path ends in a NetworkError."""
    if network.hub_reachable():
        pytest.skip("this machine reaches the Hugging Face hub; the offline path is untestable")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(NetworkError, match="resnet10t"):
        load_model("timm:resnet10t", device="cpu")


def test_local_weights_file_with_head_and_key_checks(tmp_path):
    torch.manual_seed(2)
    trained = timm.create_model("resnet10t", num_classes=5).eval()
    path = tmp_path / "resnet10t-5.safetensors"
    save_file(trained.state_dict(), path)
    handle = load_model("timm:resnet10t", weights=path, device="cpu", preprocess=SMALL)
    assert handle.num_classes == 5 and handle.labels == [f"class {i}" for i in range(5)]
    assert any("resized to the file's 5 classes" in note for note in handle.notes)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(handle.logits(x), trained(x), atol=1e-5, rtol=1e-5)
    # A state dict of another architecture: refused with the keys that do not fit.
    other = tmp_path / "other.pth"
    torch.save({"state_dict": timm.create_model("mobilenetv3_small_050").state_dict()}, other)
    with pytest.raises(WeightsError, match="does not fit"):
        load_model("timm:resnet10t", weights=other, device="cpu")


def test_bad_timm_specs():
    with pytest.raises(ModelLoadError, match="'resnet1000' is not a timm model") as info:
        load_model("timm:resnet1000", weights=None)
    assert "resnet" in str(info.value)  # close names suggested
    with pytest.raises(ModelLoadError, match="no pretrained tag"):
        load_model("timm:resnet10t.nope", weights=None)
    with pytest.raises(ModelLoadError, match="does not accept"):
        load_model("timm:resnet10t(no_such_argument=1)", weights=None)
    with pytest.raises(ModelLoadError, match="no classifier head"):
        load_model("timm:vit_small_patch14_dinov2(depth=1, img_size=56)", weights=None)
    with pytest.raises(ModelLoadError, match="not understood"):
        load_model("timm:resnet10t", weights=12)


# spec -> (default layer, kind, layout, grid, prefix tokens)
FAMILIES = {
    "timm:resnet10t": ("layer4", "spatial", "nchw", (3, 3), 0),
    "timm:mobilenetv3_small_050": ("blocks", "spatial", "nchw", (3, 3), 0),
    "timm:efficientnet_b0": ("bn2", "spatial", "nchw", (3, 3), 0),
    "timm:convnext_atto": ("stages", "spatial", "nchw", (3, 3), 0),
    VIT: ("blocks.1.norm1", "tokens", "nlc", (6, 6), 1),
    "timm:deit_tiny_distilled_patch16_224(img_size=96, depth=2)": (
        "blocks.1.norm1",
        "tokens",
        "nlc",
        (6, 6),
        2,
    ),
    # EVA and BEiT average the patch tokens: the last block's second norm still reaches the head.
    "timm:eva02_tiny_patch14_224(img_size=112, depth=2, num_classes=10)": (
        "blocks.1.norm2",
        "tokens",
        "nlc",
        (8, 8),
        1,
    ),
    "timm:beit_base_patch16_224(img_size=96, depth=2, embed_dim=96, num_heads=2)": (
        "blocks.1.norm2",
        "tokens",
        "nlc",
        (6, 6),
        1,
    ),
    SWIN: ("norm", "spatial", "nhwc", (3, 3), 0),
    "timm:maxvit_nano_rw_256(img_size=128)": ("norm", "spatial", "nchw", (4, 4), 0),
    "timm:coatnet_nano_rw_224(img_size=128)": ("norm", "spatial", "nchw", (4, 4), 0),
    # CaiT: the class-attention blocks' second norm holds the class token alone (no map).
    "timm:cait_xxs24_224(img_size=96, depth=2)": (
        "blocks_token_only.1.norm1",
        "tokens",
        "nlc",
        (6, 6),
        1,
    ),
    # PiT: its stages return (patch map, class tokens); the map after the last stage never
    # reaches the head, the last block's first norm does.
    "timm:pit_ti_224(img_size=112)": ("transformers.2.blocks.3.norm1", "tokens", "nlc", (4, 4), 1),
    # LeViT: ``LinearNorm`` (a linear layer with BatchNorm) is not a normalisation layer.
    "timm:levit_128s(img_size=96)": ("stages", "tokens", "nlc", (2, 2), 0),
}


@pytest.mark.parametrize("spec", list(FAMILIES))
def test_default_layer_per_family(spec, photo_paths):
    preprocess = None if "img_size" in spec else SMALL
    torch.manual_seed(0)
    handle = load_model(spec, weights=None, device="cpu", preprocess=preprocess)
    layer, kind, layout, grid, prefix = FAMILIES[spec]
    assert handle.default_layer == layer
    info = handle.layer(layer)
    assert (info.kind, info.layout, info.grid, info.prefix_tokens) == (kind, layout, grid, prefix)
    # The scores depend on the default layer's map (patch tokens, not only the class token).
    x = handle.preprocess(photo_paths[:1])
    with Hooks(handle.model).record([layer], copy=False) as hooks, torch.enable_grad():
        logits = handle.model(x)
    projection = torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((logits * projection).sum(), hooks.outputs[layer])
    assert float(grad[:, prefix:].abs().sum()) > 0


def _grad_cam_oracle(handle, x, layer, classes, reshape):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = dict(handle.model.named_modules())[layer]
    with pgc.GradCAM(model=handle.model, target_layers=[module], reshape_transform=reshape) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])


def test_grad_cam_on_a_timm_vit_matches_pytorch_grad_cam(vit, photo_paths):
    x = vit.preprocess(photo_paths[:3])
    layer = vit.default_layer
    classes = [1, 500, 999]

    def reshape(t: torch.Tensor) -> torch.Tensor:  # the token -> grid reshape, by hand
        return t[:, 1:, :].reshape(t.shape[0], 6, 6, t.shape[-1]).permute(0, 3, 1, 2)

    ours = compute_cams(vit, x, layers=layer, targets=classes)
    theirs = _grad_cam_oracle(vit, x, layer, classes, reshape)
    assert agree(ours.maps[layer], theirs) == 3


def test_attention_methods_name_swins_windowed_attention(swin):
    ok, skipped = applicable_methods(swin)
    assert set(skipped) == {"rollout", "chefer", "legrad"} and "gradcam" in ok
    with pytest.raises(AttentionError, match="within local windows"):
        compute_cams(swin, torch.zeros(1, 3, 96, 96), method="rollout")


def test_grad_cam_on_a_timm_swin_matches_pytorch_grad_cam(swin, photo_paths):
    x = swin.preprocess(photo_paths[:3])
    classes = [3, 250, 700]
    for layer in (swin.default_layer, "layers.2"):
        assert swin.layer(layer).layout == "nhwc"
        ours = compute_cams(swin, x, layers=layer, targets=classes)
        theirs = _grad_cam_oracle(swin, x, layer, classes, lambda t: t.permute(0, 3, 1, 2))
        assert agree(ours.maps[layer], theirs) == 3

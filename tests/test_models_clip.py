"""CLIP models whose classes are text prompts: a tiny random Hugging Face ``CLIPModel`` and
open_clip models with ViT and ResNet towers, saved to temporary folders and loaded through the
``clip:`` and ``open_clip:`` sources.

Checked against the models themselves: the logits are the model's own ``logits_per_image``
(bit for bit), Grad-CAM equals a Grad-CAM computed by hand (a hook on the original model, autograd
on its own logits), the contrast target is the difference of two logits, attention rollout equals
the rollout of the attention weights Hugging Face returns, and changing the prompts reuses the
loaded modules and encodes each new prompt once.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from clip_factory import TEXT_LENGTH, make_hf_clip, make_open_clip

from explain import (
    AttentionError,
    Contrast,
    ModelLoadError,
    NetworkError,
    PromptError,
    compute_cams,
    load_model,
)
from explain.models import network
from explain.models.prompts import check_prompts
from explain.targets import resolve_targets

PROMPTS = ["a photo of a fish", "a dog wearing a hat", "a stop sign"]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model, tokenizer = make_hf_clip(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def hf_clip(hf_folder):
    return load_model(f"clip:{hf_folder[0]}", prompts=PROMPTS, device="cpu")


@pytest.fixture(scope="module")
def photos(hf_clip, photo_paths):
    return hf_clip.preprocess(photo_paths[:3])


def _own_logits(model, tokenizer, prompts, x, **kwargs):
    """``logits_per_image`` of the original CLIPModel (prompts tokenised as the source does)."""
    tokens = tokenizer(
        prompts, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt"
    )
    out = model(
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        pixel_values=x,
        **kwargs,
    )
    return out


def _hand_grad_cam(model, module, logits_fn, score_fn, tokens_first: int | None):
    """Grad-CAM by hand: a forward hook keeps ``module``'s output, autograd takes the score's
    gradient with respect to it; ``tokens_first`` drops that many prefix tokens of a token
    output (N, T, C) and lays the rest on a square grid."""
    kept = {}
    hook = module.register_forward_hook(lambda _m, _i, out: kept.setdefault("a", out))
    try:
        logits = logits_fn()
    finally:
        hook.remove()
    acts = kept["a"]
    (grads,) = torch.autograd.grad(score_fn(logits).sum(), acts)
    if tokens_first is not None:
        side = math.isqrt(acts.shape[1] - tokens_first)

        def grid(t):
            return t[:, tokens_first:].reshape(len(t), side, side, -1).permute(0, 3, 1, 2)

        acts, grads = grid(acts), grid(grads)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * acts).sum(dim=1)).detach().numpy()


# -- the Hugging Face source ------------------------------------------------------------------------
def test_clip_logits_are_the_models_own_logits_per_image(hf_clip, hf_folder, photos):
    _, model, tokenizer = hf_folder
    assert hf_clip.source == "clip"
    assert hf_clip.labels == PROMPTS == hf_clip.prompts
    with torch.no_grad():
        own = _own_logits(model, tokenizer, PROMPTS, photos).logits_per_image
    ours = hf_clip.logits(photos)
    assert torch.equal(ours, own)
    # Zero-shot prediction: the softmax over the prompts of those similarities.
    np.testing.assert_allclose(hf_clip.predict(photos), own.softmax(dim=1).numpy(), rtol=1e-6)
    # The image tower's layers only; the ViT default layer as for any ViT.
    assert hf_clip.default_layer == "vision_model.encoder.layers.1.layer_norm1"
    assert not any(info.name.startswith("text") for info in hf_clip.layers)
    info = hf_clip.layer(hf_clip.default_layer)
    assert (info.kind, info.grid, info.prefix_tokens) == ("tokens", (4, 4), 1)


def test_clip_grad_cam_matches_a_hand_computed_one(hf_clip, hf_folder, photos):
    _, model, tokenizer = hf_folder
    layer = model.vision_model.encoder.layers[-1].layer_norm1
    for target in (0, "a stop sign"):
        index = hf_clip.class_index(target)
        expected = _hand_grad_cam(
            model,
            layer,
            lambda: _own_logits(model, tokenizer, PROMPTS, photos).logits_per_image,
            lambda z, i=index: z[:, i],
            tokens_first=1,
        )
        res = compute_cams(hf_clip, photos, method="gradcam", targets=target)
        np.testing.assert_allclose(res.raw[hf_clip.default_layer], expected, rtol=1e-4, atol=1e-6)
        assert res.target_names == [[PROMPTS[index]]] * 3


def test_contrast_explains_the_difference_of_two_logits(hf_clip, hf_folder, photos):
    _, model, tokenizer = hf_folder
    logits = hf_clip.logits(photos)
    contrast = Contrast("a dog wearing a hat", "a stop sign")
    resolved = resolve_targets(contrast, logits, hf_clip.labels, hf_clip.class_index)
    torch.testing.assert_close(resolved.score_fn(logits)[:, 0], logits[:, 1] - logits[:, 2])
    expected = _hand_grad_cam(
        model,
        model.vision_model.encoder.layers[-1].layer_norm1,
        lambda: _own_logits(model, tokenizer, PROMPTS, photos).logits_per_image,
        lambda z: z[:, 1] - z[:, 2],
        tokens_first=1,
    )
    res = compute_cams(hf_clip, photos, method="gradcam", targets=contrast)
    np.testing.assert_allclose(res.raw[hf_clip.default_layer], expected, rtol=1e-4, atol=1e-6)
    assert res.target_names[0] == ["a dog wearing a hat rather than a stop sign"]
    # Contrast(None, b): each image's top prompt (its second when the top one is b).
    top2 = logits.topk(2, dim=1).indices
    auto = resolve_targets(Contrast(None, 0), logits, hf_clip.labels, hf_clip.class_index)
    chosen = torch.where(top2[:, 0] == 0, top2[:, 1], top2[:, 0])
    assert auto.indices[:, 0].tolist() == chosen.tolist()
    torch.testing.assert_close(
        auto.score_fn(logits)[:, 0], logits.gather(1, chosen[:, None])[:, 0] - logits[:, 0]
    )


def test_attention_rollout_on_clip_equals_the_rollout_of_its_own_attentions(hf_clip, hf_folder):
    from transformers import CLIPModel

    eager = CLIPModel.from_pretrained(hf_folder[0], attn_implementation="eager").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        attentions = eager.vision_model(pixel_values=x, output_attentions=True).attentions
    eye = torch.eye(attentions[0].shape[-1])
    relevance = eye.expand(2, -1, -1)
    for a in attentions:
        relevance = ((a.mean(dim=1) + eye) / 2) @ relevance
    expected = relevance[:, 0, 1:].reshape(2, 4, 4).numpy()
    res = compute_cams(hf_clip, x, method="rollout")
    np.testing.assert_allclose(res.raw[hf_clip.default_layer], expected, rtol=1e-5, atol=1e-7)
    # Class-specific methods give each prompt its own map.
    maps = compute_cams(hf_clip, x, method="chefer", targets=Contrast(0, 1)).raw
    again = compute_cams(hf_clip, x, method="chefer", targets=Contrast(1, 0)).raw
    assert not np.allclose(maps[hf_clip.default_layer], again[hf_clip.default_layer])


def test_changing_prompts_reuses_the_loaded_model(hf_clip, hf_folder, photos):
    _, model, tokenizer = hf_folder
    encoder = hf_clip.model.encoder
    before = encoder.cached
    fingerprint = hf_clip.fingerprint
    other = hf_clip.with_prompts("a dog wearing a hat\na red bicycle")
    assert other.labels == ["a dog wearing a hat", "a red bicycle"]
    assert hf_clip.labels == PROMPTS  # the original handle is unchanged
    assert other.model.vision_model is hf_clip.model.vision_model
    assert other.model.encoder is encoder and other.lock is hf_clip.lock
    assert encoder.cached == before + 1  # only the new prompt was encoded
    assert other.fingerprint != fingerprint
    with torch.no_grad():
        own = _own_logits(model, tokenizer, other.labels, photos).logits_per_image
    # Equal up to rounding: the cached embedding was computed in another batch of prompts.
    torch.testing.assert_close(other.logits(photos), own, rtol=1e-6, atol=1e-6)
    # In place, for a handle nobody else uses.
    twin = hf_clip.with_prompts(PROMPTS)
    assert twin.fingerprint == fingerprint
    twin.set_prompts(["a red bicycle", "a stop sign"])
    assert twin.labels == twin.prompts == ["a red bicycle", "a stop sign"]
    assert twin.model.vision_model is hf_clip.model.vision_model
    assert encoder.cached == before + 1
    assert twin.fingerprint not in (fingerprint, other.fingerprint)
    with torch.no_grad():
        own = _own_logits(model, tokenizer, twin.labels, photos).logits_per_image
    torch.testing.assert_close(twin.logits(photos), own, rtol=1e-6, atol=1e-6)
    # A worker of a distributed run rebuilds the model with the prompts asked now.
    assert hf_clip.recipe.prompts == tuple(PROMPTS)
    assert twin.recipe.prompts == ("a red bicycle", "a stop sign")
    rebuilt = twin.recipe.load(device="cpu")
    assert rebuilt.labels == twin.labels
    torch.testing.assert_close(rebuilt.logits(photos), twin.logits(photos), rtol=1e-5, atol=1e-5)


def test_prompt_errors_are_clear(hf_clip, hf_folder, small_cnn):
    folder = hf_folder[0]
    for bad in ([], ["", "  "], None):
        with pytest.raises(PromptError):
            load_model(f"clip:{folder}", prompts=bad, device="cpu")
    with pytest.raises(PromptError, match="given twice"):
        hf_clip.with_prompts(["a dog", "A  dog"])
    with pytest.raises(PromptError, match="labels do not apply"):
        load_model(f"clip:{folder}", labels=["a", "b"], prompts=["a"], device="cpu")
    with pytest.raises(PromptError, match="takes no prompts"):
        load_model("builtin:shapes", prompts=["a dog"])
    with pytest.raises(PromptError, match="takes no text prompts"):
        small_cnn.with_prompts(["a dog"])
    assert small_cnn.prompts is None
    assert check_prompts(" a  dog ;a cat\n\nA car") == ["a dog", "a cat", "A car"]


def test_bad_clip_specs_and_no_network_are_clear(hf_folder, tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="folder not found"):
        load_model(f"clip:{tmp_path / 'missing'}", prompts=["a dog"])
    # A folder without a tokenizer cannot encode prompts.
    bare = tmp_path / "no-tokenizer"
    hf_folder[1].save_pretrained(bare)
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(f"clip:{bare}", prompts=["a dog"], device="cpu")
    # An image classifier is not a CLIP model.
    from hf_factory import make_hf_model

    make_hf_model("vit", tmp_path / "vit")
    with pytest.raises(ModelLoadError, match="not a CLIP-style model"):
        load_model(f"clip:{tmp_path / 'vit'}", prompts=["a dog"], device="cpu")
    monkeypatch.setattr(network, "hub_reachable", lambda: False)
    with pytest.raises(NetworkError, match="not reachable"):
        load_model("clip:openai/clip-vit-base-patch32", prompts=["a dog"])
    with pytest.raises(NetworkError, match="not reachable"):
        load_model("open_clip:ViT-B-32", prompts=["a dog"])
    with pytest.raises(ModelLoadError, match="no pretrained tag"):
        load_model("open_clip:ViT-B-32.nonsense", prompts=["a dog"])
    with pytest.raises(ModelLoadError, match="not an open_clip model"):
        load_model("open_clip:ViT-B-33", prompts=["a dog"])
    with pytest.raises(ModelLoadError, match=r"open_clip_config\.json"):
        load_model(f"open_clip:{tmp_path}", prompts=["a dog"])


def test_clip_folder_without_image_processor_uses_clips_preprocessing(hf_folder, tmp_path):
    folder = tmp_path / "no-processor"
    shutil.copytree(hf_folder[0], folder)
    (folder / "preprocessor_config.json").unlink()
    handle = load_model(f"clip:{folder}", prompts=["a dog", "a cat"], device="cpu")
    assert handle.input_size == (32, 32)
    assert any("CLIP's own preprocessing" in note for note in handle.notes)
    assert handle.preprocessor.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))


# -- open_clip --------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["vit", "resnet"])
def open_clip_model(request, tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip") / request.param
    original = make_open_clip(folder, request.param)
    handle = load_model(f"open_clip:{folder}", prompts=PROMPTS, device="cpu")
    tokens = open_clip.get_tokenizer(f"local-dir:{folder}")(PROMPTS)
    return request.param, original, handle, tokens


def test_open_clip_logits_and_grad_cam_match_the_model(open_clip_model, photo_paths):
    tower, original, handle, tokens = open_clip_model
    assert handle.source == "open_clip"
    x = handle.preprocess(photo_paths[:2])
    with torch.no_grad():
        own, _ = original.get_logits(x, tokens)
    assert torch.equal(handle.logits(x), own)
    expected_layer = {"vit": "visual.transformer.resblocks.1.ln_1", "resnet": "visual.layer4"}
    assert handle.default_layer == expected_layer[tower]
    module = dict(original.named_modules())[handle.default_layer]
    expected = _hand_grad_cam(
        original,
        module,
        lambda: original.get_logits(x, tokens)[0],
        lambda z: z[:, 1] - z[:, 0],
        tokens_first=1 if tower == "vit" else None,
    )
    res = compute_cams(handle, x, method="gradcam", targets=Contrast(1, 0))
    np.testing.assert_allclose(res.raw[handle.default_layer], expected, rtol=1e-4, atol=1e-6)
    if tower == "resnet":  # attention pooling is no transformer block
        with pytest.raises(AttentionError, match="no transformer blocks"):
            compute_cams(handle, x, method="rollout")
    else:
        assert compute_cams(handle, x, method="legrad").raw[handle.default_layer].std() > 0


def test_moving_the_model_moves_the_text_tower(hf_folder, photos):
    # .to(...) on the classifier also converts the text tower (not a registered child), so
    # prompts asked for later are encoded where, and in the precision that, the model runs.
    handle = load_model(f"clip:{hf_folder[0]}", prompts=PROMPTS, device="cpu")
    single = handle.logits(photos)
    handle.model.to(torch.float64)
    text_weight = handle.model.clip.text_model.embeddings.token_embedding.weight
    assert text_weight.dtype == torch.float64
    other = handle.with_prompts([*PROMPTS, "a red bicycle"])
    assert other.model.text_features.dtype == torch.float64
    with torch.no_grad():
        double = other.model(photos.double())
    torch.testing.assert_close(double[:, :3].float(), single, rtol=1e-5, atol=1e-5)

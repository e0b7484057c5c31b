"""Transformer-native methods (attention rollout, Chefer's relevancy, LeGrad): exact numbers on a
hand-made attention model, LeGrad against torchcam, the attention capture on torchvision, timm
and Hugging Face vision transformers, and its clean-up.

The hand-made model has three tokens of width 1 (a class token ``c = 1`` and the two pixels
``a = 2``, ``b = 4`` of a 1 x 2 image), two blocks ``z <- z + mean_h(P_h) z`` whose two heads
have fixed attention probabilities, and logits ``(z[cls], -z[cls])``:

    P1a = [[1/2, 1/4, 1/4], [1/4, 1/2, 1/4], [1/4, 1/4, 1/2]]
    P1b = [[1/4, 1/2, 1/4], [1/2, 1/4, 1/4], [1/4, 1/4, 1/2]]
    P2a = [[1/4, 1/4, 1/2], [1/4, 1/2, 1/4], [1/2, 1/4, 1/4]]
    P2b = [[1/2, 1/4, 1/4], [1/4, 1/4, 1/2], [1/4, 1/2, 1/4]]

so the head means are A1 = [[3/8, 3/8, 1/4], [3/8, 3/8, 1/4], [1/4, 1/4, 1/2]] and
A2 = [[3/8, 1/4, 3/8], [1/4, 3/8, 3/8], [3/8, 3/8, 1/4]]; z0 = (1, 2, 4),
z1 = z0 + A1 z0 = (25/8, 33/8, 27/4), and S0 = z2[cls] = z1[0] + A2[0] . z1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_models import pearson, small_timm_vit, small_vit
from torch import nn

from explain import AttentionError, LayerError, Preprocess, TopK, compute_cams, load_model
from explain.cams.attention import AttentionCapture

Q, H = 0.25, 0.5
PROBS = [
    [[[H, Q, Q], [Q, H, Q], [Q, Q, H]], [[Q, H, Q], [H, Q, Q], [Q, Q, H]]],
    [[[Q, Q, H], [Q, H, Q], [H, Q, Q]], [[H, Q, Q], [Q, Q, H], [Q, H, Q]]],
]


class TinyAttention(nn.Module):
    """Two heads of fixed probabilities: scores ``log P`` (queries ``sqrt(3) log P``, keys the
    identity, head width 3), values the tokens, output the mean of the heads."""

    def __init__(self, probs: list, fused: bool):
        super().__init__()
        self.register_buffer("log_probs", torch.tensor(probs).log())
        self.out = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.out.weight.fill_(0.5)
        self.fused = fused

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, t = z.shape[:2]
        heads = self.log_probs.shape[0]
        q = (self.log_probs * math.sqrt(t)).expand(n, heads, t, t)
        k = torch.eye(t).expand(n, heads, t, t)
        v = z[:, None].expand(n, heads, t, 1)
        if self.fused:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(t), dim=-1) @ v
        return self.out(o.permute(0, 2, 1, 3).reshape(n, t, heads))


class TinyBlock(nn.Module):
    def __init__(self, probs: list, fused: bool):
        super().__init__()
        self.attn = TinyAttention(probs, fused)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.attn(z)


class TinyViT(nn.Module):
    def __init__(self, fused: bool):
        super().__init__()
        self.cls = nn.Parameter(torch.ones(1, 1, 1))
        self.blocks = nn.Sequential(*(TinyBlock(p, fused) for p in PROBS))
        self.head = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = x[:, 0, 0, :, None]  # (n, 2, 1)
        z = self.blocks(torch.cat([self.cls.expand(len(x), -1, -1), patches], dim=1))
        if self.fail:
            raise RuntimeError("planned failure inside the forward pass")
        return self.head(z[:, 0])


def tiny(fused: bool):
    return load_model(
        TinyViT(fused),
        weights=None,
        device="cpu",
        labels=["up", "down"],
        preprocess=Preprocess(input_size=(1, 2)),
    )


X = torch.tensor([2.0, 4.0]).reshape(1, 1, 1, 2).expand(1, 3, 1, 2).contiguous()

# Worked out by hand (patch keys a, b of the class token's row):
# Rollout, R = (A2 + I)/2 (A1 + I)/2: row 0 of (A2 + I)/2 is (11/16, 1/8, 3/16), the columns
#   of (A1 + I)/2 for a and b are (3/16, 11/16, 1/8) and (1/8, 1/8, 3/4):
#   R[0, a] = 33/256 + 22/256 + 6/256 = 61/256,  R[0, b] = 22/256 + 4/256 + 36/256 = 31/128.
#   After block 1 only: (A1 + I)/2 row 0 = (11/16, 3/16, 1/8).
# Chefer, class 0: dS/dP2h[i, j] = 1/2 [i = 0] z1[j]; dS/dP1h[i, j] = 1/2 c_i z0[j] with
#   c = e0 + A2[0] = (11/8, 1/4, 3/8). All gradients are positive, so
#   E_l = mean_h(G_lh * P_lh) = G_l-factor * A_l:
#   E1 = [[33/128, 33/64, 11/16], [3/64, 3/32, 1/8], [3/64, 3/32, 3/8]], R1 = I + E1,
#   row 0 of R1 = (161/128, 33/64, 11/16);
#   E2 row 0 = 1/2 z1 * A2[0] = (75/128, 33/64, 81/64), other rows 0;
#   R2[0] = R1[0] + E2[0] R1: R2[0, a] = 33/64 + 75/128*33/64 + 33/64*35/32 + 81/64*3/32
#   = 12291/8192, R2[0, b] = 11/16 + 75/128*11/16 + 33/64*1/8 + 81/64*11/8 = 5929/2048.
# LeGrad: block l's own score is s_l = mean_t z_l, so ds_l/dP_lh[i, j] = 1/6 z_{l-1}[j] for
#   every query i and head h: block 1 gives (2/6, 4/6), block 2 gives z1/6 = (33/48, 27/24);
#   their mean is (49/96, 43/48).
EXPECTED = {
    ("rollout", "blocks.1"): [61 / 256, 31 / 128],
    ("rollout", "blocks.0"): [3 / 16, 1 / 8],
    ("chefer", "blocks.1"): [12291 / 8192, 5929 / 2048],
    ("chefer", "blocks.0"): [33 / 64, 11 / 16],
    ("legrad", "blocks.1"): [49 / 96, 43 / 48],
    ("legrad", "blocks.0"): [1 / 3, 2 / 3],
}


@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "explicit-softmax"])
@pytest.mark.parametrize("method", ["rollout", "chefer", "legrad"])
def test_exact_attention_maps(method, fused):
    handle = tiny(fused)
    with torch.no_grad():
        assert handle.model(X)[0, 0].item() == pytest.approx(503 / 64, rel=1e-6)  # z2[cls]
    res = compute_cams(handle, X, layers=["blocks.1", "blocks.0"], method=method, targets=0)
    for layer in ("blocks.1", "blocks.0"):
        assert res.raw[layer].shape == (1, 1, 2)  # the 1 x 2 patch grid
        np.testing.assert_allclose(res.raw[layer][0, 0], EXPECTED[(method, layer)], rtol=1e-5)
    assert any("first 1 of 2 blocks" in note for note in res.notes)


def test_class_agnostic_rollout_and_negative_relevance():
    handle = tiny(fused=True)
    both = compute_cams(handle, X, layers="blocks.1", method="rollout", targets=TopK(2))
    assert both.raw["blocks.1"].shape == (1, 2, 1, 2)
    np.testing.assert_allclose(both.raw["blocks.1"][0, 0], both.raw["blocks.1"][0, 1])
    assert "class-agnostic" in " ".join(both.notes)
    # Class 1's score is -S0: every gradient is negative, (G * P)^+ = 0 and R stays I.
    down = compute_cams(handle, X, layers="blocks.1", method="chefer", targets=1)
    np.testing.assert_array_equal(down.raw["blocks.1"], np.zeros((1, 1, 2)))
    np.testing.assert_array_equal(down.maps["blocks.1"], np.zeros((1, 1, 2)))


def _clean(handle) -> None:
    """No hook on any module, no torch-function mode active, the model's lock free."""
    for module in handle.model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0
    assert handle.lock.acquire(blocking=False)
    handle.lock.release()


@pytest.mark.parametrize("method", ["rollout", "chefer", "legrad"])
def test_capture_leaves_nothing_behind_even_after_errors(method):
    handle = tiny(fused=True)
    compute_cams(handle, X, layers="blocks.1", method=method)
    _clean(handle)
    with pytest.raises(Exception, match="out of range"):  # raised after the forward pass
        compute_cams(handle, X, layers="blocks.1", method=method, targets=5)
    _clean(handle)
    handle.model.fail = True
    try:
        with pytest.raises(RuntimeError, match="planned failure"):  # raised inside it
            compute_cams(handle, X, layers="blocks.1", method=method)
    finally:
        handle.model.fail = False
    _clean(handle)
    assert torch.is_grad_enabled()


# -- real vision transformers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tv_vit():
    return load_model(
        small_vit(),
        weights=None,
        device="cpu",
        preprocess=Preprocess(input_size=(64, 64), resize=72),
    )


@pytest.fixture(scope="module")
def vit_images(tv_vit, photo_paths):
    return tv_vit.preprocess(photo_paths[5:8])


def test_legrad_matches_torchcam(tv_vit, vit_images):
    from torchcam.methods import LeGrad as TorchcamLeGrad

    blocks = list(tv_vit.model.encoder.layers)
    top = tv_vit.predict(vit_images).argmax(1).tolist()
    for classes in (top, [1, 4, 9]):
        for depth in (3, 2):  # all blocks, then the first two
            layer = f"encoder.layers.encoder_layer_{depth - 1}"
            ours = compute_cams(tv_vit, vit_images, layers=layer, method="legrad", targets=classes)
            with TorchcamLeGrad(tv_vit.model, blocks[:depth]) as extractor:
                theirs = extractor(classes, tv_vit.model(vit_images))[0].detach()
            theirs = F.interpolate(theirs[:, None], size=(64, 64), mode="bilinear")[:, 0]
            for a, b in zip(ours.maps[layer], theirs.numpy(), strict=True):
                assert np.ptp(a) > 0
                assert pearson(a, b) >= 0.99
    _clean(tv_vit)


def _logits_with_and_without_capture(model: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        plain = model(x)
        with AttentionCapture():
            explicit = model(x)
    assert torch._C._len_torch_function_stack() == 0
    return plain, explicit


def test_capture_keeps_the_logits_of_fused_attention(tv_vit, vit_images, tmp_path):
    from hf_factory import make_hf_model

    # torchvision's nn.MultiheadAttention (need_weights=False: fused), timm's fused Attention
    # and Hugging Face's sdpa implementation, each run explicitly by the capture.
    hf, _ = make_hf_model("vit", tmp_path / "vit")
    assert hf.config._attn_implementation == "sdpa"
    models = [tv_vit.model, small_timm_vit(), lambda x: hf(pixel_values=x).logits]
    for model in models:
        plain, explicit = _logits_with_and_without_capture(model, vit_images)
        torch.testing.assert_close(explicit, plain, rtol=1e-5, atol=1e-5)


def _timm_switch(vit: nn.Module):
    def switch(fused: bool) -> None:
        for block in vit.blocks:
            block.attn.fused_attn = fused

    return switch


def test_fused_and_explicit_attention_give_the_same_maps(vit_images, tmp_path):
    import timm
    from hf_factory import make_hf_model

    vit = small_timm_vit(reg_tokens=4)  # class token + 4 register tokens before the 8 x 8 patches
    registers = load_model(
        vit, weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64))
    )
    assert registers.layer("blocks.2").prefix_tokens == 5
    torch.manual_seed(2)
    deit = timm.create_model(  # timm's DeiT: class + distillation token, two heads averaged
        "deit_tiny_distilled_patch16_224",
        pretrained=False,
        img_size=64,
        patch_size=8,
        depth=3,
        num_classes=10,
    ).eval()
    distilled = load_model(
        deit, weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64))
    )
    assert distilled.layer("blocks.2").prefix_tokens == 2
    make_hf_model("deit", tmp_path / "deit")  # Hugging Face's DeiT with its teacher head
    hf = load_model(f"hf:{tmp_path / 'deit'}", device="cpu")

    def hf_switch(fused: bool) -> None:
        hf.model.config._attn_implementation = "sdpa" if fused else "eager"

    for h, switch in [
        (registers, _timm_switch(vit)),
        (distilled, _timm_switch(deit)),
        (hf, hf_switch),
    ]:
        layer = h.default_layer
        for method in ("rollout", "chefer", "legrad"):
            maps = {}
            for fused in (True, False):
                switch(fused)
                maps[fused] = compute_cams(h, vit_images, layers=layer, method=method).raw[layer]
            switch(True)
            assert maps[True].shape == (3, 8, 8) and maps[True].std() > 0
            np.testing.assert_allclose(
                maps[True], maps[False], rtol=1e-4, atol=1e-6 * np.abs(maps[True]).max()
            )
        _clean(h)


def test_rollout_with_register_tokens_matches_a_reference(vit_images):
    # Reference: the probabilities read from timm's own explicit path (the input of attn_drop),
    # rolled out by hand; the class token's row, the 5 prefix keys dropped.
    vit = small_timm_vit(reg_tokens=4)
    for block in vit.blocks:
        block.attn.fused_attn = False
    handle = load_model(vit, weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64)))
    seen = []
    hooks = [
        b.attn.attn_drop.register_forward_hook(lambda m, i, o: seen.append(i[0]))
        for b in vit.blocks
    ]
    try:
        with torch.no_grad():
            vit(vit_images)
    finally:
        for h in hooks:
            h.remove()
    rollout = torch.eye(69).expand(3, 69, 69)
    for probs in seen:
        rollout = ((probs.mean(1) + torch.eye(69)) / 2) @ rollout
    expected = rollout[:, 0, 5:].reshape(3, 8, 8).numpy()
    ours = compute_cams(handle, vit_images, layers="blocks.2", method="rollout")
    np.testing.assert_allclose(ours.raw["blocks.2"], expected, rtol=1e-5, atol=1e-7)


class BiasKV(nn.Module):
    """Patch embedding, a class token and one block whose attention adds key/value biases."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(3, 8, 8, stride=8)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.blocks = nn.Sequential(BiasKVBlock())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x).flatten(2).transpose(1, 2)
        z = self.blocks(torch.cat([self.cls.expand(len(x), -1, -1), z], dim=1))
        return self.head(z[:, 0])


class BiasKVBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, add_bias_kv=True, batch_first=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.attn(z, z, z, need_weights=False)[0]


def test_attention_methods_refuse_models_without_attention(small_cnn, tv_vit):
    with pytest.raises(AttentionError, match="no transformer blocks"):
        compute_cams(small_cnn, torch.zeros(1, 3, 16, 16), layers="2", method="rollout")
    with pytest.raises(LayerError, match="before the first attention block"):
        compute_cams(tv_vit, torch.zeros(1, 3, 64, 64), layers="conv_proj", method="chefer")
    _clean(small_cnn)
    _clean(tv_vit)
    # An attention layout the capture does not compute runs as usual and is named.
    odd = load_model(
        BiasKV().eval(), weights=None, device="cpu", preprocess=Preprocess(input_size=(16, 16))
    )
    x = torch.randn(2, 3, 16, 16)
    plain, explicit = _logits_with_and_without_capture(odd.model, x)
    torch.testing.assert_close(explicit, plain)
    with pytest.raises(AttentionError, match="key/value biases"):
        compute_cams(odd, x, layers="blocks.0", method="chefer")
    _clean(odd)

"""Shapley-CAM, Finer-CAM and KPCA-CAM: agreement with pytorch-grad-cam 1.5.7 (Pearson >= 0.99 on
the upsampled maps) on torchvision ResNet-18 at layer3 and layer4 with real photos and on a timm
vision transformer; exact numbers for Shapley-CAM's second-order term; its one-pass Hessian-vector
products against plain autograd on a transformer whose fused attention the peer cannot
differentiate twice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_models import agree, pearson, random_resnet18, small_timm_vit
from torch import nn

from explain import Contrast, Preprocess, TargetError, compute_cams, load_model

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import (  # noqa: E402
    ClassifierOutputReST,
    ClassifierOutputTarget,
)


def rest(classes: list[int]):
    """The ReST score of Shapley-CAM's paper, ``z_c - CE(z, c) = 2 z_c - logsumexp(z)``."""
    index = torch.tensor(classes)[:, None]

    def score(z: torch.Tensor) -> torch.Tensor:
        return 2 * z.gather(1, index.to(z.device))[:, 0] - z.logsumexp(dim=1)

    return score


@pytest.fixture(scope="module")
def resnet():
    return random_resnet18()


@pytest.fixture(scope="module")
def images(resnet, photo_paths):
    return resnet.preprocess(photo_paths[:3])


@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_shapley_cam_matches_pytorch_grad_cam(resnet, images, layer):
    module = dict(resnet.model.named_modules())[layer]
    top = resnet.predict(images).argmax(1).tolist()
    differs, informative = [], 0
    for classes in (top, [7, 300, 41]):
        ours = compute_cams(
            resnet, images, layers=layer, method="shapleycam", targets=rest(classes)
        )
        with pgc.ShapleyCAM(model=resnet.model, target_layers=[module]) as cam:
            theirs = cam(input_tensor=images, targets=[ClassifierOutputReST(c) for c in classes])
        informative += agree(ours.maps[layer], theirs)
        grad = compute_cams(resnet, images, layers=layer, method="gradcam", targets=rest(classes))
        differs += [pearson(a, b) for a, b in zip(ours.maps[layer], grad.maps[layer], strict=True)]
        # With plain logits the score is piecewise linear in the layer: no second-order term.
        plain = compute_cams(resnet, images, layers=layer, method="shapleycam", targets=classes)
        with pgc.ShapleyCAM(model=resnet.model, target_layers=[module]) as cam:
            theirs = cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in classes])
        agree(plain.maps[layer], theirs)
    assert informative >= 3
    if layer == "layer4":  # the Hessian term changes the map: the comparison is not Grad-CAM's
        assert min(differs) < 0.95


@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_finer_and_kpca_cam_match_pytorch_grad_cam(resnet, images, layer):
    module = dict(resnet.model.named_modules())[layer]
    ours = compute_cams(resnet, images, layers=layer, method="finercam")
    with pgc.FinerCAM(model=resnet.model, target_layers=[module]) as cam:
        theirs = cam(input_tensor=images, targets=None)  # top-1 against its 3 nearest classes
    informative = agree(ours.maps[layer], theirs)
    assert " vs. " in ours.target_names[0][0]
    ours = compute_cams(resnet, images, layers=layer, method="finercam", targets=300)
    with pgc.FinerCAM(model=resnet.model, target_layers=[module]) as cam:
        theirs = cam(input_tensor=images, targets=None, target_idx=300)
    informative += agree(ours.maps[layer], theirs)
    assert informative >= 3
    ours = compute_cams(resnet, images, layers=layer, method="kpcacam")
    with pgc.KPCA_CAM(model=resnet.model, target_layers=[module]) as cam:
        theirs = cam(input_tensor=images, targets=None)
    assert agree(ours.maps[layer], theirs) == 3


def test_finer_and_kpca_cam_match_pytorch_grad_cam_on_a_vision_transformer(photo_paths):
    vit = small_timm_vit(fused=False)
    handle = load_model(
        vit, weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64), resize=72)
    )
    layer = handle.default_layer
    x = handle.preprocess(photo_paths[5:8])

    def reshape(t: torch.Tensor) -> torch.Tensor:  # the token -> grid reshape, by hand
        return t[:, 1:, :].reshape(t.shape[0], 8, 8, t.shape[-1]).permute(0, 3, 1, 2)

    module = dict(vit.named_modules())[layer]
    for method, cls in (("finercam", pgc.FinerCAM), ("kpcacam", pgc.KPCA_CAM)):
        ours = compute_cams(handle, x, layers=layer, method=method)
        with cls(model=vit, target_layers=[module], reshape_transform=reshape) as cam:
            theirs = cam(input_tensor=x, targets=None)
        assert agree(ours.maps[layer], theirs) >= 2


def test_shapley_hessian_products_of_several_transformer_layers_in_one_pass(photo_paths):
    # The peer cannot run here (fused attention has no second derivative, and its Shapley-CAM
    # does not reshape token layers); the reference is plain autograd, one layer at a time, on
    # the same model with explicit attention.
    fused = small_timm_vit(fused=True)
    handle = load_model(
        fused, weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64), resize=72)
    )
    x = handle.preprocess(photo_paths[5:7])
    layers = ["blocks.1.norm1", "blocks.2.norm1"]
    classes = [2, 7]
    ours = compute_cams(handle, x, layers=layers, method="shapleycam", targets=classes)
    reference = small_timm_vit(fused=False)
    modules = dict(reference.named_modules())
    kept: dict[str, torch.Tensor] = {}
    for layer in layers:
        hook = modules[layer].register_forward_hook(lambda m, i, o: kept.update(a=o))
        try:
            with torch.enable_grad():
                logits = reference(x)
                score = logits.gather(1, torch.tensor(classes)[:, None]).sum()
                (g,) = torch.autograd.grad(score, kept["a"], create_graph=True)
                (hv,) = torch.autograd.grad(g, kept["a"], grad_outputs=kept["a"].detach())
        finally:
            hook.remove()
        a = kept["a"].detach()[:, 1:].reshape(2, 8, 8, 64).permute(0, 3, 1, 2)
        weights = (g.detach() - hv / 2)[:, 1:].mean(dim=1)  # mean over the 64 patch tokens
        expected = torch.relu((weights[:, :, None, None] * a).sum(dim=1))
        assert hv.abs().max() > 1e-3 * g.abs().max()  # a real second-order term
        np.testing.assert_allclose(ours.raw[layer], expected.numpy(), rtol=1e-3, atol=1e-5)


class Quadratic(nn.Module):
    """``features`` copies a 1 x 2 map A from the input; class 0 scores ``(w . A)^2``."""

    def __init__(self):
        super().__init__()
        self.features = nn.Identity()
        self.register_buffer("w", torch.tensor([1.0, 3.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (self.features(x[:, :1]).flatten(1) * self.w).sum(dim=1)
        return torch.stack([s**2, -s], dim=1)


def test_shapley_cam_exact_second_order_term():
    # A = (1, 2), w = (1, 3): w.A = 7, G = 2 (w.A) w = (14, 42), H A = 2 w (w.A) = (14, 42),
    # G - H A / 2 = (7, 21), channel weight = mean = 14, map = 14 A = (14, 28);
    # Grad-CAM's weight is mean(G) = 28: (28, 56).
    handle = load_model(
        Quadratic(),
        weights=None,
        device="cpu",
        labels=["sq", "neg"],
        preprocess=Preprocess(input_size=(1, 2)),
    )
    x = torch.tensor([1.0, 2.0]).reshape(1, 1, 1, 2).expand(1, 3, 1, 2).contiguous()
    shapley = compute_cams(handle, x, layers="features", method="shapleycam", targets=0)
    np.testing.assert_allclose(shapley.raw["features"][0], [[14.0, 28.0]], rtol=1e-6)
    grad = compute_cams(handle, x, layers="features", method="gradcam", targets=0)
    np.testing.assert_allclose(grad.raw["features"][0], [[28.0, 56.0]], rtol=1e-6)


def test_finer_cam_targets(resnet, images):
    # With Contrast(a, b), b is the only comparison class: the score is z_a - z_b (Grad-CAM's).
    contrast = Contrast(3, 9)
    finer = compute_cams(resnet, images[:1], layers="layer4", method="finercam", targets=contrast)
    grad = compute_cams(resnet, images[:1], layers="layer4", method="gradcam", targets=contrast)
    np.testing.assert_allclose(finer.raw["layer4"], grad.raw["layer4"], rtol=1e-5, atol=1e-8)
    with pytest.raises(TargetError, match="not a score function"):
        compute_cams(
            resnet, images[:1], layers="layer4", method="finercam", targets=lambda z: z[:, 0]
        )

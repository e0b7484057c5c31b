"""Agreement with the peers (pytorch-grad-cam, torchcam, Captum) used as reference
implementations: Pearson correlation of the upsampled maps >= 0.99 for the same model, layer
and target, on torchvision ResNet-18 and on a vision transformer, several images and classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from reference_models import agree, pearson, random_resnet18, small_vit

from explain import compute_cams, guided_backprop, load_model
from explain.preprocessing import Preprocess

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


def assert_agree(ours: np.ndarray, theirs: np.ndarray, threshold: float = 0.99) -> None:
    informative = agree(ours, theirs, threshold)
    assert informative >= (len(ours) + 1) // 2, f"only {informative} informative maps"


@pytest.fixture(scope="module")
def resnet():
    return random_resnet18()


@pytest.fixture(scope="module")
def images(resnet, photo_paths):
    return resnet.preprocess(photo_paths[:3])


# Three images, and for each two classes: its top-1 and a fixed other class.
def _class_sets(handle, x):
    top = handle.predict(x).argmax(1)
    return [top.tolist(), [7, 300, 41]]


PGC_METHODS = {
    "gradcam": "GradCAM",
    "gradcampp": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "gradcam-elementwise": "GradCAMElementWise",
    "layercam": "LayerCAM",
}


@pytest.mark.parametrize("method", list(PGC_METHODS))
@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_gradient_methods_match_pytorch_grad_cam(resnet, images, method, layer):
    cls = getattr(pgc, PGC_METHODS[method])
    module = dict(resnet.model.named_modules())[layer]
    for classes in _class_sets(resnet, images):
        ours = compute_cams(resnet, images, layers=[layer], method=method, targets=classes)
        with cls(model=resnet.model, target_layers=[module]) as cam:
            theirs = cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in classes])
        assert ours.targets.tolist() == classes
        assert_agree(ours.maps[layer], theirs)


def test_eigen_methods_match_pytorch_grad_cam_up_to_svd_sign(resnet, images):
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from explain.cams import first_component

    # The projections themselves agree up to the sign SVD leaves open; we fix the sign so that
    # the larger magnitude is positive (pytorch-grad-cam does not), then apply ReLU.
    acts = {}
    hook = resnet.model.layer4.register_forward_hook(lambda m, i, o: acts.update(a=o.detach()))
    with torch.no_grad():
        resnet.model(images)
    hook.remove()
    theirs = get_2d_projection(acts["a"].numpy())
    ours = first_component(acts["a"]).numpy()
    for a, b in zip(ours, theirs, strict=True):
        assert abs(pearson(a, b)) >= 0.999
    result = compute_cams(resnet, images, layers="layer4", method="eigencam")
    expected = [np.maximum(p, 0) for p in ours]
    for a, b in zip(result.raw["layer4"], expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pgc.EigenCAM(model=resnet.model, target_layers=[resnet.model.layer4]) as cam:
        sign_free = cam(input_tensor=images, targets=None)
    flipped = [
        np.abs(pearson(a, b))
        for a, b in zip(
            compute_cams(resnet, images, layers="layer4", method="eigencam").maps["layer4"],
            sign_free,
            strict=True,
        )
    ]
    # Where both chose the same sign, the maps agree.
    assert max(flipped) >= 0.99


def test_fullgrad_matches_pytorch_grad_cam(resnet, images):
    classes = _class_sets(resnet, images)[1]
    ours = compute_cams(resnet, images, layers="layer4", method="fullgrad", targets=classes)
    with pgc.FullGrad(model=resnet.model, target_layers=[]) as cam:
        theirs = cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in classes])
    assert_agree(ours.maps["layer4"], theirs)


def test_score_and_ablation_cam_match_pytorch_grad_cam(photo_paths):
    # Smaller inputs keep the hundreds of forward passes cheap; the maths is the same.
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    handle = load_model(
        model,
        weights=None,
        device="cpu",
        labels=[str(i) for i in range(1000)],
        preprocess=Preprocess(input_size=(96, 96), resize=110),
    )
    x = handle.preprocess(photo_paths[3:5])
    classes = [11, 523]
    targets = [ClassifierOutputTarget(c) for c in classes]
    ours = compute_cams(
        handle, x, layers="layer4", method="scorecam", targets=classes, perturbation_batch=128
    )
    with pgc.ScoreCAM(model=model, target_layers=[model.layer4]) as cam:
        cam.batch_size = 128
        theirs = cam(input_tensor=x, targets=targets)
    assert_agree(ours.maps["layer4"], theirs)
    ours = compute_cams(
        handle, x, layers="layer4", method="ablationcam", targets=classes, perturbation_batch=128
    )
    assert "only the layers after layer4" in " ".join(ours.notes)
    with pgc.AblationCAM(model=model, target_layers=[model.layer4], batch_size=128) as cam:
        theirs = cam(input_tensor=x, targets=targets)
    assert_agree(ours.maps["layer4"], theirs)


TORCHCAM = {
    "gradcam": "GradCAM",
    "gradcampp": "GradCAMpp",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "cam": "CAM",
}


@pytest.mark.parametrize("method", list(TORCHCAM))
def test_methods_match_torchcam(resnet, images, method):
    from torchcam import methods as tcm

    for classes in _class_sets(resnet, images):
        ours = compute_cams(resnet, images, layers="layer4", method=method, targets=classes)
        kwargs = {"fc_layer": "fc"} if method == "cam" else {}
        with getattr(tcm, TORCHCAM[method])(
            resnet.model, target_layer="layer4", **kwargs
        ) as extractor:
            if method == "cam":
                with torch.no_grad():
                    logits = resnet.model(images)
            else:
                logits = resnet.model(images)
            theirs = extractor(classes, logits)[0]
        theirs = (
            F.interpolate(
                theirs[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False
            )[:, 0]
            .detach()
            .numpy()
        )
        assert_agree(ours.maps["layer4"], theirs)


def test_cam_equals_gradcam_on_a_gap_linear_head(resnet, images):
    # With global average pooling + linear, dS/dA_k = W_ck / (h w): Grad-CAM is CAM / 49.
    cam = compute_cams(resnet, images, layers="layer4", method="cam", targets=[1, 2, 3])
    grad = compute_cams(resnet, images, layers="layer4", method="gradcam", targets=[1, 2, 3])
    np.testing.assert_allclose(
        grad.raw["layer4"] * 49, np.maximum(cam.raw["layer4"], 0), rtol=1e-3, atol=1e-5
    )
    assert (cam.raw["layer4"] < 0).any()  # CAM keeps negative evidence (no ReLU, as published)


def test_gradcam_and_guided_methods_match_captum(resnet, images):
    from captum.attr import GuidedBackprop, GuidedGradCam, LayerGradCam

    classes = _class_sets(resnet, images)[0]
    target = torch.tensor(classes)
    ours = compute_cams(resnet, images, layers="layer4", method="gradcam", targets=classes)
    theirs = LayerGradCam(resnet.model, resnet.model.layer4).attribute(
        images, target=target, relu_attributions=True
    )
    np.testing.assert_allclose(
        ours.raw["layer4"], theirs[:, 0].detach().numpy(), rtol=1e-4, atol=1e-6
    )

    gb = guided_backprop(resnet, images, targets=classes)
    theirs = GuidedBackprop(resnet.model).attribute(images, target=target)
    theirs = theirs.detach().permute(0, 2, 3, 1).numpy()
    assert_agree(gb, theirs, threshold=0.999)

    ggc = compute_cams(resnet, images, layers="layer4", method="guided-gradcam", targets=classes)
    theirs = GuidedGradCam(resnet.model, resnet.model.layer4).attribute(
        images, target=target, interpolate_mode="bilinear"
    )
    assert_agree(ggc.pixels["layer4"], theirs.detach().permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize(
    "method", ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "scorecam"]
)
def test_vision_transformer_matches_pytorch_grad_cam(photo_paths, method):
    vit = small_vit()
    handle = load_model(
        vit, weights=None, device="cpu", preprocess=Preprocess(input_size=(64, 64), resize=72)
    )
    layer = handle.default_layer
    assert layer == "encoder.layers.encoder_layer_2.ln_1"
    x = handle.preprocess(photo_paths[5:8])

    def reshape(t: torch.Tensor) -> torch.Tensor:  # the same token -> grid reshape, by hand
        return t[:, 1:, :].reshape(t.shape[0], 8, 8, t.shape[-1]).permute(0, 3, 1, 2)

    module = dict(vit.named_modules())[layer]
    cls = {"scorecam": "ScoreCAM", "ablationcam": "AblationCAM"}.get(
        method, PGC_METHODS.get(method)
    )
    for classes in ([1, 4, 9], handle.predict(x).argmax(1).tolist()):
        ours = compute_cams(handle, x, layers=layer, method=method, targets=classes)
        kwargs = {}
        if method == "ablationcam":
            from pytorch_grad_cam.ablation_layer import AblationLayerVit

            kwargs["ablation_layer"] = AblationLayerVit()
        with getattr(pgc, cls)(
            model=vit, target_layers=[module], reshape_transform=reshape, **kwargs
        ) as cam:
            theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
        assert_agree(ours.maps[layer], theirs)

"""The CAM family: each method says how per-channel contributions are made from a layer's
activations ``A`` (B, C, h, w) and the gradients ``G = dS/dA`` of the target score ``S``.

The map is ``ReLU(sum_k contribution_k)``, or, with eigen smoothing (always for the Eigen
variants), ``ReLU`` of the projection of the contributions onto their first principal component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Contribution = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
_EPS = 1e-7


@dataclass(frozen=True)
class CamMethod:
    """One method of the family.

    Attributes:
        name: the key accepted by ``compute_cams``.
        title: display name.
        kind: "gradient", "activation", "perturbation" or "pixel".
        needs_grad: whether a backward pass is needed.
        contribution: ``(A, G) -> (B, C, h, w)`` for methods built on the common base;
            ``None`` for methods with their own engine (Score-CAM, Ablation-CAM, CAM, FullGrad,
            Guided Grad-CAM).
        eigen: always project onto the first principal component.
        summary: one plain sentence for non-specialists.
        formula: the formula, as text.
        reference: the paper.
    """

    name: str
    title: str
    kind: str
    needs_grad: bool
    contribution: Contribution | None
    summary: str
    formula: str
    reference: str
    eigen: bool = False


def _spatial_sum(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=(2, 3), keepdim=True)


def gradcam(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """w_k = mean_ij G_k(i, j); contribution w_k A_k."""
    return grads.mean(dim=(2, 3), keepdim=True) * acts


def gradcampp(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """alpha = G^2 / (2 G^2 + sum_ij A * G^3); w_k = sum_ij alpha ReLU(G); contribution w_k A_k."""
    g2 = grads.pow(2)
    alpha = g2 / (2 * g2 + _spatial_sum(acts) * g2 * grads + 1e-6)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return _spatial_sum(torch.relu(grads) * alpha) * acts


def xgradcam(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """w_k = sum_ij A_k G_k / sum_ij A_k; contribution w_k A_k."""
    return _spatial_sum(grads * acts / (_spatial_sum(acts) + _EPS)) * acts


def hirescam(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """Element-wise G_k A_k (no spatial averaging of the gradient)."""
    return grads * acts


def gradcam_elementwise(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """ReLU(G_k A_k) element-wise, before the channel sum."""
    return torch.relu(grads * acts)


def layercam(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """ReLU(G_k) A_k: positive gradients weight each position."""
    return torch.relu(grads) * acts


def activations_only(acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
    """The activations themselves (Eigen-CAM: class-agnostic)."""
    return acts


METHOD_LIST: tuple[CamMethod, ...] = (
    CamMethod(
        "gradcam",
        "Grad-CAM",
        "gradient",
        True,
        gradcam,
        "Highlights the regions whose features most raise the class score, weighting "
        "each feature map by its average gradient.",
        "L = ReLU(sum_k mean_ij(dS/dA_k) A_k)",
        "Selvaraju et al., ICCV 2017",
    ),
    CamMethod(
        "gradcampp",
        "Grad-CAM++",
        "gradient",
        True,
        gradcampp,
        "Like Grad-CAM, but weights positions by higher-order gradient terms so that "
        "several instances of a class all light up.",
        "w_k = sum_ij a_ij ReLU(G_k), a = G^2 / (2 G^2 + sum A G^3); L = ReLU(sum w_k A_k)",
        "Chattopadhyay et al., WACV 2018",
    ),
    CamMethod(
        "xgradcam",
        "XGrad-CAM",
        "gradient",
        True,
        xgradcam,
        "Grad-CAM with weights normalised by each feature map's total activation, chosen "
        "to satisfy sensitivity and conservation axioms.",
        "w_k = sum_ij A_k G_k / sum_ij A_k; L = ReLU(sum w_k A_k)",
        "Fu et al., BMVC 2020",
    ),
    CamMethod(
        "hirescam",
        "HiResCAM",
        "gradient",
        True,
        hirescam,
        "Multiplies gradients and activations position by position, so the map shows "
        "exactly the locations the score depends on.",
        "L = ReLU(sum_k G_k * A_k)",
        "Draelos & Carin, 2020",
    ),
    CamMethod(
        "gradcam-elementwise",
        "Grad-CAM element-wise",
        "gradient",
        True,
        gradcam_elementwise,
        "Like HiResCAM, but drops negative products before adding the feature maps up.",
        "L = ReLU(sum_k ReLU(G_k * A_k))",
        "pytorch-grad-cam variant of HiResCAM",
    ),
    CamMethod(
        "layercam",
        "LayerCAM",
        "gradient",
        True,
        layercam,
        "Weights every position by its positive gradient; works well in early layers too.",
        "L = ReLU(sum_k ReLU(G_k) * A_k)",
        "Jiang et al., IEEE TIP 2021",
    ),
    CamMethod(
        "eigengradcam",
        "Eigen-Grad-CAM",
        "gradient",
        True,
        hirescam,
        "The main pattern (first principal component) of gradient times activation: a "
        "cleaner class-specific map.",
        "L = ReLU(PC1(G * A))",
        "pytorch-grad-cam variant of Eigen-CAM",
        eigen=True,
    ),
    CamMethod(
        "fullgrad",
        "FullGrad",
        "gradient",
        True,
        None,
        "Adds up the input-gradient and the bias-gradient of every convolution: a "
        "complete, layer-independent account of the score.",
        "L = psi(|dS/dx * x|) + sum_l sum_c psi(|dS/db_lc * b_lc|)",
        "Srinivas & Fleuret, NeurIPS 2019",
    ),
    CamMethod(
        "eigencam",
        "Eigen-CAM",
        "activation",
        False,
        activations_only,
        "The main pattern of the layer's features, without gradients: shows what the "
        "network finds salient, for any class.",
        "L = ReLU(PC1(A))",
        "Muhammad & Yeasin, IJCNN 2020",
        eigen=True,
    ),
    CamMethod(
        "scorecam",
        "Score-CAM",
        "perturbation",
        False,
        None,
        "Masks the image with each feature map and weights the map by how much the "
        "class score stays; needs no gradients but many forward passes.",
        "w = softmax_k(S(x * norm(up(A_k)))); L = ReLU(sum w_k A_k)",
        "Wang et al., CVPR-W 2020",
    ),
    CamMethod(
        "ablationcam",
        "Ablation-CAM",
        "perturbation",
        False,
        None,
        "Switches each feature map off in turn and weights it by how much the class "
        "score drops; needs no gradients.",
        "w_k = (S - S_without_k) / S; L = ReLU(sum w_k A_k)",
        "Desai & Ramaswamy, WACV 2020",
    ),
    CamMethod(
        "cam",
        "CAM",
        "activation",
        False,
        None,
        "The original class activation map: the classifier's own weights applied to the "
        "last feature maps (models with global average pooling + one linear layer).",
        "L = sum_k W_ck A_k (no ReLU, as in the paper)",
        "Zhou et al., CVPR 2016",
    ),
    CamMethod(
        "guided-gradcam",
        "Guided Grad-CAM",
        "pixel",
        True,
        None,
        "Grad-CAM sharpened to pixel detail: guided backpropagation times the Grad-CAM map.",
        "GB(x) * up(L_Grad-CAM)",
        "Selvaraju et al., ICCV 2017",
    ),
)

METHOD_INFO: dict[str, CamMethod] = {m.name: m for m in METHOD_LIST}
#: Names accepted by ``compute_cams(method=...)``.
METHODS: tuple[str, ...] = tuple(METHOD_INFO)

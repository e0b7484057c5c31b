"""The built-in methods, in the order pages list them: one registry entry each.

Each entry is a strategy from the module that implements it, with its description. Adding a
method: write its strategy (a :class:`~explain.cams.base.CamMethod` subclass, or weights /
contributions for :class:`~explain.cams.gradient.WeightedActivations`) and add an entry here, or
call :func:`~explain.cams.base.register_method` from your own code.
"""

from __future__ import annotations

from .base import METHOD_INFO, METHODS, CamMethod, register_method
from .cam import ClassActivationMap
from .finer import FinerCam
from .fullgrad import FullGrad
from .gradient import (
    WeightedActivations,
    activations_only,
    gradcam_weights,
    gradcampp_weights,
    gradient_times_activation,
    positive_gradient_times_activation,
    positive_products,
    xgradcam_weights,
)
from .guided import GuidedGradCam
from .kernel import KernelPcaCam
from .perturbation import AblationCam, ScoreCam
from .shapley import ShapleyCam
from .transformer import AttentionRelevancy, AttentionRollout, LeGrad

BUILTIN: tuple[CamMethod, ...] = (
    WeightedActivations(
        "gradcam",
        "Grad-CAM",
        "gradient",
        True,
        "Highlights the regions whose features most raise the class score, weighting "
        "each feature map by its average gradient.",
        "L = ReLU(sum_k mean_ij(dS/dA_k) A_k)",
        "Selvaraju et al., ICCV 2017",
        weights=gradcam_weights,
    ),
    WeightedActivations(
        "gradcampp",
        "Grad-CAM++",
        "gradient",
        True,
        "Like Grad-CAM, but weights positions by higher-order gradient terms so that "
        "several instances of a class all light up.",
        "w_k = sum_ij a_ij ReLU(G_k), a = G^2 / (2 G^2 + sum A G^3); L = ReLU(sum w_k A_k)",
        "Chattopadhyay et al., WACV 2018",
        weights=gradcampp_weights,
    ),
    WeightedActivations(
        "xgradcam",
        "XGrad-CAM",
        "gradient",
        True,
        "Grad-CAM with weights normalised by each feature map's total activation, chosen "
        "to satisfy sensitivity and conservation axioms.",
        "w_k = sum_ij A_k G_k / sum_ij A_k; L = ReLU(sum w_k A_k)",
        "Fu et al., BMVC 2020",
        weights=xgradcam_weights,
    ),
    WeightedActivations(
        "hirescam",
        "HiResCAM",
        "gradient",
        True,
        "Multiplies gradients and activations position by position, so the map shows "
        "exactly the locations the score depends on.",
        "L = ReLU(sum_k G_k * A_k)",
        "Draelos & Carin, 2020",
        contributions=gradient_times_activation,
    ),
    WeightedActivations(
        "gradcam-elementwise",
        "Grad-CAM element-wise",
        "gradient",
        True,
        "Like HiResCAM, but drops negative products before adding the feature maps up.",
        "L = ReLU(sum_k ReLU(G_k * A_k))",
        "pytorch-grad-cam variant of HiResCAM",
        contributions=positive_products,
    ),
    WeightedActivations(
        "layercam",
        "LayerCAM",
        "gradient",
        True,
        "Weights every position by its positive gradient; works well in early layers too.",
        "L = ReLU(sum_k ReLU(G_k) * A_k)",
        "Jiang et al., IEEE TIP 2021",
        contributions=positive_gradient_times_activation,
    ),
    WeightedActivations(
        "eigengradcam",
        "Eigen-Grad-CAM",
        "gradient",
        True,
        "The main pattern (first principal component) of gradient times activation: a "
        "cleaner class-specific map.",
        "L = ReLU(PC1(G * A))",
        "pytorch-grad-cam variant of Eigen-CAM",
        eigen=True,
        contributions=gradient_times_activation,
    ),
    ShapleyCam(
        "shapleycam",
        "Shapley-CAM",
        "gradient",
        True,
        "Grad-CAM corrected by how the gradient itself changes with the features (a "
        "second-order term), which brings the weights closer to each feature map's fair "
        "share (Shapley value) of the score.",
        "w_k = mean_ij (dS/dA_k - 1/2 (d^2S/dA^2 A)_k); L = ReLU(sum w_k A_k)",
        "Cai et al., CAMs as Shapley Value-based Explainers, 2025 (arXiv 2501.06261)",
    ),
    FinerCam(
        "finercam",
        "Finer-CAM",
        "gradient",
        True,
        "Explains a class against the classes the model finds most similar, so features "
        "they share cancel out and the details that tell them apart stand out.",
        "S = sum_j p_j (z_c - z_j) / sum_j p_j over the 3 classes j of nearest logit "
        "(p = softmax); L = Grad-CAM of S",
        "Zhang et al., Finer-CAM, CVPR 2025 (arXiv 2501.11309)",
    ),
    FullGrad(
        "fullgrad",
        "FullGrad",
        "gradient",
        True,
        "Adds up the input-gradient and the bias-gradient of every convolution: a "
        "complete, layer-independent account of the score.",
        "L = psi(|dS/dx * x|) + sum_l sum_c psi(|dS/db_lc * b_lc|)",
        "Srinivas & Fleuret, NeurIPS 2019",
    ),
    WeightedActivations(
        "eigencam",
        "Eigen-CAM",
        "activation",
        False,
        "The main pattern of the layer's features, without gradients: shows what the "
        "network finds salient, for any class.",
        "L = ReLU(PC1(A))",
        "Muhammad & Yeasin, IJCNN 2020",
        eigen=True,
        contributions=activations_only,
    ),
    KernelPcaCam(
        "kpcacam",
        "KPCA-CAM",
        "activation",
        False,
        "Like Eigen-CAM, the main pattern of the layer's features without gradients, but "
        "found with kernel PCA, which can follow non-linear structure.",
        "L = ReLU(first kernel principal component of the positions' features), sigmoid "
        "kernel tanh(a.b / C + 1)",
        "Karmani et al., KPCA-CAM, 2024 (arXiv 2410.00267)",
    ),
    ScoreCam(
        "scorecam",
        "Score-CAM",
        "perturbation",
        False,
        "Masks the image with each feature map and weights the map by how much the "
        "class score stays; needs no gradients but many forward passes.",
        "w = softmax_k(S(x * norm(up(A_k)))); L = ReLU(sum w_k A_k)",
        "Wang et al., CVPR-W 2020",
    ),
    AblationCam(
        "ablationcam",
        "Ablation-CAM",
        "perturbation",
        False,
        "Switches each feature map off in turn and weights it by how much the class "
        "score drops; needs no gradients.",
        "w_k = (S - S_without_k) / S; L = ReLU(sum w_k A_k)",
        "Desai & Ramaswamy, WACV 2020",
    ),
    ClassActivationMap(
        "cam",
        "CAM",
        "activation",
        False,
        "The original class activation map: the classifier's own weights applied to the "
        "last feature maps (models with global average pooling + one linear layer).",
        "L = sum_k W_ck A_k (no ReLU, as in the paper)",
        "Zhou et al., CVPR 2016",
    ),
    GuidedGradCam(
        "guided-gradcam",
        "Guided Grad-CAM",
        "pixel",
        True,
        "Grad-CAM sharpened to pixel detail: guided backpropagation times the Grad-CAM map.",
        "GB(x) * up(L_Grad-CAM)",
        "Selvaraju et al., ICCV 2017",
    ),
    AttentionRollout(
        "rollout",
        "Attention rollout",
        "attention",
        False,
        "Follows how much attention flows from the class token back to each image patch "
        "through all the transformer's layers; the same map for every class.",
        "R = prod_l (mean_h A_l + I) / 2 (later layers on the left); L = R[cls, patches]",
        "Abnar & Zuidema, ACL 2020",
    ),
    AttentionRelevancy(
        "chefer",
        "Attention relevancy (Chefer)",
        "attention",
        True,
        "Rolls the attention out layer by layer, keeping only the attention that raises "
        "the class score (attention times its gradient).",
        "R = I; for each layer R += mean_h ReLU(dS/dA_l * A_l) R; L = R[cls, patches]",
        "Chefer, Gur & Wolf, ICCV 2021 (generic rule of CVPR 2021's Transformer "
        "Interpretability Beyond Attention Visualization)",
    ),
    LeGrad(
        "legrad",
        "LeGrad",
        "attention",
        True,
        "Scores every transformer layer with the model's own head and asks which patches' "
        "attention would raise that score; the layers' answers are averaged.",
        "s_l = head(norm(mean_t z_l)); L = mean_l mean_{h,q} ReLU(ds_l/dA_l)[patches]",
        "Bousselham et al., LeGrad, ICCV 2025 (arXiv 2404.03214)",
    ),
)

for _method in BUILTIN:
    register_method(_method, replace=True)

#: The built-in methods (``METHOD_INFO`` may hold more, registered by plug-ins).
METHOD_LIST: tuple[CamMethod, ...] = BUILTIN

__all__ = ["BUILTIN", "METHODS", "METHOD_INFO", "METHOD_LIST"]

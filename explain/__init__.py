"""Grad-CAM Explorer: class-activation maps and model loading for image classifiers.

``explain`` is a plain library (no Streamlit): load a model, compute CAMs at any layers, render
overlays, and measure how far an explanation can be trusted. In Jupyter, results show
themselves (overlay grids, tables, figures); :func:`show` displays the common cases.
"""

from .cams import (
    METHOD_INFO,
    METHODS,
    CamResult,
    MethodResults,
    applicable_methods,
    compute_cams,
    compute_methods,
    guided_backprop,
)
from .display import show
from .errors import (
    AttentionError,
    EngineError,
    ExplainError,
    ImageLoadError,
    InputSizeError,
    LayerError,
    MethodNotApplicable,
    ModelLoadError,
    NetworkError,
    PromptError,
    RunError,
    TargetError,
    WeightsError,
)
from .images import load_image, load_images
from .layers import LayerInfo
from .models import DEFAULT, ModelHandle, load_model, torchvision_classifiers
from .predictions import TopClasses, top_classes
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .targets import Classes, Contrast, TopK


def __getattr__(name: str):
    """``evaluate`` and ``find_bias`` load the evaluation package (and pandas) on first use."""
    if name in ("evaluate", "find_bias"):
        from . import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module 'explain' has no attribute {name!r}")


__all__ = [
    "DEFAULT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "METHODS",
    "METHOD_INFO",
    "AttentionError",
    "CamResult",
    "Classes",
    "Contrast",
    "EngineError",
    "ExplainError",
    "ImageLoadError",
    "InputSizeError",
    "LayerError",
    "LayerInfo",
    "MethodNotApplicable",
    "MethodResults",
    "ModelHandle",
    "ModelLoadError",
    "NetworkError",
    "Preprocess",
    "PromptError",
    "RunError",
    "TargetError",
    "TopClasses",
    "TopK",
    "WeightsError",
    "applicable_methods",
    "compute_cams",
    "compute_methods",
    "evaluate",
    "find_bias",
    "guided_backprop",
    "load_image",
    "load_images",
    "load_model",
    "show",
    "top_classes",
    "torchvision_classifiers",
]

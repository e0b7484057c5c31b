"""The ``timm:<name>`` source: any image classifier of ``timm`` (``timm:convnext_tiny``, or
with a pretrained tag ``timm:vit_small_patch16_224.augreg_in1k``), with its pretrained config
(input size, mean / std, crop, interpolation, labels). Pretrained weights come from the Hugging
Face hub (or timm's own URL) through ``timm.create_model(name, pretrained=True)``; ``weights=None``
builds the architecture with random weights offline; a file path loads a state dict or
safetensors file with key checks. ``model_args`` (or ``timm:name(img_size=96)``) go to
``timm.create_model``.
"""

from __future__ import annotations

import difflib
import functools
import math
from typing import Any
from urllib.parse import urlparse

from torch import nn

from ..builtin.imagenet import imagenet_labels
from ..checkpoints import head_classes, load_weights, read_state_dict
from ..errors import ModelLoadError, NetworkError
from ..preprocessing import Preprocess
from . import network
from .source import DEFAULT, Loaded, Request, generic_labels, is_path

_RANDOM_NOTE = (
    "random weights (weights=None): predictions and maps are meaningless except for testing."
)


def _timm() -> Any:
    try:
        import timm
    except ImportError as exc:
        raise ModelLoadError(
            "The timm source needs the package timm, which is not installed.",
            hint="pip install timm",
        ) from exc
    return timm


@functools.cache
def timm_classifiers() -> tuple[str, ...]:
    """Names of every timm architecture (``timm.list_models()``), without pretrained tags."""
    return tuple(_timm().list_models())


def _check_name(name: str) -> None:
    """A registered architecture, with a known pretrained tag when one is given."""
    timm = _timm()
    if name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise ModelLoadError(
            f"timm:{name} is not supported: the timm source takes registered names only.",
            hint="give the architecture with its pretrained tag (e.g. timm:resnet50.a1_in1k), "
            "or load a hub repository with 'hf:<id>'.",
        )
    if not timm.is_model(name):
        arch = name.partition(".")[0]
        close = difflib.get_close_matches(arch, timm_classifiers(), n=3, cutoff=0.6)
        raise ModelLoadError(
            f"{arch!r} is not a timm model.",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "see timm.list_models('*pattern*').",
        )
    try:
        timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown pretrained tag
        arch = name.partition(".")[0]
        tags = timm.list_models(arch, pretrained=True)
        raise ModelLoadError(
            f"timm has no pretrained tag {name!r}: {exc}",
            hint=f"known: {', '.join(tags[:8]) or 'none'}; or give the name without a tag.",
        ) from exc


def _create(name: str, kwargs: dict[str, Any], **extra: Any) -> nn.Module:
    try:
        return _timm().create_model(name, **{**kwargs, **extra})
    except TypeError as exc:  # an argument the architecture does not take
        raise ModelLoadError(
            f"timm.create_model({name!r}) does not accept {kwargs}: {exc}",
            hint="give only arguments the architecture takes, e.g. img_size=96, num_classes=10.",
        ) from exc


# -- pretrained weights -------------------------------------------------------------------------
def _hub_files(cfg: Any) -> list[str]:
    if cfg.hf_hub_filename:
        return [cfg.hf_hub_filename]
    return ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]


def _cached(cfg: Any) -> bool:
    """Whether the weights of ``cfg`` are already on this machine (hub cache or torch hub)."""
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in _hub_files(cfg):
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return True
    return bool(cfg.url) and network.torch_hub_file(cfg.url).exists()


def _pretrained(name: str, kwargs: dict[str, Any], spec: str) -> nn.Module:
    """``timm.create_model(name, pretrained=True)``, after checking that the weights can come."""
    cfg = _timm().models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ModelLoadError(
            f"timm has no pretrained weights for {name!r}.",
            hint="pass weights='path/to/weights.safetensors', or weights=None for random weights.",
        )
    if not _cached(cfg):
        if cfg.hf_hub_id:
            where, ok = network.hub_endpoint(), network.hub_reachable()
        else:
            where, ok = cfg.url, network.reachable(cfg.url)
        if not ok:
            raise NetworkError(
                f"Cannot download the pretrained weights of {spec} "
                f"({cfg.hf_hub_id or cfg.url}): {urlparse(where).hostname} is not reachable and "
                "the weights are not in the local cache.",
                hint="connect to the internet once (files are cached), or pass "
                "weights='path/to/weights.safetensors', or weights=None for random weights, or "
                "use the offline model 'builtin:efficientnet-lite0'.",
            )
    try:
        return _create(name, kwargs, pretrained=True)
    except ModelLoadError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        raise NetworkError(
            f"Loading the pretrained weights of {spec} failed: {type(exc).__name__}: {exc}",
            hint="check the connection (or the cached file), or pass a local weights file.",
        ) from exc


def _from_file(name: str, kwargs: dict[str, Any], path: Any, notes: list[str]) -> nn.Module:
    """The architecture with a weights file's tensors (the head resized to the file's classes
    when only it differs); keys and shapes are checked."""
    state = read_state_dict(path)
    model = _create(name, kwargs)
    if "num_classes" not in kwargs:
        classes = head_classes(model, state, int(model.num_classes))
        if classes is not None:
            model = _create(name, kwargs, num_classes=classes)
            notes.append(f"classifier head resized to the file's {classes} classes.")
    load_weights(model, state)
    return model


# -- what the pretrained config says ------------------------------------------------------------
def _preprocessing(model: nn.Module, kwargs: dict[str, Any]) -> tuple[Preprocess, list[str]]:
    """The evaluation preprocessing of timm's data config (``resolve_model_data_config``):
    resize the shorter side to ``floor(size / crop_pct)``, centre crop, interpolation and
    mean / std as the weights were trained with."""
    config = _timm().data.resolve_model_data_config(model)
    size = kwargs.get("img_size") or config["input_size"][1:]
    h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    crop_pct = float(config.get("crop_pct") or 0.875)
    mode = config.get("crop_mode") or "center"
    notes = []
    if mode == "squash" and crop_pct >= 1.0:
        resize = None  # squash with no crop: straight to the input size
    else:
        resize = math.floor(min(h, w) / crop_pct)
        if mode != "center" or h != w:
            notes.append(
                f"timm's crop mode {mode!r} ({h}x{w}, crop_pct {crop_pct}) is approximated by a "
                f"centre crop after resizing the shorter side to {resize}."
            )
    interpolation = str(config.get("interpolation") or "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        notes.append(f"interpolation {interpolation!r} replaced by bicubic.")
        interpolation = "bicubic"
    preprocess = Preprocess(
        input_size=(h, w),
        resize=resize,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=interpolation,
    )
    return preprocess, notes


def _labels(model: nn.Module) -> list[str]:
    """Class names from the pretrained config (``label_names`` / ``label_descriptions``), else
    the ImageNet subset its class count stands for, else ``class i``."""
    timm = _timm()
    n = int(model.num_classes)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    names = cfg.get("label_names")
    if names and len(names) == n:
        descriptions = cfg.get("label_descriptions") or {}
        return [str(descriptions.get(k, k)) for k in names]
    subset = timm.data.infer_imagenet_subset(model)
    if subset == "imagenet-1k":
        return list(imagenet_labels())  # torchvision's names, as every other source
    if subset is not None:
        info = timm.data.ImageNetInfo(subset)
        return [d.split(",")[0] for d in info.label_descriptions()]
    return generic_labels(n)


def load(request: Request) -> Loaded:
    """Load ``timm:<name>`` (see :class:`~explain.models.source.Request`)."""
    name, weights, spec = request.ref, request.weights, request.spec
    _check_name(name)
    kwargs = dict(request.model_args)
    notes: list[str] = []
    if weights == DEFAULT:
        model = _pretrained(name, kwargs, spec)
    elif weights is None:
        model = _create(name, kwargs, pretrained=False)
        notes.append(_RANDOM_NOTE)
    elif is_path(weights):
        model = _from_file(name, kwargs, weights, notes)
    else:
        raise ModelLoadError(
            f"weights={weights!r} is not understood for {spec}.",
            hint="use weights='DEFAULT', None, or a file path.",
        )
    if not int(getattr(model, "num_classes", 0) or 0):
        raise ModelLoadError(
            f"{spec} has no classifier head (num_classes=0: its weights are a feature "
            "extractor's).",
            hint="choose a tag fine-tuned for classification, or give num_classes (e.g. "
            f"'timm:{name}(num_classes=10)') with your own weights file.",
        )
    preprocessor, preprocess_notes = _preprocessing(model, kwargs)
    return Loaded(
        model=model,
        labels=request.labels if request.labels is not None else _labels(model),
        preprocessor=preprocessor,
        notes=notes + preprocess_notes,
    )

"""The ``open_clip:<name>`` source: CLIP models of the ``open_clip`` package, ViT and ResNet
(``ModifiedResNet``) image towers alike.

Specs: ``open_clip:ViT-B-32`` (pretrained weights: the ``openai`` tag when there is one, else
the first listed), ``open_clip:ViT-B-32.laion2b_s34b_b79k`` or ``weights="laion2b_s34b_b79k"``
(a tag), ``weights="path/to/checkpoint"``, ``weights=None`` (random, offline),
``open_clip:hf-hub:<org/repo>`` and ``open_clip:/path/to/folder`` (a folder with
``open_clip_config.json`` and its weights). The classes are text prompts; the logits are the
model's own ``logit_scale.exp() * image_features @ text_features.T`` (``+ logit_bias``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadError, NetworkError
from ..preprocessing import Preprocess
from . import network
from .clip import CLIP_MEAN, CLIP_STD, last_block_norm
from .prompts import PromptClassifier, PromptEncoder
from .source import DEFAULT, Loaded, Request, is_path

_HF_HUB = "hf-hub:"
_LOCAL_DIR = "local-dir:"
#: Weight files open_clip looks for in a hub repository.
_HUB_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
)


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise ModelLoadError(
            "The open_clip source needs the package open_clip_torch, which is not installed.",
            hint="pip install open_clip_torch, or use a Hugging Face CLIP model ('clip:<id>').",
        ) from exc
    return open_clip


class OpenCLIPClassifier(PromptClassifier):
    """An open_clip model's image tower (``visual``) over prompts."""

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual(pixel_values)

    @staticmethod
    def normalize(features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=-1)  # as encode_image / encode_text(normalize=True)


# -- which model, which weights -------------------------------------------------------------------
def _split_tag(ref: str) -> tuple[str, str | None]:
    """``"ViT-B-32.laion2b_s34b_b79k"`` -> (``"ViT-B-32"``, the tag); no tag -> None."""
    name, dot, tag = ref.partition(".")
    return (name, tag) if dot and tag else (ref, None)


def _check_name(name: str) -> None:
    models = _open_clip().list_models()
    if name.replace("/", "-") not in models:
        close = difflib.get_close_matches(name, models, n=3, cutoff=0.6)
        raise ModelLoadError(
            f"{name!r} is not an open_clip model.",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "see open_clip.list_models(); or give 'open_clip:hf-hub:<org/repo>' or a folder.",
        )


def _default_tag(name: str) -> str:
    tags = _open_clip().list_pretrained_tags_by_model(name)
    if not tags:
        raise ModelLoadError(
            f"open_clip has no pretrained weights for {name!r}.",
            hint="pass weights='path/to/checkpoint', or weights=None for random weights.",
        )
    return "openai" if "openai" in tags else tags[0]


def _cached(cfg: dict[str, Any]) -> bool:
    """Whether the weights of a pretrained tag are on this machine already."""
    hub = cfg.get("hf_hub") or ""
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)  # "org/repo/" names the repository's default files
        names = [filename] if filename else list(_HUB_FILES)
        if any(isinstance(try_to_load_from_cache(repo, f), str) for f in names):
            return True
    url = cfg.get("url") or ""
    return bool(url) and (Path.home() / ".cache" / "clip" / os.path.basename(url)).exists()


def _check_download(cfg: dict[str, Any], spec: str) -> None:
    """A clear error at once when the weights are neither cached nor downloadable."""
    if _cached(cfg):
        return
    if cfg.get("hf_hub"):
        where, ok = network.hub_endpoint(), network.hub_reachable()
    else:
        where, ok = cfg.get("url", ""), network.reachable(cfg.get("url", ""))
    if not ok:
        raise NetworkError(
            f"Cannot download the pretrained weights of {spec}: {urlparse(where).hostname} is "
            "not reachable and the weights are not in the local cache.",
            hint="connect to the internet once (files are cached), or pass "
            "weights='path/to/checkpoint', or weights=None for random weights.",
        )


def _create(request: Request) -> tuple[nn.Module, str, list[str]]:
    """The open_clip model, the name its tokenizer is found by, and notes."""
    open_clip = _open_clip()
    ref, weights, spec = str(request.ref), request.weights, request.spec
    notes: list[str] = []
    folder = Path(ref.removeprefix(_LOCAL_DIR)).expanduser()
    if ref.startswith(_LOCAL_DIR) or folder.is_dir() or ref.startswith(("/", ".", "~")):
        if not (folder / "open_clip_config.json").is_file():
            raise ModelLoadError(
                f"No open_clip model folder at {folder} (open_clip_config.json is missing).",
                hint="give a folder with open_clip_config.json and its weights file.",
            )
        name, kwargs = f"{_LOCAL_DIR}{folder}", {"load_weights": weights is not None}
    elif ref.startswith(_HF_HUB):
        repo = ref.removeprefix(_HF_HUB)
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(repo, "open_clip_config.json"), str)
        if not cached and not network.hub_reachable():
            raise NetworkError(
                f"Cannot download {spec}: the Hugging Face hub is not reachable and the model "
                "is not in the local cache.",
                hint="connect to the internet once (files are cached), or use a local folder.",
            )
        name, kwargs = ref, {"load_weights": weights is not None}
    else:
        name, tag = _split_tag(ref)
        _check_name(name)
        kwargs = {}
        if weights == DEFAULT or (isinstance(weights, str) and not is_path(weights)):
            tag = tag or (_default_tag(name) if weights == DEFAULT else str(weights))
            cfg = open_clip.get_pretrained_cfg(name, tag)
            if not cfg:
                tags = open_clip.list_pretrained_tags_by_model(name)
                raise ModelLoadError(
                    f"open_clip has no pretrained tag {tag!r} for {name!r}.",
                    hint=f"known: {', '.join(tags) or 'none'}.",
                )
            _check_download(cfg, spec)
            # The tag's activation (OpenAI's weights use QuickGELU) must be the model's.
            kwargs = {"pretrained": tag, "force_quick_gelu": bool(cfg.get("quick_gelu"))}
            notes.append(f"pretrained weights: {name} {tag}.")
        elif weights is None:
            kwargs = {"pretrained_image": False, "pretrained_text": False}
            notes.append("random weights (weights=None).")
        elif is_path(weights):
            if not Path(weights).is_file():
                raise ModelLoadError(f"Weights file not found: {weights}")
            kwargs = {"pretrained": str(weights)}
        else:
            raise ModelLoadError(
                f"weights={weights!r} is not understood for {spec}.",
                hint="use weights='DEFAULT', a pretrained tag, None, or a file path.",
            )
    try:
        model = open_clip.create_model(name, device="cpu", **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"open_clip could not create {spec}: {exc}") from exc
    return model.eval(), name, notes


def _preprocessing(model: nn.Module) -> tuple[Preprocess, list[str]]:
    """open_clip's evaluation preprocessing: resize the shorter side to the input size, centre
    crop, its interpolation and mean / std."""
    cfg = _open_clip().get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    notes = []
    mode = cfg.get("resize_mode", "shortest")
    resize: int | None = min(h, w)
    if mode == "squash":
        resize = None
    elif mode != "shortest":
        notes.append(f"open_clip's resize mode {mode!r} is approximated by a centre crop.")
    interpolation = str(cfg.get("interpolation", "bicubic"))
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bicubic"
    preprocess = Preprocess(
        input_size=(h, w),
        resize=resize,
        mean=tuple(cfg.get("mean", CLIP_MEAN)),
        std=tuple(cfg.get("std", CLIP_STD)),
        interpolation=interpolation,
    )
    return preprocess, notes


def text_encoder(model: nn.Module, tokenizer: Any) -> PromptEncoder:
    """Prompts -> ``model.encode_text`` of their tokens."""

    def encode(texts: list[str]) -> torch.Tensor:
        return model.encode_text(tokenizer(texts).to(model.logit_scale.device))

    return PromptEncoder(encode, model)


def load(request: Request) -> Loaded:
    """Load ``open_clip:<name>`` (see :class:`~explain.models.source.Request`)."""
    open_clip = _open_clip()
    model, name, notes = _create(request)
    for needed in ("visual", "encode_text", "logit_scale"):
        if not hasattr(model, needed):
            raise ModelLoadError(f"{request.spec} is not a CLIP model (it has no {needed}).")
    try:
        tokenizer = open_clip.get_tokenizer(name)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"The tokenizer of {request.spec} cannot be loaded: {exc}") from exc
    preprocessor, preprocess_notes = _preprocessing(model)
    classifier = OpenCLIPClassifier(
        model, {"visual": model.visual}, text_encoder(model, tokenizer), request.prompts
    )
    default = last_block_norm(classifier)
    return Loaded(
        model=classifier,
        labels=list(classifier.prompts),
        preprocessor=preprocessor,
        notes=notes + preprocess_notes,
        default_layers=(default,) if default else (),
    )

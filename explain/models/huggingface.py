"""The ``hf:<hub id or folder>`` source: Hugging Face ``transformers`` image classifiers
(``AutoModelForImageClassification`` with its ``AutoImageProcessor``), from the hub or a folder
written by ``save_pretrained``. A repository's own code runs only with ``trust_remote_code``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import load_weights
from ..errors import ModelLoadError, NetworkError
from ..preprocessing import HFPreprocess, Preprocess, Preprocessor
from . import network
from .source import DEFAULT, Loaded, Request, is_path


class HFClassifier(nn.Module):
    """A ``transformers`` image classifier as ``model(pixel_values) -> logits``.

    The wrapped model's children are registered under their own names, so module paths stay
    those of the Hugging Face model (``vit.encoder.layer.11...``), and the state dict is the same.
    """

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.__dict__["hf_model"] = hf_model  # not a registered child: its children are
        for name, child in hf_model.named_children():
            self.add_module(name, child)
        for name, param in hf_model.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, buf in hf_model.named_buffers(recurse=False):
            self.register_buffer(name, buf)

    @property
    def config(self) -> Any:
        return self.hf_model.config

    def train(self, mode: bool = True) -> HFClassifier:
        super().train(mode)
        self.hf_model.train(mode)
        return self

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.hf_model(pixel_values=pixel_values).logits


#: An example spec per prefix, for hints.
_EXAMPLES = {"hf": "hf:microsoft/resnet-50", "clip": "clip:openai/clip-vit-base-patch32"}


def _hf_error(ref: str, exc: Exception, prefix: str = "hf") -> ModelLoadError:
    from huggingface_hub import errors as hub_errors

    chain = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 6:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    kinds = tuple(type(e) for e in chain)
    text = " ".join(str(e) for e in chain)
    if any(issubclass(k, hub_errors.GatedRepoError) for k in kinds):
        return ModelLoadError(
            f"The Hugging Face model {ref!r} is gated: its files need an accepted licence.",
            hint="accept the terms on its page at huggingface.co, log in with "
            "`hf auth login`, then try again; or use a local folder saved with save_pretrained.",
        )
    if any(issubclass(k, hub_errors.RepositoryNotFoundError) for k in kinds) or (
        "is not a valid model identifier" in text or "not a local folder" in text
    ):
        return ModelLoadError(
            f"There is no Hugging Face model {ref!r} (the id does not exist, or it is private).",
            hint=f"check the spelling (e.g. {_EXAMPLES.get(prefix, prefix + ':<id>')}), or give a "
            f"local folder saved with save_pretrained as {prefix}:/path/to/folder.",
        )
    if "trust_remote_code" in text:
        return ModelLoadError(
            f"{ref!r} needs custom code from its repository, which is not run by default.",
            hint="pass trust_remote_code=True only if you trust the repository's code.",
        )
    if "Unrecognized configuration class" in text or "Unrecognized model" in text:
        return ModelLoadError(
            f"{ref!r} is not an image-classification model that transformers knows.",
            hint="choose a model with an image-classification head (e.g. hf:google/vit-base-"
            "patch16-224).",
        )
    if any(issubclass(k, hub_errors.LocalEntryNotFoundError | ConnectionError) for k in kinds) or (
        "couldn't connect" in text
    ):
        return _hf_offline_error(ref, prefix)
    return ModelLoadError(f"Loading the Hugging Face model {ref!r} failed: {exc}")


def _hf_offline_error(ref: str, prefix: str = "hf") -> NetworkError:
    return NetworkError(
        f"Cannot download the Hugging Face model {ref!r}: huggingface.co is not reachable and "
        "the model is not in the local cache.",
        hint="connect to the internet once (files are cached in ~/.cache/huggingface), or copy a "
        f"folder made with save_pretrained and load it as {prefix}:/path/to/folder, or use the "
        "offline model 'builtin:shapes'.",
    )


def hub_source(ref: str) -> tuple[str, bool]:
    """``ref`` (a hub id or a folder) -> (what ``from_pretrained`` gets, whether it is a local
    folder); a clear error for a path that names no folder."""
    local = Path(ref).expanduser()
    is_local = local.is_dir()
    if not is_local and (
        ref.startswith(("/", ".", "~"))
        or os.sep in ref.strip("/").replace("/", "", 1)
        or local.exists()
    ):
        raise ModelLoadError(
            f"Hugging Face model folder not found: {local}",
            hint="give the folder that save_pretrained wrote (with config.json).",
        )
    return (str(local) if is_local else ref), is_local


def hub_fetcher(
    ref: str, is_local: bool, trust_remote_code: bool, prefix: str = "hf"
) -> Callable[..., Any]:
    """``fetch(fn, *args, **kwargs)``: ``fn`` (a ``from_pretrained``) from the local folder or
    cache first, the network only when needed and reachable; failures become clear errors."""
    common = {"trust_remote_code": trust_remote_code}

    def fetch(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if is_local:
            return fn(*args, **kwargs, **common)
        try:
            return fn(*args, **kwargs, local_files_only=True, **common)
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError) and "trust_remote_code" in str(exc):
                raise _hf_error(ref, exc, prefix) from exc
        if not network.hub_reachable():
            raise _hf_offline_error(ref, prefix)
        try:
            return fn(*args, **kwargs, **common)
        except (OSError, ValueError) as exc:
            raise _hf_error(ref, exc, prefix) from exc

    return fetch


def hub_model(
    auto: Any,
    request: Request,
    source: str,
    config: Any,
    fetch: Callable[..., Any],
    notes: list[str],
    wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
    prefix: str = "hf",
) -> nn.Module:
    """The model of ``auto`` (an ``AutoModel...`` class) for ``request.weights``: pretrained
    (``DEFAULT``, through ``fetch``), random (``None``), or a weights file loaded into
    ``wrap(model)`` (the key names the file uses)."""
    weights, spec = request.weights, request.spec
    try:
        if weights == DEFAULT:
            return fetch(auto.from_pretrained, source, config=config)
        model = auto.from_config(config, trust_remote_code=request.trust_remote_code)
        if weights is None:
            notes.append("random weights (weights=None).")
        elif is_path(weights):
            load_weights(wrap(model), weights)
        else:
            raise ModelLoadError(
                f"weights={weights!r} is not understood for {spec}.",
                hint="use weights='DEFAULT', None, or a file path.",
            )
        return model
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise _hf_error(request.ref, exc, prefix) from exc


def load(request: Request) -> Loaded:
    """Load ``hf:<hub id or folder>`` (see :class:`~explain.models.source.Request`)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    ref, labels = request.ref, request.labels
    source, is_local = hub_source(ref)
    fetch = hub_fetcher(ref, is_local, request.trust_remote_code)

    try:
        config = fetch(AutoConfig.from_pretrained, source)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise _hf_error(ref, exc) from exc
    notes: list[str] = []
    hf_model = hub_model(
        AutoModelForImageClassification, request, source, config, fetch, notes, HFClassifier
    )
    model = HFClassifier(hf_model)
    size = _hf_input_size(config)
    try:
        processor = fetch(AutoImageProcessor.from_pretrained, source)
        preprocessor: Preprocessor = HFPreprocess(
            processor, input_size=_processor_size(processor, size)
        )
    except (OSError, ValueError, ModelLoadError):
        preprocessor = Preprocess(input_size=size)
        notes.append(
            "no image processor found: resized to the config's image size with "
            "ImageNet normalisation."
        )
    if labels is None:
        id2label = getattr(config, "id2label", None) or {}
        labels = [
            str(id2label.get(i, id2label.get(str(i), f"class {i}")))
            for i in range(int(config.num_labels))
        ]
    return Loaded(model=model, labels=labels, preprocessor=preprocessor, notes=notes)


def _hf_input_size(config: Any) -> tuple[int, int]:
    size = getattr(config, "image_size", None) or 224
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _processor_size(processor: Any, fallback: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the processor's output, measured once on a blank image."""
    from PIL import Image

    try:
        pixels = processor(images=[Image.new("RGB", (320, 256))], return_tensors="pt")
        shape = pixels["pixel_values"].shape
        return int(shape[-2]), int(shape[-1])
    except (ValueError, TypeError, KeyError):
        return fallback

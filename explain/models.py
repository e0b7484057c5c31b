"""Loading classifiers from torchvision, Hugging Face, the project itself or the user, behind one
:class:`ModelHandle`.

Specs::

    torchvision:<name>          any classifier in torchvision.models.list_models(module=models)
    hf:<hub id or folder>       AutoModelForImageClassification (+ AutoImageProcessor)
    builtin:<name>              offline: shapes, shapes-biased, efficientnet-lite0/1/2 (ImageNet)
    <package.module>:<factory>  a user's own architecture (also: an nn.Module or a callable)
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import os
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn

from .checkpoints import load_weights, match_keys, read_state_dict
from .errors import LayerError, ModelLoadError, NetworkError, TargetError
from .images import ImageSource
from .layers import LayerInfo, Probe, block_layers, first_tensor, probe_model, stage_layers
from .preprocessing import CallablePreprocess, HFPreprocess, Preprocess, Preprocessor

#: ``weights=DEFAULT`` asks for the source's own pretrained weights (downloaded when needed).
DEFAULT = "DEFAULT"

#: Family-specific default CAM layers where the generic rule would pick a classifier layer.
_TORCHVISION_DEFAULT_LAYERS = {"squeezenet": ("features",)}

_SPEC_HELP = (
    "use 'torchvision:<name>' (e.g. torchvision:resnet50), 'hf:<hub id or local folder>' "
    "(e.g. hf:microsoft/resnet-50), 'builtin:efficientnet-lite0' (ImageNet, offline), "
    "'builtin:shapes', or 'package.module:factory' for your own architecture."
)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"Unknown device {device!r}.", hint="use 'cpu' or 'cuda'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "device='cuda' was asked for but no CUDA GPU is available.",
            hint="use device='cpu' (or leave device unset).",
        )
    return dev


class ModelHandle:
    """A classifier with what explaining it needs: labels, preprocessing, layers, a lock.

    Attributes:
        model: the ``nn.Module`` in eval mode; ``model(x)`` returns logits ``(N, num_classes)``.
        name: display name; ``spec``: the spec it was loaded from; ``source``: "torchvision",
            "hf", "builtin" or "user".
        labels: class names, index -> name.
        preprocessor: turns images into the model's input (see :mod:`explain.preprocessing`).
        device: where the model lives.
        lock: serialises calls that hook the model (one shared model, many threads).
        notes: things worth telling a user about how it was loaded.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        labels: Sequence[str],
        preprocessor: Preprocessor,
        spec: str,
        source: str,
        device: torch.device,
        default_layers: Sequence[str] = (),
        notes: Sequence[str] = (),
    ):
        self.model = model.eval()
        self.name = name
        self.labels = [str(label) for label in labels]
        self.preprocessor = preprocessor
        self.spec = spec
        self.source = source
        self.device = device
        self.lock = threading.RLock()
        self.notes = list(notes)
        self._preferred_layers = tuple(default_layers)
        self._probe: Probe | None = None

    def __repr__(self) -> str:
        return (
            f"ModelHandle({self.name!r}, source={self.source!r}, classes={self.num_classes}, "
            f"device={self.device})"
        )

    # -- what the model expects -------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the model's input tensor."""
        return tuple(self.preprocessor.input_size)

    def preprocess(self, images: ImageSource | Sequence[ImageSource]) -> torch.Tensor:
        """Images (PIL, paths, bytes, arrays) -> ``(N, 3, H, W)`` float32 tensor on the CPU."""
        return self.preprocessor(images)

    def prepare(self, images: ImageSource | Sequence[ImageSource]) -> np.ndarray:
        """Images -> ``(N, H, W, 3)`` uint8: resized / cropped exactly as the model sees them,
        for overlays."""
        return self.preprocessor.prepare(images)

    # -- layers ---------------------------------------------------------------------------------
    def _ensure_probe(self) -> Probe:
        if self._probe is None:
            with self.lock:
                if self._probe is None:
                    generator = torch.Generator().manual_seed(0)
                    x = torch.randn(1, 3, *self.input_size, generator=generator).to(self.device)
                    self._probe = probe_model(self.model, x, prefer=self._preferred_layers)
        return self._probe

    @property
    def layers(self) -> list[LayerInfo]:
        """Every module by path (``named_modules()`` order), with its output kind and shape."""
        return list(self._ensure_probe().layers)

    @property
    def map_layers(self) -> list[LayerInfo]:
        """The layers where a CAM can be computed (spatial or token-grid outputs)."""
        return [info for info in self.layers if info.has_map]

    @property
    def default_layer(self) -> str:
        """The usual Grad-CAM layer for this architecture."""
        default = self._ensure_probe().default_layer
        if default is None:
            raise LayerError(f"{self.name} has no layer with a spatial or token-grid output.")
        return default

    def stage_layers(self, count: int = 4) -> list[str]:
        """The last block of every stage (CNNs) or ``count`` evenly spaced blocks
        (transformers): the layers to compare first."""
        return stage_layers(self._ensure_probe().layers, self.model, self.default_layer, count)

    def block_layers(self, limit: int = 64) -> list[str]:
        """Every block's output, in depth order (at most ``limit``)."""
        return block_layers(self._ensure_probe().layers, self.model, limit)

    def layer(self, name: str) -> LayerInfo:
        """The :class:`LayerInfo` of ``name``; a clear error (with close names) otherwise."""
        by_name = {info.name: info for info in self._ensure_probe().layers}
        if name in by_name:
            return by_name[name]
        close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.5)
        raise LayerError(
            f"{self.name} has no layer {name!r}.",
            hint=(f"did you mean {', '.join(map(repr, close))}? " if close else "")
            + f"Layers with a map: {', '.join(i.name for i in self.map_layers[-6:])} "
            "(see handle.layers for all).",
        )

    def map_layer(self, name: str) -> LayerInfo:
        """Like :meth:`layer`, but the layer must have a spatial or token-grid output."""
        info = self.layer(name)
        if not info.has_map:
            raise LayerError(
                f"Layer {name!r} of {self.name} outputs {info.kind} data of shape {info.shape}, "
                "not a spatial map, so it cannot give a class-activation map.",
                hint=f"choose a convolutional or transformer-block layer, e.g. "
                f"{self.default_layer!r}.",
            )
        return info

    # -- classes --------------------------------------------------------------------------------
    def class_index(self, target: int | str) -> int:
        """A class index from an index or a (case-insensitive) label; a clear error otherwise."""
        if isinstance(target, bool):
            raise TargetError(f"{target!r} is not a class index.")
        if isinstance(target, int | np.integer):
            index = int(target)
            if not 0 <= index < self.num_classes:
                raise TargetError(
                    f"Class index {index} is out of range: {self.name} has {self.num_classes} "
                    f"classes (0 to {self.num_classes - 1}).",
                )
            return index
        if isinstance(target, str):
            lowered = [label.lower() for label in self.labels]
            if target.lower() in lowered:
                return lowered.index(target.lower())
            close = difflib.get_close_matches(target.lower(), lowered, n=3, cutoff=0.6)
            raise TargetError(
                f"{self.name} has no class named {target!r}.",
                hint=f"did you mean {', '.join(repr(self.labels[lowered.index(c)]) for c in close)}?"
                if close
                else "pass a class index or one of handle.labels.",
            )
        raise TargetError(f"A target class must be an int or a label, got {type(target).__name__}.")

    # -- inference ------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Logits ``(N, num_classes)`` float32 on the CPU, without gradients."""
        if not isinstance(x, torch.Tensor):
            x = self.preprocess(x)
        chunks = []
        with self.lock, torch.inference_mode():
            for start in range(0, len(x), batch_size):
                out = first_tensor(self.model(x[start : start + batch_size].to(self.device)))
                chunks.append(out.float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.num_classes)

    def predict(self, x: torch.Tensor | Sequence[ImageSource], batch_size: int = 64) -> np.ndarray:
        """Softmax probabilities ``(N, num_classes)`` float32; ``x`` a tensor or images."""
        return torch.softmax(self.logits(x, batch_size), dim=1).numpy()

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of the spec and all parameters and buffers (cache keys)."""
        digest = hashlib.sha256(self.spec.encode())
        with torch.no_grad():
            for key, tensor in self.model.state_dict().items():
                digest.update(key.encode())
                digest.update(
                    tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                )
        return digest.hexdigest()[:16]


# -- helpers ------------------------------------------------------------------------------------
def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` answers on its port (quick check before a slow retry loop)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_path(weights: Any) -> bool:
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str)
        and weights != DEFAULT
        and (os.sep in weights or "." in Path(weights).name or Path(weights).exists())
    )


def _generic_labels(n: int) -> list[str]:
    return [f"class {i}" for i in range(n)]


# -- torchvision --------------------------------------------------------------------------------
@functools.cache
def torchvision_classifiers() -> tuple[str, ...]:
    """Names of every torchvision image classifier (``list_models(module=torchvision.models)``)."""
    import torchvision.models as tvm

    return tuple(tvm.list_models(module=tvm))


def _torchvision_download(weights_enum: Any, spec: str) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum: from the hub cache, else downloaded."""
    url = weights_enum.url
    filename = os.path.basename(urlparse(url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not cached.exists() and not _reachable(url):
        raise NetworkError(
            f"Cannot download the pretrained weights of {spec} ({weights_enum}): "
            f"{urlparse(url).hostname} is not reachable and {filename} is not in the cache "
            f"{cached.parent}.",
            hint=f"connect to the internet once, or copy {filename} into {cached.parent}, "
            "or pass weights='path/to/state_dict.pth', or weights=None for random weights, "
            "or use the offline model 'builtin:shapes'.",
        )
    try:
        return torch.hub.load_state_dict_from_url(
            url,
            map_location="cpu",
            progress=True,
            check_hash=True,
            weights_only=True,
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise NetworkError(
            f"Downloading the weights of {spec} from {url} failed: {exc}",
            hint="check the connection (or the file in the cache), or pass a local weights file.",
        ) from exc


def _load_torchvision(name: str, weights: Any, spec: str, labels: Sequence[str] | None) -> dict:
    import torchvision.models as tvm

    names = torchvision_classifiers()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        others = set(tvm.list_models()) - set(names)
        why = "is not an image classifier" if name in others else "is not a torchvision model"
        raise ModelLoadError(
            f"{name!r} {why}.",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "see torchvision.models.list_models(module=torchvision.models).",
        )
    enum = tvm.get_model_weights(name)
    default_weights = enum.DEFAULT
    notes: list[str] = []
    if weights == DEFAULT or (isinstance(weights, str) and weights in enum.__members__):
        chosen = default_weights if weights == DEFAULT else enum[weights]
        model = _build_torchvision(name, chosen)
        load_weights(model, _torchvision_download(chosen, spec))
        meta_weights = chosen
    elif weights is None:
        model = _build_torchvision(name, default_weights)
        meta_weights = default_weights
        notes.append(
            "random weights (weights=None): predictions and maps are meaningless "
            "except for testing."
        )
    elif _is_path(weights):
        state = read_state_dict(weights)
        model = _build_torchvision(name, default_weights)
        classes = _head_classes(model, state)
        if classes is not None:
            model = _build_torchvision(name, default_weights, num_classes=classes)
            notes.append(f"classifier head resized to the file's {classes} classes.")
        load_weights(model, state)
        meta_weights = default_weights
    else:
        raise ModelLoadError(
            f"weights={weights!r} is not understood for {spec}.",
            hint=f"use weights='DEFAULT', None, a file path, or one of {list(enum.__members__)}.",
        )
    num_outputs = _head_out_features(model)
    if labels is None:
        categories = meta_weights.meta.get("categories")
        labels = (
            categories
            if categories and len(categories) == num_outputs
            else (_generic_labels(num_outputs))
        )
    return {
        "model": model,
        "labels": labels,
        "preprocessor": Preprocess.from_torchvision(meta_weights.transforms()),
        "notes": notes,
        "default_layers": _TORCHVISION_DEFAULT_LAYERS.get(
            name.rstrip("0123456789_").rstrip("_"), ()
        ),
    }


def _build_torchvision(name: str, meta_weights: Any, **kwargs: Any) -> nn.Module:
    """The architecture with random weights, shaped like ``meta_weights`` (e.g. the input size
    that ViT-H/14's only weights need, which torchvision sets only when it downloads them)."""
    import torchvision.models as tvm

    if name.startswith("vit_") and "min_size" in meta_weights.meta:
        kwargs.setdefault("image_size", int(meta_weights.meta["min_size"][0]))
    return tvm.get_model(name, weights=None, **kwargs)


def _head_out_features(model: nn.Module) -> int:
    linear = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    last = linear[-1] if linear else None
    return int(last.out_features if isinstance(last, nn.Linear) else last.out_channels)


def _head_classes(model: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """The file's number of classes when only the classifier head differs from ``model``."""
    own = model.state_dict()
    fitted = match_keys(state, set(own))
    classes = _head_out_features(model)
    differing = {
        k: v for k, v in fitted.items() if k in own and tuple(v.shape) != tuple(own[k].shape)
    }
    if not differing:
        return None
    firsts = {int(v.shape[0]) for v in differing.values()}
    own_firsts = {int(own[k].shape[0]) for k in differing}
    if len(firsts) == 1 and own_firsts == {classes}:
        return firsts.pop()
    return None


# -- Hugging Face -------------------------------------------------------------------------------
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


def _hf_error(ref: str, exc: Exception) -> ModelLoadError:
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
            hint="check the spelling (e.g. hf:microsoft/resnet-50), or give a local folder "
            "saved with save_pretrained as hf:/path/to/folder.",
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
        return _hf_offline_error(ref)
    return ModelLoadError(f"Loading the Hugging Face model {ref!r} failed: {exc}")


def _hf_offline_error(ref: str) -> NetworkError:
    return NetworkError(
        f"Cannot download the Hugging Face model {ref!r}: huggingface.co is not reachable and "
        "the model is not in the local cache.",
        hint="connect to the internet once (files are cached in ~/.cache/huggingface), or copy a "
        "folder made with save_pretrained and load it as hf:/path/to/folder, or use the offline "
        "model 'builtin:shapes'.",
    )


def _load_hf(
    ref: str, weights: Any, spec: str, labels: Sequence[str] | None, trust_remote_code: bool
) -> dict:
    from huggingface_hub import constants as hub_constants
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

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
    source = str(local) if is_local else ref
    common = {"trust_remote_code": trust_remote_code}

    def fetch(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Local folder or cache first; the network only when needed and reachable."""
        if is_local:
            return fn(*args, **kwargs, **common)
        try:
            return fn(*args, **kwargs, local_files_only=True, **common)
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError) and "trust_remote_code" in str(exc):
                raise _hf_error(ref, exc) from exc
        endpoint = getattr(hub_constants, "ENDPOINT", "https://huggingface.co")
        if _offline_mode() or not _reachable(endpoint):
            raise _hf_offline_error(ref)
        try:
            return fn(*args, **kwargs, **common)
        except (OSError, ValueError) as exc:
            raise _hf_error(ref, exc) from exc

    try:
        config = fetch(AutoConfig.from_pretrained, source)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise _hf_error(ref, exc) from exc
    notes: list[str] = []
    try:
        if weights == DEFAULT:
            hf_model = fetch(AutoModelForImageClassification.from_pretrained, source, config=config)
        else:
            hf_model = AutoModelForImageClassification.from_config(config, **common)
            if weights is None:
                notes.append("random weights (weights=None).")
            elif _is_path(weights):
                load_weights(HFClassifier(hf_model), weights)
            else:
                raise ModelLoadError(
                    f"weights={weights!r} is not understood for {spec}.",
                    hint="use weights='DEFAULT', None, or a file path.",
                )
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise _hf_error(ref, exc) from exc
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
    return {"model": model, "labels": labels, "preprocessor": preprocessor, "notes": notes}


def _offline_mode() -> bool:
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # older huggingface_hub
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)


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


# -- built-in and user models -------------------------------------------------------------------
def _load_builtin(name: str, weights: Any) -> dict:
    from .builtin import BUILTIN_MODELS, load_builtin

    if name not in BUILTIN_MODELS:
        raise ModelLoadError(
            f"There is no built-in model {name!r}.",
            hint=f"available: {', '.join('builtin:' + n for n in BUILTIN_MODELS)}.",
        )
    # Only the shipped weights need loading; random or a user's file start from a fresh model.
    model, labels, meta = load_builtin(name, pretrained=weights == DEFAULT)
    notes = []
    if weights is None:
        notes.append("random weights (weights=None).")
    elif weights != DEFAULT:
        load_weights(model, weights)
    return {
        "model": model,
        "labels": labels,
        "preprocessor": Preprocess.from_dict(meta),
        "notes": notes,
        "default_layers": (meta["default_layer"],) if "default_layer" in meta else (),
    }


def _import_factory(ref: str) -> Callable[[], nn.Module]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"Cannot import {module_name!r} for the model {ref!r}: {exc}", hint=_SPEC_HELP
        ) from exc
    try:
        factory = functools.reduce(getattr, attr.split("."), module)
    except AttributeError as exc:
        raise ModelLoadError(
            f"{module_name!r} has no attribute {attr!r}.",
            hint="give 'package.module:factory' with a callable that returns an nn.Module.",
        ) from exc
    return factory


def _as_preprocessor(preprocess: Any, model: nn.Module) -> tuple[Preprocessor, list[str]]:
    if preprocess is None:
        return Preprocess(input_size=(224, 224), resize=256), [
            "no preprocessing given: ImageNet defaults (resize 256, crop 224, ImageNet mean/std)."
        ]
    if isinstance(preprocess, Preprocess | HFPreprocess | CallablePreprocess):
        return preprocess, []
    if isinstance(preprocess, dict):
        return Preprocess.from_dict(preprocess), []
    if callable(preprocess):
        from PIL import Image

        sample = preprocess(Image.new("RGB", (64, 64)))
        return CallablePreprocess(preprocess, (int(sample.shape[-2]), int(sample.shape[-1]))), []
    raise ModelLoadError(
        f"preprocess={type(preprocess).__name__} is not understood.",
        hint="pass explain.Preprocess(...), a dict, or a callable PIL image -> (3, H, W) tensor.",
    )


def _load_user(
    obj: nn.Module | Callable[[], nn.Module],
    weights: Any,
    spec: str,
    labels: Sequence[str] | None,
    preprocess: Any,
) -> dict:
    if isinstance(obj, nn.Module):
        model = obj
    else:
        try:
            model = obj()
        except TypeError as exc:
            raise ModelLoadError(
                f"Calling the factory {spec!r} failed: {exc}",
                hint="the factory must take no required arguments.",
            ) from exc
        if not isinstance(model, nn.Module):
            raise ModelLoadError(f"{spec!r} returned {type(model).__name__}, not an nn.Module.")
    if weights is not None and weights != DEFAULT:
        load_weights(model, weights)
    preprocessor, notes = _as_preprocessor(preprocess, model)
    if labels is None:
        with torch.inference_mode():
            device = next(iter(model.parameters()), torch.empty(0)).device
            out = first_tensor(
                model.eval()(torch.zeros(1, 3, *preprocessor.input_size, device=device))
            )
        labels = _generic_labels(int(out.shape[-1]))
        notes.append("no labels given: classes are named by index.")
    return {"model": model, "labels": labels, "preprocessor": preprocessor, "notes": notes}


# -- entry point --------------------------------------------------------------------------------
def load_model(
    spec: str | nn.Module | Callable[[], nn.Module],
    weights: Any = DEFAULT,
    device: str | torch.device | None = None,
    *,
    labels: Sequence[str] | None = None,
    preprocess: Any = None,
    trust_remote_code: bool = False,
    name: str | None = None,
) -> ModelHandle:
    """Load a classifier and wrap it in a :class:`ModelHandle`.

    Args:
        spec: ``"torchvision:<name>"``, ``"hf:<hub id or folder>"``, ``"builtin:<name>"``,
            ``"package.module:factory"``, an ``nn.Module`` or a factory callable.
        weights: ``"DEFAULT"`` (the source's pretrained weights, downloaded on first use),
            ``None`` (random initialisation), a path to a state-dict / checkpoint /
            safetensors file, or a torchvision weights name such as ``"IMAGENET1K_V2"``.
        device: ``None``/``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        labels: class names (overrides those of the source).
        preprocess: for user models, an :class:`~explain.preprocessing.Preprocess`, a dict of
            its fields, or a callable ``PIL image -> (3, H, W) tensor``.
        trust_remote_code: let Hugging Face run the repository's own code (off by default).
        name: display name (default: from the spec).

    Raises:
        ModelLoadError: (or its subclasses NetworkError, WeightsError) with what to do instead.
    """
    dev = resolve_device(device)
    if isinstance(spec, nn.Module) or (callable(spec) and not isinstance(spec, str)):
        display = name or (
            type(spec).__name__
            if isinstance(spec, nn.Module)
            else getattr(spec, "__name__", "model")
        )
        parts = _load_user(spec, weights, display, labels, preprocess)
        source, spec_text = "user", f"user:{display}"
    elif isinstance(spec, str):
        spec_text = spec.strip()
        scheme, sep, ref = spec_text.partition(":")
        if not sep or not ref:
            raise ModelLoadError(f"Model spec {spec!r} names no source.", hint=_SPEC_HELP)
        scheme = scheme.lower()
        if scheme == "torchvision":
            parts = _load_torchvision(ref, weights, spec_text, labels)
        elif scheme == "hf":
            parts = _load_hf(ref, weights, spec_text, labels, trust_remote_code)
        elif scheme == "builtin":
            parts = _load_builtin(ref, weights)
        elif scheme == "python" or (ref and "." in scheme) or importlib.util.find_spec(scheme):
            target = ref if scheme == "python" else spec_text
            parts = _load_user(_import_factory(target), weights, target, labels, preprocess)
            scheme = "user"
        else:
            raise ModelLoadError(f"Unknown model source {scheme!r} in {spec!r}.", hint=_SPEC_HELP)
        if labels is not None:
            parts["labels"] = labels
        source = scheme
        display = name or spec_text
    else:
        raise ModelLoadError(
            f"A model spec must be a string or an nn.Module, got {type(spec).__name__}.",
            hint=_SPEC_HELP,
        )
    model = parts["model"].to(dev).eval()
    labels_out = list(parts["labels"])
    if labels is not None:
        _check_label_count(model, parts["preprocessor"], labels_out, display, dev)
    return ModelHandle(
        model,
        name=display,
        labels=labels_out,
        preprocessor=parts["preprocessor"],
        spec=spec_text,
        source=source,
        device=dev,
        default_layers=parts.get("default_layers", ()),
        notes=parts.get("notes", ()),
    )


def _check_label_count(
    model: nn.Module,
    preprocessor: Preprocessor,
    labels: list[str],
    display: str,
    device: torch.device,
) -> None:
    """Caller-given labels must match the model's output width (one cheap dry forward)."""
    with torch.inference_mode():
        out = first_tensor(model(torch.zeros(1, 3, *preprocessor.input_size, device=device)))
    if out is None or int(out.shape[-1]) != len(labels):
        width = None if out is None else int(out.shape[-1])
        raise ModelLoadError(
            f"{display} outputs {width} scores but {len(labels)} labels were given.",
            hint="pass labels with one name per output of the model.",
        )

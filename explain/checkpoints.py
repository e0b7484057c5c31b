"""Reading weights files safely and fitting them to a model.

Safetensors files are read as they are; PyTorch files only with ``weights_only=True``.
Checkpoint wrappers (``{"state_dict": ...}``, ``{"model": ...}``, ...) and key prefixes left by
``DataParallel`` (``module.``), ``torch.compile`` (``_orig_mod.``) or wrapper modules are undone.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import WeightsError

_WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "network",
    "ema",
    "params",
    "weights",
)
_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "backbone.", "encoder.")


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def unwrap_checkpoint(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint object (a plain state dict or a wrapper)."""
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj:
                try:
                    return unwrap_checkpoint(obj[key], source)
                except WeightsError:
                    continue
        # A state dict with a few non-tensor entries (e.g. an old "num_batches_tracked" int).
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if len(tensors) >= max(1, len(obj) // 2):
            return tensors
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise WeightsError(
        f"{source} holds no state dict of tensors (found: {keys}).",
        hint="save the weights with torch.save(model.state_dict(), path) or as safetensors.",
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file (``.safetensors``, ``.pt``, ``.pth``, ``.th``, ``.bin``, ``.ckpt``)
    onto the CPU, safely.

    Raises:
        WeightsError: missing, unreadable, corrupt, or a pickle with arbitrary Python objects.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"Weights file not found: {path}")
    if path.is_dir():
        raise WeightsError(
            f"{path} is a folder; expected a weights file.",
            hint="for a Hugging Face folder use the spec 'hf:/path/to/folder'.",
        )
    if path.stat().st_size == 0:
        raise WeightsError(f"{path.name} is empty (0 bytes).", hint="save or upload it again.")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path.name} is not a readable safetensors file: {exc}") from exc
    _check_torch_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise WeightsError(
                f"{path.name} contains Python objects other than tensors; it was not loaded, "
                "because unpickling them could run arbitrary code.",
                hint="if you trust the file, re-save only its tensors, e.g. "
                "torch.save(model.state_dict(), 'weights.pth'), or convert it to safetensors.",
            ) from exc
        raise WeightsError(f"{path.name} is not a readable PyTorch file (corrupt?): {exc}") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise WeightsError(
            f"{path.name} is not a readable PyTorch checkpoint (corrupt or truncated): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
        ) from exc
    return unwrap_checkpoint(obj, path.name)


def _check_torch_file(path: Path) -> None:
    """Refuse, with the real reason, a file that cannot be a ``torch.save`` file: an empty one,
    or one that is neither a zip archive (PyTorch >= 1.6) nor a binary pickle (older)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise WeightsError(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise WeightsError(
            f"{path.name} is not a PyTorch weights file (neither a torch.save file nor "
            "safetensors).",
            hint="save the weights with torch.save(model.state_dict(), 'weights.pth') or as "
            ".safetensors.",
        )


def _looks_like_safetensors(path: Path) -> bool:
    """Safetensors files start with an 8-byte header length followed by '{'."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 30


def _strip(keys: list[str], prefix: str) -> list[str]:
    return [k[len(prefix) :] if k.startswith(prefix) else k for k in keys]


def _dotted_prefix(keys: list[str]) -> str:
    """The longest prefix of whole dotted components shared by all keys ("" if none)."""
    if not keys:
        return ""
    parts = [k.split(".")[:-1] for k in keys]
    shared: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        shared.append(column[0])
    return "".join(p + "." for p in shared)


def match_keys(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Rename keys so they match ``expected``: strip or add the prefix that gives most overlap."""
    keys = list(state)
    candidates: list[list[str]] = [keys]
    for prefix in _PREFIXES:
        stripped = keys
        for _ in range(3):  # e.g. "module.model." wrappers nest
            stripped = _strip(stripped, prefix)
            candidates.append(stripped)
    common = _dotted_prefix(keys)
    if common:
        candidates.append([k[len(common) :] for k in keys])
    exp_common = _dotted_prefix(list(expected))
    if exp_common:
        candidates.append([exp_common + k for k in keys])
    best = max(candidates, key=lambda names: len(expected.intersection(names)))
    return dict(zip(best, state.values(), strict=True))


def load_weights(
    model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor], strict: bool = True
) -> None:
    """Load a weights file or state dict into ``model`` (keys fitted with :func:`match_keys`).

    Raises:
        WeightsError: keys or shapes that do not fit, listed in the message.
    """
    source = Path(weights).name if isinstance(weights, str | os.PathLike) else "the state dict"
    state = read_state_dict(weights) if isinstance(weights, str | os.PathLike) else dict(weights)
    own = model.state_dict()
    state = match_keys(state, set(own))
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if mismatched:
        raise WeightsError(
            f"{source} does not fit {type(model).__name__}: {len(mismatched)} tensor(s) differ in "
            f"shape, e.g. {'; '.join(mismatched[:3])}.",
            hint="check the architecture and the number of classes the weights were trained for.",
        )
    # BatchNorm's step counter is absent from old checkpoints and never affects inference.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:4])})")
        raise WeightsError(
            f"{source} does not fit {type(model).__name__}: keys {' and '.join(parts)}.",
            hint="check that the file belongs to this architecture.",
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def head_classes(model: nn.Module, state: Mapping[str, torch.Tensor], classes: int) -> int | None:
    """The number of classes of a weights file for ``model`` (which has ``classes`` outputs)
    when only the classifier head differs from it, else ``None``.

    Args:
        model: the architecture with its default head.
        state: the file's state dict (keys fitted with :func:`match_keys`).
        classes: ``model``'s number of outputs.
    """
    own = model.state_dict()
    fitted = match_keys(dict(state), set(own))
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

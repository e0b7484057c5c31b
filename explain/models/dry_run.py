"""Trying a model on a probe input before it is used: its output width, and a clear
:class:`~explain.errors.InputSizeError` when the preprocessing does not fit it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ExplainError, InputSizeError, ModelLoadError
from ..hooks import first_tensor
from ..preprocessing import Preprocessor


def dry_run(
    name: str, preprocessor: Preprocessor, call: Callable[[torch.Tensor], Any], device: Any
) -> Any:
    """``call(x)`` on a probe input ``x`` of shape ``(1, 3, H, W)`` (the preprocessing's size);
    whatever the model's own code raises becomes an :class:`InputSizeError` that says which
    size was tried and how to give the right preprocessing."""
    h, w = preprocessor.input_size
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, h, w, generator=generator).to(device)
    try:
        return call(x)
    except ExplainError:
        raise
    except Exception as exc:  # the model's own forward: any error type is possible
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputSizeError(
            f"The forward pass of {name} failed on a probe input of shape (1, 3, {h}, {w}) "
            f"({preprocessor.describe()}): {type(exc).__name__}: {reason}",
            hint="give the input size and normalisation the model was trained with, e.g. "
            "load_model(..., preprocess=Preprocess(input_size=(32, 32), mean=(...), std=(...))) "
            "or on the command line --input-size 32 --mean R,G,B --std R,G,B.",
        ) from exc


def logits_fn(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """``x -> model's scores`` without gradients, refusing outputs with the wrong row count."""

    def call(x: torch.Tensor) -> torch.Tensor | None:
        with torch.inference_mode():
            out = first_tensor(model(x))
        if out is not None and out.ndim >= 1 and out.shape[0] != x.shape[0]:
            # e.g. x.view(-1, 3, 32, 32) on a larger image cuts it into several "images"
            raise ValueError(f"it returned {out.shape[0]} rows of scores for {x.shape[0]} image")
        return out

    return call


def check_label_count(
    model: nn.Module,
    preprocessor: Preprocessor,
    labels: list[str],
    title: str,
    device: torch.device,
) -> None:
    """Caller-given labels must match the model's output width (one cheap dry forward)."""
    out = dry_run(title, preprocessor, logits_fn(model), device)
    if out is None or int(out.shape[-1]) != len(labels):
        width = None if out is None else int(out.shape[-1])
        raise ModelLoadError(
            f"{title} outputs {width} scores but {len(labels)} labels were given.",
            hint="pass labels with one name per output of the model.",
        )

"""Errors with a message a user can act on.

Every error the library raises on bad input is an :class:`ExplainError`: its text says what was
wrong and, where there is one, what to do instead. The dashboard shows ``str(error)`` as is.
"""

from __future__ import annotations


class ExplainError(Exception):
    """Base class: a clear, specific problem with the caller's input or environment.

    Args:
        message: what went wrong, in one sentence.
        hint: what to do about it (optional), appended as "Try: ...".
    """

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\nTry: {hint}")


class ModelLoadError(ExplainError, ValueError):
    """A model spec, weights file or download that cannot give a usable model."""


class NetworkError(ModelLoadError, ConnectionError):
    """A download was needed and the network (or the remote file) was not reachable."""


class InputSizeError(ModelLoadError):
    """A model whose forward pass fails on an input of the size its preprocessing gives."""


class WeightsError(ModelLoadError):
    """A weights/checkpoint file that is missing, corrupt, unsafe or does not fit the model."""


class ImageLoadError(ExplainError, ValueError):
    """A file or array that cannot be used as an image."""


class ImageTooLargeError(ImageLoadError):
    """An image whose pixel count exceeds the configured limit (and cannot be decoded smaller)."""


class ImageTooSmallError(ImageLoadError):
    """An image smaller than the minimum side length."""


class DatasetError(ExplainError, ValueError):
    """A dataset that cannot be used: missing, empty, an unsafe archive, no images in it."""


class LayerError(ExplainError, ValueError):
    """A layer name that does not exist or whose output cannot give a map."""


class TargetError(ExplainError, ValueError):
    """A target class that is out of range or of the wrong form."""


class MethodNotApplicable(ExplainError, ValueError):
    """A method that does not apply to this model (attention methods on a CNN, CAM without a
    global-average-pooling + linear head, ...): asked for among several methods (``"all"``),
    it is skipped with a note instead."""


class AttentionError(MethodNotApplicable):
    """A model whose attention the attention methods (rollout, Chefer, LeGrad) cannot use."""


class EngineError(ExplainError, RuntimeError):
    """A distributed engine that cannot run: Ray not installed, a cluster address that does not
    answer, a worker that cannot load the model or reach the run folder."""


class RunError(ExplainError, ValueError):
    """A run folder that cannot be used: another run's files in it, a missing or unreadable
    ``run.json``, a run of another kind."""


class PromptError(ExplainError, ValueError):
    """Text prompts that cannot be used: none, empty or repeated prompts for a CLIP model, or
    prompts given to a model whose classes are fixed."""

"""Loading classifiers from torchvision, timm, Hugging Face, the project itself or the user,
behind one :class:`ModelHandle`.

Specs (one module per source, listed in :mod:`explain.models.registry`)::

    torchvision:<name>          any classifier in torchvision.models      (torchvision.py)
    timm:<name>[.<tag>]         any timm image classifier                  (timm.py)
    hf:<hub id or folder>       AutoModelForImageClassification            (huggingface.py)
    clip:<hub id or folder>     a Hugging Face CLIP model over text prompts (clip.py)
    open_clip:<name>[.<tag>]    an open_clip CLIP model over text prompts   (openclip.py)
    builtin:<name>              offline: shapes, shapes-biased, efficientnet-lite0/1/2 (builtin.py)
    <package.module>:<factory>  a user's own architecture (also: an nn.Module or a callable)
                                                                           (user.py)

The handle is in :mod:`~explain.models.handle`, ``load_model`` in :mod:`~explain.models.load`,
what a source is in :mod:`~explain.models.source`; CLIP models are
:class:`~explain.models.prompts.PromptClassifier` (classes = prompts, ``load_model(spec,
prompts=[...])``, ``handle.with_prompts(...)``).
"""

from .handle import ModelHandle
from .huggingface import HFClassifier
from .load import load_model, resolve_device
from .prompts import PromptClassifier, check_prompts
from .registry import SOURCES, find_source, spec_help
from .source import DEFAULT, Loaded, Request, Source
from .timm import timm_classifiers
from .torchvision import torchvision_classifiers

__all__ = [
    "DEFAULT",
    "SOURCES",
    "HFClassifier",
    "Loaded",
    "ModelHandle",
    "PromptClassifier",
    "Request",
    "Source",
    "check_prompts",
    "find_source",
    "load_model",
    "resolve_device",
    "spec_help",
    "timm_classifiers",
    "torchvision_classifiers",
]

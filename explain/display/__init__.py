"""Results that show themselves in Jupyter, and :func:`show` for the common cases.

::

    import explain

    explain.show(handle, "photo.jpg", layers=handle.stage_layers(), methods=["gradcam", "layercam"])
    res = explain.compute_cams(handle, x, layers=["layer3", "layer4"])
    res  # the last line of a cell: a captioned grid of overlays
    explain.show(result)  # an evaluation: leaderboard, verdicts, curves
    explain.show(study)  # the bias study: verdicts and its table

Each result has a :class:`View` (HTML, Plotly figures, a PNG and a plain-text form) that the
notebook displays; :func:`view` makes one, :func:`show` displays it (in a notebook) or prints
its text (elsewhere). Pictures are embedded as base64 images: no matplotlib, no files.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..cams.core import CamResult
from ..errors import ExplainError
from .cams import cam_view, image_names, images_view
from .page import View
from .tables import bias_view, evaluation_view

__all__ = [
    "View",
    "bias_view",
    "cam_view",
    "evaluation_view",
    "explain_view",
    "figure_view",
    "images_view",
    "show",
    "view",
]


def explain_view(
    handle: Any,
    images: Any,
    layers: str | Sequence[str] | None = None,
    methods: str | Sequence[str] = "gradcam",
    targets: Any = None,
    **options: Any,
) -> View:
    """Compute and show: the maps of every method at every layer, one row per image.

    Args:
        handle: from :func:`explain.load_model`.
        images: files, PIL images or arrays (anything ``handle.preprocess`` takes).
        layers: as for :func:`explain.compute_cams` (default: the default layer).
        methods: one method name or several (one pass each, every layer at once).
        targets: as for :func:`explain.compute_cams` (default: the top-1 class).
        options: for :func:`cam_view` (``max_images``, ``size``, ``alpha``, ``cmap``).
    """
    from ..cams import compute_cams

    x = handle.preprocess(images)
    methods = [methods] if isinstance(methods, str) else list(methods)
    results = [compute_cams(handle, x, layers, method, targets) for method in methods]
    options.setdefault("names", image_names(images))
    options.setdefault("labels", handle.labels)
    return cam_view(results, **options)


def figure_view(figure: Any) -> View:
    """A Plotly figure as a :class:`View`."""
    title = figure.layout.title.text if figure.layout.title else None
    return View([figure], f"Figure: {title or 'untitled'}")


def _instance(obj: Any, module: str, name: str) -> bool:
    """``isinstance`` against a class of a module only if that module is loaded already."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(obj, getattr(loaded, name))


def view(obj: Any, *args: Any, **options: Any) -> View:
    """The :class:`View` of a result.

    Args:
        obj: a :class:`~explain.CamResult` (or a list of them, same images), a model handle
            (then ``images`` and the options of :func:`explain_view`), an evaluation result,
            a bias study or report, an embeddings result, a Plotly figure, or pictures
            (``(N, H, W, 3)`` uint8, a PIL image, or a list of them).
        args, options: for the view of that kind (:func:`cam_view`, :func:`explain_view`,
            :func:`evaluation_view`, ...).

    Raises:
        ExplainError: there is no view for this kind of object.
    """
    if isinstance(obj, View):
        return obj
    if isinstance(obj, CamResult) or (
        isinstance(obj, list | tuple) and obj and all(isinstance(r, CamResult) for r in obj)
    ):
        return cam_view(obj, *args, **options)
    if _instance(obj, "explain.models.handle", "ModelHandle"):
        return explain_view(obj, *args, **options)
    if _instance(obj, "explain.evaluation.result", "EvaluationResult"):
        return evaluation_view(obj, *args, **options)
    if _instance(obj, "explain.evaluation.bias", "BiasStudy") or _instance(
        obj, "explain.evaluation.bias", "BiasReport"
    ):
        return bias_view(obj)
    if _instance(obj, "plotly.basedatatypes", "BaseFigure"):
        return figure_view(obj)
    if type(obj).__module__.split(".")[0] in ("explain", "embeddings") and hasattr(obj, "view"):
        return obj.view(*args, **options)  # e.g. embeddings.EmbeddingsResult
    if isinstance(obj, Image.Image):
        return images_view([np.asarray(obj.convert("RGB"))], *args, **options)
    if isinstance(obj, np.ndarray) and obj.dtype == np.uint8 and obj.ndim in (3, 4):
        return images_view(obj if obj.ndim == 4 else obj[None], *args, **options)
    raise ExplainError(
        f"explain.show does not know how to show a {type(obj).__name__}.",
        hint="pass a CamResult, a model handle and images, an evaluation result, a bias "
        "study, an embeddings result, a Plotly figure or pictures.",
    )


def in_notebook() -> bool:
    """Whether an IPython kernel or shell is running (checked without importing IPython)."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


def show(obj: Any, *args: Any, **options: Any) -> None:
    """Display a result now: in a notebook as its :class:`View` (pictures, tables, figures),
    elsewhere as its text. Arguments as for :func:`view`, e.g.
    ``show(handle, "photo.jpg", layers=["layer3", "layer4"], methods=["gradcam", "layercam"])``.
    """
    shown = view(obj, *args, **options)
    if in_notebook():
        from IPython.display import display

        display(shown)
    else:
        print(shown.text)

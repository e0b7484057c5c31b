"""A dataset's embeddings layer by layer in one object: the pooled activations, one aligned
2-D/3-D layout per layer, and the layer metrics; in Jupyter it shows itself as its Plotly
figure (one panel per layer).

::

    from embeddings import explore

    emb = explore(handle, "builtin:shapes", max_images=300, projection="umap")
    emb  # the last line of a cell: the layouts side by side, shallow to deep
    emb.metrics  # silhouette, k-NN, linear probe, trustworthiness per layer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explain.progress import Progress

from .collect import Activations, collect_activations
from .metrics import layer_metrics
from .projection import DEFAULT_METRIC, project_layers


@dataclass
class EmbeddingsResult:
    """Embeddings of a dataset at several layers.

    Attributes:
        activations: the pooled activations and predictions (:class:`Activations`).
        layouts: layer -> ``(N, dim)`` float32, rows as in ``activations``, in depth order
            (Procrustes-aligned neighbour to neighbour unless ``align=False``).
        projection: ``"umap"``, ``"tsne"`` or ``"pca"``; ``dim``: 2 or 3; ``seed``: its seed.
        metrics: one row per layer (:func:`~embeddings.layer_metrics`), or None.
    """

    activations: Activations
    layouts: dict[str, np.ndarray]
    projection: str
    dim: int = 2
    seed: int = 0
    metrics: Any = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"EmbeddingsResult({len(self.activations)} images, layers {list(self.layouts)}, "
            f"{self.projection} {self.dim}-D)"
        )

    @classmethod
    def from_activations(
        cls,
        activations: Activations,
        projection: str = "umap",
        dim: int = 2,
        seed: int = 0,
        *,
        align: bool = True,
        metrics: bool = True,
        progress: Progress | None = None,
        **projection_options: Any,
    ) -> EmbeddingsResult:
        """Project every layer of ``activations`` (:func:`~embeddings.project_layers`) and,
        with ``metrics``, measure how well each layer separates the classes."""
        layouts = project_layers(
            activations.features,
            method=projection,
            dim=dim,
            seed=seed,
            align=align,
            progress=progress,
            **projection_options,
        )
        table = None
        if metrics:
            table = layer_metrics(
                activations.features,
                activations.labels,
                layouts if dim == 2 else None,
                seed=seed,
                trust_metric=DEFAULT_METRIC[projection],
            )
        return cls(activations, layouts, projection, dim, seed, table)

    # -- figures ----------------------------------------------------------------------------
    def figure(self, color_by: str = "label", **options: Any) -> Any:
        """The layouts side by side, shallow to deep (:func:`~embeddings.figures.small_multiples`;
        ``color_by`` ``"label"``, ``"prediction"``, ``"correct"`` or ``"confidence"``)."""
        from .figures import small_multiples

        options.setdefault(
            "title",
            f"{self.projection.upper()} of {len(self.activations)} images, layer by layer",
        )
        return small_multiples(self.activations, self.layouts, color_by, **options)

    def metrics_figure(self) -> Any:
        """The layer metrics against depth, with the model's accuracy (needs ``metrics``)."""
        from .figures import metrics_chart

        if self.metrics is None:
            raise ValueError("This result has no layer metrics (made with metrics=False).")
        return metrics_chart(self.metrics, accuracy=self.activations.accuracy)

    def view(self, color_by: str = "label") -> Any:
        """The figure and, when measured, the metrics chart (a :class:`~explain.display.View`)."""
        from explain.display import View

        parts: list[Any] = [self.figure(color_by)]
        text = repr(self)
        if self.metrics is not None:
            parts.append(self.metrics_figure())
            text += "\n" + self.metrics.to_string(index=False, float_format="{:.3f}".format)
        return View(parts, text)

    # -- in Jupyter: the figure, as Plotly itself shows it ------------------------------------
    def _ipython_display_(self) -> None:
        self.figure()._ipython_display_()

    def _repr_mimebundle_(
        self, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
    ) -> dict[str, Any]:
        return self.figure()._repr_mimebundle_(include, exclude)


def explore(
    handle: Any,
    dataset: Any,
    layers: str | Sequence[str] | None = None,
    *,
    projection: str = "umap",
    dim: int = 2,
    seed: int = 0,
    align: bool = True,
    metrics: bool = True,
    progress: Progress | None = None,
    **collect_options: Any,
) -> EmbeddingsResult:
    """Collect, project and measure a dataset's embeddings at several layers in one call.

    Args:
        handle: from :func:`explain.load_model`.
        dataset: anything :func:`~embeddings.collect_activations` takes (a folder, a zip,
            files, ``"builtin:shapes"``).
        layers: as for :func:`~embeddings.collect_activations` (default: the last block of
            each stage).
        projection, dim, seed, align: as for :func:`~embeddings.project_layers`.
        metrics: also compute :func:`~embeddings.layer_metrics`.
        progress: ``progress(done, total, message)`` of the collection.
        collect_options: for :func:`~embeddings.collect_activations` (``max_images``,
            ``pooling``, ``batch_size``, ``cache_dir``).

    Returns:
        :class:`EmbeddingsResult`.
    """
    collect_options.setdefault("seed", seed)
    acts = collect_activations(handle, dataset, layers, progress=progress, **collect_options)
    return EmbeddingsResult.from_activations(
        acts, projection, dim, seed, align=align, metrics=metrics
    )

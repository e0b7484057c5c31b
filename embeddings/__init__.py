"""Per-layer embeddings of a whole dataset: pooled activations, 2-D/3-D projections (PCA,
t-SNE, UMAP), layer metrics (k-NN, linear probe, silhouette, trustworthiness, CKA) and
interactive Plotly figures.

``embeddings`` is a plain library (no Streamlit)::

    from embeddings import collect_activations, project
    acts = collect_activations(handle, "path/to/folder", layers=["layer2", "layer3", "layer4"])
    acts.features["layer4"]          # (N, D) float32, pooled per image
    xy = project(acts.features["layer4"], method="umap", dim=2, seed=0)   # (N, 2)
    emb = explore(handle, "path/to/folder", projection="umap")   # all of it; shows itself
"""

from .collect import (
    POOLINGS,
    Activations,
    collect_activations,
    match_classes,
    pool,
    resolve_pooling,
    suggest_layers,
)
from .datasets import (
    AnnotatedDataset,
    FileListDataset,
    ImageDataset,
    ImageFolderDataset,
    ShapesDataset,
    ZipDataset,
    load_dataset,
    stratified_indices,
)
from .errors import DatasetError, ProjectionError
from .metrics import (
    METRICS,
    MetricInfo,
    cka_matrix,
    knn_accuracy,
    layer_metrics,
    linear_cka,
    linear_probe_accuracy,
    silhouette,
    trustworthiness,
)
from .projection import METHODS, align_layouts, procrustes_align, project, project_layers
from .result import EmbeddingsResult, explore

__all__ = [
    "METHODS",
    "METRICS",
    "POOLINGS",
    "Activations",
    "AnnotatedDataset",
    "DatasetError",
    "EmbeddingsResult",
    "FileListDataset",
    "ImageDataset",
    "ImageFolderDataset",
    "MetricInfo",
    "ProjectionError",
    "ShapesDataset",
    "ZipDataset",
    "align_layouts",
    "cka_matrix",
    "collect_activations",
    "explore",
    "knn_accuracy",
    "layer_metrics",
    "linear_cka",
    "linear_probe_accuracy",
    "load_dataset",
    "match_classes",
    "pool",
    "procrustes_align",
    "project",
    "project_layers",
    "resolve_pooling",
    "silhouette",
    "stratified_indices",
    "suggest_layers",
    "trustworthiness",
]

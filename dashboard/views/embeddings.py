"""Embeddings: what every chosen layer makes of a whole dataset, as aligned 2-D / 3-D maps, with
per-layer measures of class separation; select points to see those images and their Grad-CAM."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.widgets import page, show_error
from embeddings import METRICS, collect_activations, layer_metrics, load_dataset, project_layers
from embeddings.figures import COLOR_BY, cka_heatmap, metrics_chart, small_multiples
from embeddings.metrics import cka_matrix
from explain import ExplainError, compute_cams
from explain.render import overlay

MAX_SELECTED = 12


@dataclass
class Run:
    """One finished embeddings run, kept in the session across reruns (and selections)."""

    config: tuple
    dataset: object
    acts: object
    layouts: dict
    metrics: pd.DataFrame
    cka: tuple


handle, _, model_key = page(
    "Embeddings",
    "Each point is an image, placed by what one layer of the model makes of it. Classes "
    "that separate into clusters are classes the layer tells apart.",
)

with st.form("embeddings_form"):
    cols = st.columns([1.2, 1.2, 1])
    with cols[0]:
        source = st.radio(
            "Dataset",
            ("Built-in shapes", "Folder", "Zip upload"),
            key="emb_source",
            horizontal=True,
        )
        folder = st.text_input(
            "Folder (one sub-folder per class)",
            key="emb_folder",
            help="Must lie under: " + ", ".join(str(r) for r in state.data_roots()),
        )
        upload = st.file_uploader("Zip of images", type=["zip"], key="emb_zip")
        n_images = st.slider("Images (stratified sample)", 60, 2000, 300, 20, key="emb_n")
    with cols[1]:
        layer_names = [i.name for i in handle.map_layers]
        layers = st.multiselect(
            "Layers", layer_names, default=handle.stage_layers(), key="emb_layers"
        )
        method = st.segmented_control(
            "Projection", ("umap", "tsne", "pca"), default="pca", key="emb_method"
        )
        dim = st.segmented_control("Dimensions", (2, 3), default=2, key="emb_dim")
    with cols[2]:
        neighbours = st.slider("UMAP neighbours", 5, 100, 15, key="emb_neighbours")
        min_dist = st.slider("UMAP min. distance", 0.0, 0.99, 0.1, key="emb_min_dist")
        perplexity = st.slider("t-SNE perplexity", 5, 100, 30, key="emb_perplexity")
        seed = st.number_input("Seed", 0, 10_000, 0, key="emb_seed")
    submitted = st.form_submit_button("Run", type="primary")


def _dataset():
    if source == "Built-in shapes":
        return load_dataset("builtin:shapes", max_images=n_images, seed=int(seed))
    if source == "Folder":
        if not folder.strip():
            raise ExplainError("Type the path of a folder first.")
        return load_dataset(state.allowed_path(folder.strip()), max_images=n_images, seed=int(seed))
    if upload is None:
        raise ExplainError("Upload a .zip of images first.")
    return load_dataset(upload.getvalue(), max_images=n_images, seed=int(seed))


def _run() -> Run:
    options = {
        "umap": {"n_neighbors": neighbours, "min_dist": min_dist},
        "tsne": {"perplexity": perplexity},
        "pca": {},
    }[method or "pca"]
    dataset = _dataset()
    bar = st.progress(0.0, text="Reading images and running the model…")
    acts = collect_activations(
        handle,
        dataset,
        layers=layers,
        progress=lambda done, total: bar.progress(
            done / max(total, 1) * 0.6, text=f"Activations: {done}/{total} images"
        ),
    )
    layouts = project_layers(
        acts.features,
        method=method or "pca",
        dim=int(dim or 2),
        seed=int(seed),
        progress=lambda done, total: bar.progress(
            0.6 + 0.3 * done / total, text=f"Projection: {done}/{total} layers"
        ),
        **options,
    )
    table = layer_metrics(acts.features, acts.labels, layouts, seed=int(seed))
    cka = cka_matrix(acts.features)
    bar.empty()
    return Run(config, dataset, acts, layouts, table, cka)


config = (
    model_key,
    source,
    folder,
    upload.file_id if upload else None,
    n_images,
    tuple(layers),
    method,
    dim,
    neighbours,
    min_dist,
    perplexity,
    int(seed),
)
if submitted:
    if not layers:
        st.warning("Choose at least one layer.")
    else:
        try:
            st.session_state["emb_run"] = _run()
        except ExplainError as exc:
            show_error(exc)
run: Run | None = st.session_state.get("emb_run")
if run is None:
    st.info("Choose a dataset and layers, then press **Run**. The built-in shapes work offline.")
    st.stop()
if run.config[0] != model_key:
    st.warning("These results were computed with another model; press Run to update them.")

acts = run.acts
accuracy = acts.accuracy
st.markdown(
    f"**{len(acts)} images** · {len(acts.layers)} layers"
    + (f" · model accuracy on them: **{accuracy:.1%}**" if accuracy is not None else "")
    + (" · loaded from the cache" if acts.from_cache else "")
)
if acts.skipped:
    with st.expander(f"{len(acts.skipped)} file(s) skipped"):
        st.table(pd.DataFrame(acts.skipped, columns=["file", "reason"]))

color_by = st.segmented_control("Colour by", COLOR_BY, default="label", key="emb_color")
figure = small_multiples(acts, run.layouts, color_by=color_by or "label")
if int(np.shape(next(iter(run.layouts.values())))[1]) == 2:
    figure.update_layout(dragmode="select")  # drag to box-select; lasso in the toolbar
event = st.plotly_chart(
    figure,
    key="emb_scatter",
    on_select="rerun",
    selection_mode=("points", "box", "lasso"),
    width="stretch",
)

metrics_tab, cka_tab, depth_tab = st.tabs(
    ["Layer metrics", "Similarity between layers (CKA)", "Metrics by depth"]
)
with metrics_tab:
    shown = run.metrics.copy()
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption(" · ".join(f"**{m.title}**: {m.description}" for m in METRICS.values()))
with cka_tab:
    st.plotly_chart(cka_heatmap(*run.cka), key="emb_cka", width="stretch")
with depth_tab:
    st.plotly_chart(metrics_chart(run.metrics, accuracy=accuracy), key="emb_depth", width="stretch")

points = (event.selection.points if event and event.selection else []) or []
rows = list(dict.fromkeys(int(p["customdata"][0]) for p in points if p.get("customdata")))
if rows:
    st.subheader(f"{len(rows)} selected image(s)")
    if len(rows) > MAX_SELECTED:
        st.caption(f"Showing the first {MAX_SELECTED}.")
    rows = rows[:MAX_SELECTED]
    images = []
    for r in rows:
        try:
            images.append(np.asarray(run.dataset.load(int(acts.indices[r])).image))
        except ExplainError as exc:
            images.append(None)
            st.warning(f"{acts.names[r]}: {str(exc).splitlines()[0]}")
    good = [i for i, img in enumerate(images) if img is not None]
    if good:
        layer = acts.layers[-1] if handle.layer(acts.layers[-1]).has_map else (handle.default_layer)
        result = compute_cams(handle, [images[i] for i in good], layers=layer)
        views = handle.prepare([images[i] for i in good])
        grid = st.columns(4)
        for slot, (i, heat, view) in enumerate(zip(good, result.maps[layer], views, strict=True)):
            r = rows[i]
            label = acts.label_text[r] or "?"
            verdict = "✓" if acts.correct[r] else ("✗" if acts.targets[r] >= 0 else "")
            grid[slot % 4].image(
                overlay(view, heat),
                width="stretch",
                caption=f"{acts.names[r]} · true {label} · predicted "
                f"{acts.prediction_text[r]} {acts.confidence[r]:.0%} "
                f"{verdict}",
            )

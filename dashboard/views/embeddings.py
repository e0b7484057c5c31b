"""Embeddings: what every chosen layer makes of a whole dataset, as aligned 2-D / 3-D maps, with
per-layer measures of class separation. Select points in any layer's plot: the same images
light up in every plot and appear below with their maps; hover a point to see its image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import results, runs, sources, state
from dashboard.hover import hover_thumbnails, thumbnail_uri
from dashboard.widgets import page, show_error
from embeddings import METRICS, collect_activations, layer_metrics, load_dataset, project_layers
from embeddings.figures import COLOR_BY, cka_heatmap, focus, metrics_chart, small_multiples
from embeddings.metrics import cka_matrix
from explain import METHOD_INFO, ExplainError
from explain.render import overlay

MAX_SELECTED = 12
CHART = "emb_scatter"  # also the CSS class the hover script looks for


@dataclass
class Run:
    """One finished embeddings run, kept in the session across reruns (and selections)."""

    config: tuple
    dataset: object
    acts: object
    layouts: dict
    metrics: pd.DataFrame
    cka: tuple
    thumbs: dict


ctx = page(
    "Embeddings",
    "Each point is an image, placed by what one layer of the model makes of it. Classes "
    "that separate into clusters are classes the layer tells apart.",
)
handle, model_key = ctx.handle, ctx.model_key
if runs.saved_run_view():  # a saved run (Parquet folder) is open: it takes the page
    st.stop()

previous: Run | None = st.session_state.get("gce.emb_run")
settings = st.expander("Dataset, layers and projection", expanded=previous is None)
with settings, st.form("embeddings_form"):
    # The whole width: every chosen layer stays visible (a narrow box cuts the list off).
    layers = st.multiselect(
        "Layers",
        [i.name for i in handle.map_layers],
        default=handle.stage_layers(),
        key=f"emb_layers@{state.token('model')}",  # a new model offers its own layers
    )
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
            help="Must lie under: " + ", ".join(str(r) for r in sources.data_roots()),
        )
        upload = st.file_uploader("Zip of images", type=["zip"], key="emb_zip")
        n_images = st.slider("Images (stratified sample)", 60, 2000, 300, 20, key="emb_n")
    with cols[1]:
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
        return load_dataset(
            sources.allowed_path(folder.strip()), max_images=n_images, seed=int(seed)
        )
    if upload is None:
        raise ExplainError("Upload a .zip of images first.")
    return load_dataset(upload.getvalue(), max_images=n_images, seed=int(seed))


def _thumbnails(dataset, acts, bar) -> dict[int, str]:
    """A small picture of every image, for the hover (unreadable ones have none)."""
    thumbs = {}
    for row, index in enumerate(acts.indices):
        try:
            thumbs[row] = thumbnail_uri(np.asarray(dataset.load(int(index)).image))
        except ExplainError:
            continue
        if row % 50 == 0:
            bar.progress(0.9 + 0.1 * row / len(acts), text=f"Thumbnails: {row}/{len(acts)}")
    return thumbs


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
        progress=lambda done, total, _: bar.progress(
            done / max(total, 1) * 0.6, text=f"Activations: {done}/{total} images"
        ),
    )
    layouts = project_layers(
        acts.features,
        method=method or "pca",
        dim=int(dim or 2),
        seed=int(seed),
        progress=lambda done, total, _: bar.progress(
            0.6 + 0.3 * done / max(total, 1), text=f"Projection: {done}/{total} layers"
        ),
        **options,
    )
    table = layer_metrics(acts.features, acts.labels, layouts, seed=int(seed))
    cka = cka_matrix(acts.features)
    thumbs = _thumbnails(dataset, acts, bar)
    bar.empty()
    return Run(config, dataset, acts, layouts, table, cka, thumbs)


def _metrics_table(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The per-layer table with names in words, each metric in its display unit (accuracies
    in percent) with its own decimals (:data:`embeddings.METRICS`)."""
    shown = table.rename(columns={"layer": "Layer", "depth": "Depth", "dim": "Features"})
    config: dict = {
        "Depth": st.column_config.NumberColumn(help="0 = the shallowest layer chosen"),
        "Features": st.column_config.NumberColumn(help="Length of the pooled feature vector"),
    }
    for name, info in METRICS.items():
        if name not in shown.columns:
            continue
        title = f"{info.title} ({info.display_unit})" if info.display_unit else info.title
        shown[title] = shown.pop(name) * info.scale
        config[title] = st.column_config.NumberColumn(
            help=f"{info.description} ({info.arrow} is better)", format=f"%.{info.decimals}f"
        )
    return shown, config


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
            st.session_state["gce.emb_run"] = _run()
            st.session_state["gce.emb_selected"] = []
        except ExplainError as exc:
            show_error(exc)
run: Run | None = st.session_state.get("gce.emb_run")
if run is None:
    st.info("Choose a dataset and layers, then press **Run**. The built-in shapes work offline.")
    st.stop()
if run.config[0] != model_key:
    st.warning("These results were computed with another model; press Run to update them.")

acts = run.acts
accuracy = acts.accuracy
st.markdown(
    f"**{len(acts)} images** · {len(acts.layers)} layers"
    + (f" · model accuracy on them: **{accuracy:.0%}**" if accuracy is not None else "")
    + (" · loaded from the cache" if acts.from_cache else "")
)
if acts.skipped:
    with st.expander(f"{len(acts.skipped)} file(s) skipped"):
        st.table(pd.DataFrame(acts.skipped, columns=["file", "reason"]))

with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):
    color_by = st.segmented_control("Colour by", COLOR_BY, default="label", key="emb_color")
    mistakes_only = st.toggle(
        "Show the mistakes",
        key="emb_mistakes",
        help="Only the images the model got wrong, or got right with little confidence.",
    )
    unsure = st.slider(
        "Unsure below",
        0,
        100,
        60,
        5,
        format="%d%%",
        key="emb_unsure",
        disabled=not mistakes_only,
        width=220,
    )
wrong = (acts.targets >= 0) & ~acts.correct
low = acts.confidence < unsure / 100
keep = np.flatnonzero(wrong | low) if mistakes_only else None
if mistakes_only:
    st.caption(
        f"{int((wrong | low).sum())} of {len(acts)} images: {int(wrong.sum())} wrong, "
        f"{int((low & ~wrong).sum())} right but less than {unsure}% sure."
    )

selected: list[int] = st.session_state.get("gce.emb_selected", [])


def _on_select() -> None:
    event = st.session_state.get(CHART)
    points = (event.selection.points if event and event.selection else []) or []
    rows = [int(p["customdata"][0]) for p in points if p.get("customdata")]
    st.session_state["gce.emb_selected"] = list(dict.fromkeys(rows))


figure = small_multiples(acts, run.layouts, color_by=color_by or "label")
focus(figure, keep=keep, highlight=selected or None)
if int(np.shape(next(iter(run.layouts.values())))[1]) == 2:
    figure.update_layout(dragmode="select")  # drag to box-select; lasso in the toolbar
st.plotly_chart(
    figure,
    key=CHART,
    on_select=_on_select,
    selection_mode=("points", "box", "lasso"),
    width="stretch",
)
hover_thumbnails(CHART, run.thumbs)
st.caption(
    "Drag a box (or lasso) in any plot: the same images light up in every layer. Hover a "
    "point to see its image."
)

metrics_tab, cka_tab, depth_tab = st.tabs(
    ["Layer metrics", "Similarity between layers (CKA)", "Metrics by depth"]
)
with metrics_tab:
    shown, column_config = _metrics_table(run.metrics)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=column_config)
    st.caption(" · ".join(f"**{m.title}**: {m.description}" for m in METRICS.values()))
with cka_tab:
    st.plotly_chart(cka_heatmap(*run.cka), key="emb_cka", width="stretch")
with depth_tab:
    st.plotly_chart(metrics_chart(run.metrics, accuracy=accuracy), key="emb_depth", width="stretch")

if not selected:
    st.stop()
head, clear = st.columns([4, 1], vertical_alignment="bottom")
head.subheader(f"{len(selected)} selected image(s)")
if clear.button("Clear selection", key="emb_clear"):
    st.session_state["gce.emb_selected"] = []
    st.rerun()
if len(selected) > MAX_SELECTED:
    st.caption(f"Showing the first {MAX_SELECTED}.")
with_map = {i.name for i in handle.map_layers}
map_layers = [n for n in acts.layers if n in with_map] or [handle.default_layer]
gradient = [m for m, i in METHOD_INFO.items() if i.kind in ("gradient", "activation")]
with st.container(horizontal=True, gap="medium"):
    cam_method = st.selectbox(
        "Map method",
        gradient,
        index=gradient.index(state.method(handle)) if state.method(handle) in gradient else 0,
        format_func=lambda m: METHOD_INFO[m].title,
        key="emb_cam_method",
        width=220,
    )
    cam_layer = st.selectbox(
        "Map layer",
        map_layers,
        index=len(map_layers) - 1,
        key=f"emb_cam_layer@{state.token('model')}",
        width=220,
    )
grid = st.columns(4)
for slot, r in enumerate(selected[:MAX_SELECTED]):
    try:
        picture = sources.Picture.of(
            acts.names[r], np.asarray(run.dataset.load(int(acts.indices[r])).image)
        )
        result = results.cams(model_key, handle, picture, cam_method, (cam_layer,))
        view = results.model_view(model_key, handle, picture)
    except ExplainError as exc:
        grid[slot % 4].warning(f"{acts.names[r]}: {str(exc).splitlines()[0]}")
        continue
    label = acts.label_text[r] or "?"
    verdict = "✓" if acts.correct[r] else ("✗" if acts.targets[r] >= 0 else "")
    grid[slot % 4].image(
        overlay(view, result.maps[cam_layer][0]),
        width="stretch",
        caption=f"{acts.names[r]} · true {label} · predicted {acts.prediction_text[r]} "
        f"{acts.confidence[r]:.0%} {verdict} · {METHOD_INFO[cam_method].title} at {cam_layer}",
    )

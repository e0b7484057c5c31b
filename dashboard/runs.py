"""A saved activations run (a Parquet run folder written by ``python -m embeddings --engine`` or
``collect_activations(..., out=)``) on the Embeddings page: open it by its path, choose a layer,
see every image (or a stratified sample of a very large run) as a WebGL point cloud."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from dashboard import sources
from dashboard.widgets import show_error
from embeddings.figures import COLOR_BY, point_cloud
from embeddings.projection import project
from embeddings.runs import KIND, read_activations, sample_rows
from explain import ExplainError
from explain.runs import open_run

#: Session key of the open run's folder.
OPEN_RUN = "gce.emb_saved_run"
#: Most points drawn by default (WebGL draws a million, the browser then slows down).
DEFAULT_POINTS = 200_000


@st.cache_data(show_spinner=False, max_entries=8)
def _layout(path: str, stamp: float, layer: str, method: str, max_points: int, seed: int):
    """(activations of the shown rows, their ``(N, 2)`` layout, the sampling note)."""
    rows, note = sample_rows(path, max_points, seed)
    acts = read_activations(path, layers=[layer], rows=rows)
    xy = project(acts.features[layer], method=method, dim=2, seed=seed)
    return acts, xy, note


def _stamp(path: Path) -> float:
    """Changes whenever the run does (a resumed run writes more blocks and run.json)."""
    blocks = path / "blocks"
    return max((p.stat().st_mtime for p in [path / "run.json", blocks] if p.exists()), default=0)


def _open_form() -> None:
    """The run folder's path and an "Open run" button (no form: the page's own form stays the
    first one)."""
    cols = st.columns([4, 1], vertical_alignment="bottom")
    typed = cols[0].text_input(
        "Run folder (Parquet)",
        key="emb_run_path",
        placeholder="runs/cifar-embeddings",
        help="The --out folder of python -m embeddings … --engine local|ray. Must lie under: "
        + ", ".join(str(r) for r in sources.data_roots()),
    )
    if cols[1].button("Open run", key="emb_run_open"):
        try:
            if not typed.strip():
                raise ExplainError("Type the path of a run folder first.")
            path = sources.allowed_path(typed.strip())
            open_run(path, KIND)
            st.session_state[OPEN_RUN] = str(path)
        except ExplainError as exc:
            show_error(exc)


def saved_run_view() -> bool:
    """The "open a saved run" input; when a run is open, draw it and return True (the page's
    own dataset form is then not shown)."""
    current = st.session_state.get(OPEN_RUN)
    with st.expander("Open a saved run (Parquet folder)", expanded=current is not None):
        _open_form()
    current = st.session_state.get(OPEN_RUN)
    if current is None:
        return False
    try:
        _show(Path(current))
    except ExplainError as exc:
        show_error(exc)
    if st.button("Close the run", key="emb_run_close"):
        st.session_state.pop(OPEN_RUN, None)
        st.rerun()
    return True


def _show(path: Path) -> None:
    run = open_run(path, KIND)
    params = run.params
    total, blocks = run.num_rows(), run.blocks
    done = len(run.written())
    st.markdown(
        f"**{total:,} images** · {len(params['layers'])} layers · model "
        f"`{params.get('model', '?')}` · {os.fspath(path)}"
        + ("" if done == len(blocks) else f" · **incomplete**: {done} of {len(blocks)} blocks")
    )
    with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):
        layer = st.selectbox(
            "Layer", params["layers"], index=len(params["layers"]) - 1, key="emb_run_layer"
        )
        method = st.segmented_control(
            "Projection", ("pca", "umap"), default="pca", key="emb_run_method"
        )
        color_by = st.segmented_control("Colour by", COLOR_BY, default="label", key="emb_run_color")
        max_points = st.number_input(
            "Most points drawn",
            1_000,
            1_000_000,
            DEFAULT_POINTS,
            10_000,
            key="emb_run_points",
            help="A larger run is shown by a stratified sample (every class in proportion).",
        )
    with st.spinner("Reading the run and projecting…"):
        acts, xy, note = _layout(
            str(path), _stamp(path), layer, method or "pca", int(max_points), 0
        )
    if note:
        st.caption(f"Note: {note}")
    st.plotly_chart(
        point_cloud(acts, xy, color_by or "label"), key="emb_run_cloud", width="stretch"
    )
    if acts.accuracy is not None:
        st.caption(f"Model accuracy on these images: {acts.accuracy:.1%}.")
    if acts.skipped:
        st.caption(f"{len(acts.skipped)} file(s) could not be read when the run was made.")

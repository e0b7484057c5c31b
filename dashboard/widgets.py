"""Widgets shared by the pages: the sidebar's model and image pickers, layer / method / class
selectors, overlay controls and downloads. No maths here: everything calls ``explain``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explain import DEFAULT, METHOD_INFO, ExplainError, ModelHandle, torchvision_classifiers
from explain.builtin import BUILTIN_MODELS
from explain.render import COLORMAPS, overlay, to_png

from .state import (
    BUILTIN_SPECS,
    ModelChoice,
    Picture,
    current_choice,
    current_pictures,
    get_model,
    photo_samples,
    read_upload,
    save_upload,
    shapes_samples,
)

SOURCES = ("Built-in", "torchvision", "Hugging Face", "Your weights")


def show_error(exc: BaseException) -> None:
    """A clear message in the page; the app keeps running."""
    text = str(exc)
    message, _, hint = text.partition("\nTry: ")
    st.error(message + (f"\n\n**What to do:** {hint}" if hint else ""), icon=":material/warning:")


def _try_load(choice: ModelChoice) -> None:
    """Button callback (runs before the page): load, or keep the old model and remember why."""
    st.session_state["model_error"] = None
    try:
        get_model(choice)
    except ExplainError as exc:
        st.session_state["model_error"] = exc
        return
    except (OSError, RuntimeError, ValueError) as exc:  # never let a load crash the app
        st.session_state["model_error"] = ExplainError(f"Loading {choice.title} failed: {exc}")
        return
    st.session_state["model_choice"] = choice


def _load_builtin() -> None:
    _try_load(ModelChoice(st.session_state["builtin_spec"]))


def _load_torchvision() -> None:
    weights = DEFAULT if st.session_state.get("tv_pretrained", True) else None
    _try_load(ModelChoice(f"torchvision:{st.session_state['tv_name']}", weights))


def _load_hf() -> None:
    ref = st.session_state.get("hf_ref", "").strip()
    _try_load(ModelChoice(f"hf:{ref}", DEFAULT, bool(st.session_state.get("hf_trust"))))


def _load_own() -> None:
    upload = st.session_state.get("own_weights")
    if upload is None:
        return
    labels = st.session_state.get("own_labels")
    path = save_upload(upload.getvalue(), Path(upload.name).suffix)
    labels_path = save_upload(labels.getvalue(), ".txt") if labels is not None else None
    _try_load(ModelChoice(f"torchvision:{st.session_state['own_arch']}", path, False, labels_path))


def model_picker() -> None:
    """Sidebar: choose the model. The previous model stays in use until a new one loads."""
    choice = current_choice()
    st.sidebar.markdown(f"**Model:** `{choice.title}`")
    with st.sidebar.expander("Change model", expanded=False):
        source = st.radio("Source", SOURCES, horizontal=True, key="model_source")
        if source == "Built-in":
            spec = st.selectbox(
                "Built-in model",
                BUILTIN_SPECS,
                format_func=lambda s: s.split(":", 1)[1],
                key="builtin_spec",
            )
            st.caption(BUILTIN_MODELS[spec.split(":", 1)[1]])
            st.button("Use this model", key="load_builtin", on_click=_load_builtin)
        elif source == "torchvision":
            names = torchvision_classifiers()
            st.selectbox(
                "Architecture (type to search)", names, index=names.index("resnet50"), key="tv_name"
            )
            st.toggle(
                "ImageNet weights (downloaded once, then cached)", value=True, key="tv_pretrained"
            )
            st.button("Load", key="load_tv", on_click=_load_torchvision)
        elif source == "Hugging Face":
            ref = st.text_input(
                "Hub id or local folder", placeholder="microsoft/resnet-50", key="hf_ref"
            )
            st.checkbox("Run the repository's own code (only if you trust it)", key="hf_trust")
            st.button("Load", key="load_hf", disabled=not ref.strip(), on_click=_load_hf)
        else:
            names = torchvision_classifiers()
            st.selectbox("Architecture", names, index=names.index("resnet18"), key="own_arch")
            upload = st.file_uploader(
                "Weights (.pth, .pt, .safetensors)",
                type=["pth", "pt", "bin", "safetensors", "th", "ckpt"],
                key="own_weights",
            )
            st.file_uploader("Class names, one per line (optional)", type=["txt"], key="own_labels")
            st.button("Load", key="load_own", disabled=upload is None, on_click=_load_own)
    error = st.session_state.pop("model_error", None)
    if error is not None:
        show_error(error)  # shown once, where the user just acted


def _use_uploads(files: Sequence) -> None:
    """Read new uploads once; bad files are reported (in the page) and skipped."""
    signature = [(f.name, f.size) for f in files]
    if signature == st.session_state.get("upload_signature"):
        return
    st.session_state["upload_signature"] = signature
    good, bad = [], []
    for f in files:
        try:
            good.append(read_upload(f.name, f.getvalue()))
        except ExplainError as exc:
            bad.append(f"{f.name}: {str(exc).splitlines()[0]}")
    st.session_state["upload_errors"] = bad
    if good:
        st.session_state["pictures"] = good
        st.session_state["picture_index"] = 0


def _use_samples(pictures: list[Picture]) -> None:
    st.session_state["pictures"] = pictures
    st.session_state["picture_index"] = 0
    st.session_state["upload_errors"] = []


def image_picker() -> list[Picture]:
    """Sidebar: upload images or pick samples; returns the chosen pictures."""
    with st.sidebar.expander("Images", expanded=False):
        files = st.file_uploader("Drop images here", accept_multiple_files=True, key="uploads")
        if files:
            _use_uploads(files)
        st.markdown("Or use samples:")
        cols = st.columns(3)
        if cols[0].button("Shapes", key="samples_shapes"):
            _use_samples([Picture(n, p, "sample", lab) for n, p, lab in shapes_samples()])
        if cols[1].button(
            "Shapes + marker",
            key="samples_marker",
            help="With the corner marker the biased model relies on",
        ):
            _use_samples(
                [Picture(n, p, "sample", lab) for n, p, lab in shapes_samples(marker="class")]
            )
        photos = photo_samples()
        if photos and cols[2].button("Photos", key="samples_photos"):
            _use_samples([Picture(n, p, "sample") for n, p in photos])
    for line in st.session_state.get("upload_errors", []):
        st.warning(f"Skipped {line}", icon=":material/warning:")
    pictures = current_pictures()
    st.sidebar.caption(f"{len(pictures)} image(s) selected")
    st.sidebar.image([p.pixels for p in pictures[:12]], width=44)
    return pictures


def picture_select(pictures: Sequence[Picture], key: str = "picture_index") -> Picture:
    """Choose one of the pictures (thumbnails + a selector)."""
    names = [p.name for p in pictures]
    index = min(st.session_state.get(key, 0), len(pictures) - 1)
    index = st.selectbox(
        "Image",
        range(len(pictures)),
        index=index,
        format_func=lambda i: names[i],
        key=f"{key}_select",
    )
    st.session_state[key] = index
    return pictures[index]


def layer_select(handle: ModelHandle, key: str, label: str = "Layer") -> str:
    """One layer with a map; the usual Grad-CAM layer preselected."""
    infos = handle.map_layers
    names = [i.name for i in infos]
    describe = {i.name: i.describe() for i in infos}
    default = names.index(handle.default_layer) if handle.default_layer in names else 0
    return st.selectbox(
        label,
        names,
        index=default,
        format_func=lambda n: describe[n],
        key=key,
        help="Every module with a spatial (or token-grid) output, by its path.",
    )


def method_select(key: str, default: str = "gradcam", methods: Sequence[str] | None = None) -> str:
    names = list(methods or METHOD_INFO)
    return st.selectbox(
        "Method",
        names,
        index=names.index(default),
        format_func=lambda m: METHOD_INFO[m].title,
        key=key,
    )


def class_select(handle: ModelHandle, probs: np.ndarray, key: str) -> int:
    """The class to explain: click one of the top 5, or search any class by name."""
    top = np.argsort(-probs)[:5]
    options = [int(i) for i in top]
    picked = st.pills(
        "Explain the class",
        options,
        default=options[0],
        key=f"{key}_top",
        format_func=lambda i: f"{handle.labels[i]} ({probs[i]:.0%})",
    )
    other = st.selectbox(
        "…or any class",
        range(handle.num_classes),
        index=None,
        format_func=lambda i: handle.labels[i],
        key=f"{key}_any",
        placeholder="Search a class by name",
    )
    if other is not None:
        return int(other)
    return int(picked if picked is not None else options[0])


def method_progress(container, method: str):
    """For the slow (perturbation) methods, a progress bar in ``container``; returns the
    ``progress(done, total, message)`` callback for ``compute_cams`` and a function that
    removes the bar."""
    bar = None
    if METHOD_INFO[method].kind == "perturbation":
        bar = container.progress(0.0, text=f"{METHOD_INFO[method].title}…")

    def report(done: int, total: int, message: str) -> None:
        if bar is not None:
            bar.progress(min(1.0, done / max(total, 1)), text=message)

    def clear() -> None:
        if bar is not None:
            bar.empty()

    return report, clear


def overlay_controls(key: str) -> tuple[float, str]:
    """Opacity and colour map: changing them never runs the model."""
    cols = st.columns(2)
    alpha = cols[0].slider("Opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}_alpha")
    cmap = cols[1].selectbox("Colours", COLORMAPS, key=f"{key}_cmap")
    return alpha, cmap


def prediction_chart(handle: ModelHandle, probs: np.ndarray, k: int = 5) -> go.Figure:
    top = np.argsort(-probs)[:k][::-1]
    fig = go.Figure(
        go.Bar(
            x=probs[top],
            y=[handle.labels[i] for i in top],
            orientation="h",
            text=[f"{probs[i]:.1%}" for i in top],
            textposition="auto",
            marker_color="#d6336c",
        )
    )
    fig.update_layout(
        height=60 + 36 * len(top),
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
    )
    return fig


def downloads(
    stem: str,
    picture: np.ndarray,
    heat: np.ndarray,
    summary: dict,
    alpha: float,
    cmap: str,
    key: str,
) -> None:
    cols = st.columns(3)
    cols[0].download_button(
        "Overlay (PNG)",
        to_png(overlay(picture, heat, alpha, cmap)),
        file_name=f"{stem}_overlay.png",
        mime="image/png",
        key=f"{key}_png",
    )
    buffer = _npy_bytes(heat)
    cols[1].download_button(
        "Map (.npy)",
        buffer,
        file_name=f"{stem}_map.npy",
        mime="application/octet-stream",
        key=f"{key}_npy",
    )
    cols[2].download_button(
        "Summary (JSON)",
        json.dumps(summary, indent=2),
        file_name=f"{stem}_summary.json",
        mime="application/json",
        key=f"{key}_json",
    )


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(array, np.float32))
    return buf.getvalue()


def sidebar() -> tuple[ModelHandle, list[Picture], str]:
    """The shared sidebar of every page: model and images. Returns the model, the chosen
    pictures and the model's cache key."""
    from .state import current_model

    model_picker()
    pictures = image_picker()
    return current_model(), pictures, current_choice().key


def page(title: str, caption: str) -> tuple[ModelHandle, list[Picture], str]:
    """The sidebar, then the page's title and a one-line explanation under it."""
    handle, pictures, model_key = sidebar()
    st.title(title)
    st.caption(caption)
    return handle, pictures, model_key

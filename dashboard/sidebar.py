"""The sidebar every page shares: the model picker and the images (upload visible at once,
sample sets, thumbnails), and :func:`page`, which every page starts with."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from explain import DEFAULT, ExplainError, ModelHandle, torchvision_classifiers
from explain.builtin import BUILTIN_MODELS

from . import state, style
from .sources import (
    BUILTIN_SPECS,
    SAMPLE_SETS,
    ModelChoice,
    Picture,
    default_choice,
    get_model,
    read_upload,
    remember_uploads,
    save_upload,
)

SOURCES = ("Built-in", "torchvision", "Hugging Face", "Your weights")
THUMBNAILS = 12


def show_error(exc: BaseException, where=st) -> None:
    """A clear message in the page; the app keeps running."""
    text = str(exc)
    message, _, hint = text.partition("\nTry: ")
    where.error(
        message + (f"\n\n**What to do:** {hint}" if hint else ""), icon=":material/warning:"
    )


# -- model ----------------------------------------------------------------------------------------
def try_load(choice: ModelChoice) -> bool:
    """Load ``choice`` and use it; on failure keep the old model and remember why (shown once,
    where the user acted)."""
    st.session_state["gce.model_error"] = None
    try:
        get_model(choice)
    except ExplainError as exc:
        st.session_state["gce.model_error"] = exc
        return False
    except (OSError, RuntimeError, ValueError) as exc:  # never let a load crash the app
        st.session_state["gce.model_error"] = ExplainError(f"Loading {choice.title} failed: {exc}")
        return False
    state.set_model_choice(choice)
    return True


def _key(name: str) -> str:
    """Picker widgets belong to the model in use: after a switch they show the new model."""
    return f"w.{name}@{state.token('model')}"


def _load_builtin() -> None:
    try_load(ModelChoice(st.session_state[_key("builtin_spec")]))


def _load_torchvision() -> None:
    weights = DEFAULT if st.session_state.get(_key("tv_pretrained"), True) else None
    try_load(ModelChoice(f"torchvision:{st.session_state[_key('tv_name')]}", weights))


def _load_hf() -> None:
    ref = st.session_state.get(_key("hf_ref"), "").strip()
    try_load(ModelChoice(f"hf:{ref}", DEFAULT, bool(st.session_state.get(_key("hf_trust")))))


def _load_own() -> None:
    upload = st.session_state.get(_key("own_weights"))
    if upload is None:
        return
    labels = st.session_state.get(_key("own_labels"))
    path = save_upload(upload.getvalue(), upload.name)
    labels_path = save_upload(labels.getvalue(), labels.name) if labels is not None else None
    arch = st.session_state[_key("own_arch")]
    try_load(ModelChoice(f"torchvision:{arch}", path, False, labels_path, upload.name))


def model_picker() -> None:
    """Choose the model. The previous model stays in use until a new one loads; the picker's
    widgets always show the model in use."""
    choice = state.model_choice()
    source_of = {"builtin": "Built-in", "torchvision": "torchvision", "hf": "Hugging Face"}
    source = source_of.get(choice.spec.partition(":")[0], "Built-in")
    if choice.weights not in (DEFAULT, None):
        source = "Your weights"
    name = choice.spec.partition(":")[2]
    st.sidebar.markdown(f"**Model:** `{choice.title}`")
    with st.sidebar.expander("Change model", expanded=False):
        picked = st.radio(
            "Source", SOURCES, index=SOURCES.index(source), horizontal=True, key=_key("source")
        )
        if picked == "Built-in":
            spec = st.selectbox(
                "Built-in model",
                BUILTIN_SPECS,
                index=BUILTIN_SPECS.index(choice.spec) if choice.spec in BUILTIN_SPECS else 0,
                format_func=lambda s: s.split(":", 1)[1],
                key=_key("builtin_spec"),
            )
            st.caption(BUILTIN_MODELS.get(spec.split(":", 1)[1], ""))
            st.button("Use this model", key=_key("load_builtin"), on_click=_load_builtin)
        elif picked == "torchvision":
            names = torchvision_classifiers()
            current = name if source == "torchvision" and name in names else "resnet50"
            st.selectbox(
                "Architecture (type to search)",
                names,
                index=names.index(current),
                key=_key("tv_name"),
            )
            st.toggle(
                "ImageNet weights (downloaded once, then cached)",
                value=not (source == "torchvision" and choice.weights is None),
                key=_key("tv_pretrained"),
            )
            st.button("Load", key=_key("load_tv"), on_click=_load_torchvision)
        elif picked == "Hugging Face":
            ref = st.text_input(
                "Hub id or local folder",
                value=name if source == "Hugging Face" else "",
                placeholder="microsoft/resnet-50",
                key=_key("hf_ref"),
            )
            st.checkbox(
                "Run the repository's own code (only if you trust it)", key=_key("hf_trust")
            )
            st.button("Load", key=_key("load_hf"), disabled=not ref.strip(), on_click=_load_hf)
        else:
            names = torchvision_classifiers()
            st.selectbox("Architecture", names, index=names.index("resnet18"), key=_key("own_arch"))
            upload = st.file_uploader(
                "Weights (.pth, .pt, .safetensors)",
                type=["pth", "pt", "bin", "safetensors", "th", "ckpt"],
                key=_key("own_weights"),
            )
            st.file_uploader(
                "Class names, one per line (optional)", type=["txt"], key=_key("own_labels")
            )
            st.button("Load", key=_key("load_own"), disabled=upload is None, on_click=_load_own)
    error = st.session_state.pop("gce.model_error", None)
    if error is not None:
        show_error(error, st.sidebar)  # shown once, where the user just acted


# -- images ---------------------------------------------------------------------------------------
def _uploader_key() -> str:
    return f"w.uploads.{st.session_state.get('gce.upload_round', 0)}"


def _clear_uploader() -> None:
    st.session_state["gce.upload_round"] = st.session_state.get("gce.upload_round", 0) + 1


def _use_uploads() -> None:
    """Uploader callback: read the files once; bad ones are named with the reason and skipped;
    the previous images stay if none is readable."""
    files = st.session_state.get(_uploader_key()) or []
    good: list[tuple[str, bytes]] = []
    pictures: list[Picture] = []
    bad: list[str] = []
    for f in files:
        data = f.getvalue()
        try:
            pictures.append(read_upload(f.name, data))
            good.append((f.name, data))
        except ExplainError as exc:
            bad.append(str(exc).partition("\nTry: ")[0])
    st.session_state["gce.upload_errors"] = bad
    st.session_state["gce.notice"] = None
    if pictures:
        state.set_pictures(pictures, "upload-" + remember_uploads(good))
    _clear_uploader()  # the uploader empties: the thumbnails below show what is in use


def _use_samples(set_id: str) -> None:
    state.set_pictures(SAMPLE_SETS[set_id].load(), set_id)
    st.session_state["gce.upload_errors"] = []
    st.session_state["gce.notice"] = None


def image_picker() -> list[Picture]:
    """Upload images (visible at once) or pick a sample set; returns the pictures in use."""
    side = st.sidebar
    side.markdown("**Images**")
    side.file_uploader(
        "Drop your images here",
        accept_multiple_files=True,
        type=None,
        key=_uploader_key(),
        on_change=_use_uploads,
        label_visibility="collapsed",
    )
    if notice := st.session_state.get("gce.notice"):
        side.info(notice, icon=":material/info:")
    for line in st.session_state.get("gce.upload_errors", []):  # where the files were dropped
        side.warning(f"Skipped {line}", icon=":material/warning:")
    side.caption("Or use samples:")
    row = side.container(horizontal=True, gap="small")
    for sample in SAMPLE_SETS.values():
        row.button(
            sample.title,
            key=f"w.samples.{sample.id}",
            help=sample.help,
            on_click=_use_samples,
            args=(sample.id,),
        )
    pictures = state.pictures()
    shown = state.current_picture()
    side.caption(f"{len(pictures)} image(s) · showing **{shown.name}**")
    side.image([p.thumb for p in pictures[:THUMBNAILS]], width=44)
    return pictures


# -- every page -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """What every page works on."""

    handle: ModelHandle
    model_key: str
    pictures: list[Picture]


def current_model() -> ModelHandle:
    """The model in use (the default one if a remembered choice can no longer load)."""
    choice = state.model_choice()
    try:
        return get_model(choice)
    except ExplainError as exc:  # e.g. a remembered choice whose file disappeared
        state.set_model_choice(default_choice())
        show_error(exc)
        return get_model(default_choice())


def sidebar() -> Context:
    """The shared sidebar: restores a linked view once, then model and images."""
    style.apply()
    state.restore_from_url(try_load)
    model_picker()
    pictures = image_picker()
    handle = current_model()
    state.sync_url(handle)
    return Context(handle, state.model_choice().key, pictures)


def page(title: str, caption: str) -> Context:
    """The sidebar, then the page's title and a one-line explanation under it."""
    ctx = sidebar()
    st.title(title)
    st.caption(caption)
    return ctx

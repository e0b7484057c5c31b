"""The sidebar every page shares: the model picker (with the prompt box of a CLIP model, whose
classes are the prompts typed there), the images (upload visible at once, sample sets,
thumbnails), and :func:`page`, which every page starts with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from explain import DEFAULT, ExplainError, ModelHandle, PromptError, torchvision_classifiers
from explain.builtin import BUILTIN_MODELS
from explain.models import SOURCES, timm_classifiers

from . import state, style
from .sources import (
    DEFAULT_PROMPTS,
    SAMPLE_SETS,
    ModelChoice,
    Picture,
    allowed_path,
    builtin_choice,
    builtin_specs,
    default_choice,
    get_model,
    read_upload,
    remember_uploads,
    sample_set_for,
    save_upload,
    suits,
)

#: The model sources the picker offers, from the library's registry (never a Python import
#: path: a web page must not make the server import code), then the user's own weights.
PICKED = ("builtin", "torchvision", "timm", "hf", "clip", "open_clip")
PICKED_SOURCES = {s.name: s for s in SOURCES if s.name in PICKED}
OWN_WEIGHTS = "Your weights"
LABELS = [s.label for s in PICKED_SOURCES.values()] + [OWN_WEIGHTS]
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
    where the user acted). A built-in model is shown the sample images of its own kind (the
    shapes models the shapes, the ImageNet models the photos); uploads are kept."""
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
    if not suits(choice.spec, state.images_source()):
        wanted = sample_set_for(choice.spec)
        state.set_pictures(SAMPLE_SETS[wanted].load(), wanted)
    return True


def _key(name: str) -> str:
    """Picker widgets belong to the model in use: after a switch they show the new model."""
    return f"w.{name}@{state.token('model')}"


def _load_builtin() -> None:
    try_load(ModelChoice(st.session_state[_key("builtin_spec")]))


def _load_library(prefix: str) -> None:
    """torchvision or timm: the architecture, with its pretrained weights or random ones."""
    weights = DEFAULT if st.session_state.get(_key(f"{prefix}_pretrained"), True) else None
    try_load(ModelChoice(f"{prefix}:{st.session_state[_key(f'{prefix}_name')]}", weights))


def _load_hf() -> None:
    ref = st.session_state.get(_key("hf_ref"), "").strip()
    try_load(ModelChoice(f"hf:{ref}", DEFAULT, bool(st.session_state.get(_key("hf_trust")))))


def _looks_like_folder(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists()


def _load_clip(prefix: str) -> None:
    """A CLIP model (hub id or folder, or an open_clip name); a folder must lie inside the
    folders this dashboard may read (``GCE_DATA_ROOTS``)."""
    ref = st.session_state.get(_key(f"{prefix}_ref"), "").strip()
    if prefix == "clip" and _looks_like_folder(ref):
        try:
            ref = str(allowed_path(ref))
        except ExplainError as exc:
            st.session_state["gce.model_error"] = exc
            return
    try_load(ModelChoice(f"{prefix}:{ref}"))


def _load_own() -> None:
    upload = st.session_state.get(_key("own_weights"))
    if upload is None:
        return
    labels = st.session_state.get(_key("own_labels"))
    path = save_upload(upload.getvalue(), upload.name)
    labels_path = save_upload(labels.getvalue(), labels.name) if labels is not None else None
    arch = st.session_state[_key("own_arch")]
    try_load(ModelChoice(f"torchvision:{arch}", path, False, labels_path, upload.name))


def _source_label(choice: ModelChoice) -> str:
    if choice.weights not in (DEFAULT, None):
        return OWN_WEIGHTS
    found = PICKED_SOURCES.get(choice.spec.partition(":")[0], PICKED_SOURCES["builtin"])
    return found.label


def _library_picker(prefix: str, names: tuple[str, ...], current: str, fallback: str) -> None:
    """An architecture of torchvision or timm, pretrained (downloaded once) or random."""
    choice = state.model_choice()
    mine = choice.spec.startswith(prefix + ":")
    name = current if mine and current in names else fallback
    st.selectbox(
        "Architecture (type to search)", names, index=names.index(name), key=_key(f"{prefix}_name")
    )
    st.toggle(
        "Pretrained weights (downloaded once, then cached)",
        value=not (mine and choice.weights is None),
        key=_key(f"{prefix}_pretrained"),
        help="Off: random weights, which work offline but explain nothing real.",
    )
    st.button("Load", key=_key(f"load_{prefix}"), on_click=_load_library, args=(prefix,))


def model_picker() -> None:
    """Choose the model. The previous model stays in use until a new one loads; the picker's
    widgets always show the model in use. Sources and their help come from the library's
    registry (:data:`explain.models.SOURCES`)."""
    choice = state.model_choice()
    source = _source_label(choice)
    name = choice.spec.partition(":")[2]
    st.sidebar.markdown(f"**Model:** `{choice.title}`")
    with st.sidebar.expander("Change model", expanded=False):
        picked = st.radio(
            "Source", LABELS, index=LABELS.index(source), horizontal=True, key=_key("source")
        )
        by_label = {s.label: s for s in PICKED_SOURCES.values()}
        if picked in by_label:
            st.caption("Spec: " + by_label[picked].help)
        if picked == PICKED_SOURCES["builtin"].label:
            specs = builtin_specs()
            spec = st.selectbox(
                "Built-in model",
                specs,
                index=specs.index(choice.spec) if choice.spec in specs else 0,
                format_func=lambda s: s.split(":", 1)[1],
                key=_key("builtin_spec"),
            )
            st.caption(BUILTIN_MODELS.get(spec.split(":", 1)[1], ""))
            st.button("Use this model", key=_key("load_builtin"), on_click=_load_builtin)
        elif picked == PICKED_SOURCES["torchvision"].label:
            _library_picker("torchvision", torchvision_classifiers(), name, "resnet50")
        elif picked == PICKED_SOURCES["timm"].label:
            try:
                names = timm_classifiers()
            except ExplainError as exc:  # timm is not installed
                show_error(exc)
            else:
                _library_picker("timm", names, name, "convnext_tiny")
        elif picked == PICKED_SOURCES["hf"].label:
            ref = st.text_input(
                "Hub id or local folder",
                value=name if choice.spec.startswith("hf:") else "",
                placeholder="microsoft/resnet-50",
                key=_key("hf_ref"),
            )
            st.checkbox(
                "Run the repository's own code (only if you trust it)", key=_key("hf_trust")
            )
            st.button("Load", key=_key("load_hf"), disabled=not ref.strip(), on_click=_load_hf)
        elif picked in (PICKED_SOURCES["clip"].label, PICKED_SOURCES["open_clip"].label):
            prefix = "clip" if picked == PICKED_SOURCES["clip"].label else "open_clip"
            ref = st.text_input(
                "Hub id or local folder" if prefix == "clip" else "Model name (with its tag)",
                value=name if choice.spec.startswith(prefix + ":") else "",
                placeholder="openai/clip-vit-base-patch32" if prefix == "clip" else "ViT-B-32",
                key=_key(f"{prefix}_ref"),
            )
            st.caption("Its classes are the prompts you type (one per line) below the model.")
            st.button(
                "Load",
                key=_key(f"load_{prefix}"),
                disabled=not ref.strip(),
                on_click=_load_clip,
                args=(prefix,),
            )
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


# -- prompts (CLIP) -------------------------------------------------------------------------------
def _prompts_key() -> str:
    return f"w.prompts@{state.token('model')}"


def _prompt_error_key() -> str:
    return f"gce.prompt_error@{state.token('model')}"


def _use_prompts() -> None:
    """Prompt box callback: ask the typed prompts; bad ones are named and the previous prompts
    stay in use."""
    text = st.session_state.get(_prompts_key(), "")
    try:
        asked = get_model(state.model_choice()).with_prompts(text).prompts
    except PromptError as exc:
        st.session_state[_prompt_error_key()] = exc
        return
    st.session_state[_prompt_error_key()] = None
    state.set_prompts(asked)


def prompt_box(base: ModelHandle) -> None:
    """The classes of a CLIP model: prompts typed one per line (shown on every page)."""
    asked = state.prompts() or base.prompts or list(DEFAULT_PROMPTS)
    key = _prompts_key()
    if st.session_state.get(_prompt_error_key()) is None:
        st.session_state[key] = "\n".join(asked)  # the box shows the prompts in use
    st.sidebar.text_area(
        "Prompts (one per line)",
        key=key,
        on_change=_use_prompts,
        height=110,
        help="The classes of this CLIP model: it tells which prompt fits the image best, and "
        "the maps show what in the image matches a prompt. Press Ctrl+Enter to apply.",
    )
    error = st.session_state.get(_prompt_error_key())
    if error is not None:
        show_error(error, st.sidebar)
        st.sidebar.caption("Still in use: " + " · ".join(asked))


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
        show_error(exc)
    # The default, then the built-in one (the model the server was started with may not load:
    # a misspelt name, pretrained weights that cannot be downloaded here).
    for fallback in dict.fromkeys([default_choice(), builtin_choice()]):
        if fallback == choice:
            continue
        try:
            handle = get_model(fallback)
        except ExplainError as exc:
            show_error(exc)
            continue
        state.set_model_choice(fallback)
        return handle
    return get_model(builtin_choice())


def session_model(base: ModelHandle) -> ModelHandle:
    """The shared model as this session asks it: a CLIP model over the session's prompts (a
    handle of its own, kept for the session; the shared one is never changed)."""
    asked = state.prompts()
    if base.prompts is None or not asked or asked == base.prompts:
        return base
    kept = st.session_state.get("gce.session_model")
    if kept is not None and kept[0] is base and kept[1].prompts == asked:
        return kept[1]
    try:
        handle = base.with_prompts(asked)
    except PromptError as exc:  # stored prompts were checked: only a changed library gets here
        show_error(exc)
        return base
    st.session_state["gce.session_model"] = (base, handle)
    return handle


def sidebar() -> Context:
    """The shared sidebar: restores a linked view once, then model and images."""
    style.apply()
    state.restore_from_url(try_load)
    base = current_model()  # first: a choice that cannot load falls back before it is shown
    model_picker()
    if base.prompts is not None:
        prompt_box(base)
    pictures = image_picker()
    handle = session_model(base)
    state.sync_url(handle)
    return Context(handle, state.model_key(handle), pictures)


def fit_hint() -> None:
    """A word when a built-in shapes model is shown pictures that are not shapes (an upload,
    say): its six classes make any answer on them meaningless; one click shows its samples."""
    spec, source = state.model_choice().spec, state.images_source()
    wanted = sample_set_for(spec)
    shown = SAMPLE_SETS.get(source)
    if SAMPLE_SETS[wanted].domain != "shapes" or (shown and shown.domain == "shapes"):
        return
    with st.container(horizontal=True, vertical_alignment="center", key="fit_hint"):
        st.info(
            f"{spec} knows six coloured shapes only: on these pictures its answers mean little.",
            icon=":material/info:",
        )
        st.button(
            f"Show the {SAMPLE_SETS[wanted].title.lower()} samples",
            key="w.fit_hint",
            on_click=_use_samples,
            args=(wanted,),
        )


def page(title: str, caption: str) -> Context:
    """The sidebar, then the page's title and a one-line explanation under it."""
    ctx = sidebar()
    st.title(title)
    st.caption(caption)
    fit_hint()
    return ctx

"""The session's choices, designed once: what each depends on, and the link that restores them.

Four scopes identify what a choice depends on:

- ``model``: the loaded model (its spec and weights);
- ``classes``: the model and its classes (a CLIP model's classes are the session's prompts:
  a prompt change resets the class choice, not the layer);
- ``images``: the set of pictures in the sidebar;
- ``picture``: the picture shown (within the images).

Every choice lives under a session-state key that carries the identity of its scopes
(:data:`SETTINGS`), and so does every widget that shows it (:func:`widget_key`). When the model
changes, the layer chosen for the old model is simply not found under the new model's key: the
new model starts on its own default layer, the class choice starts on the new top class, and no
widget made for the old model is ever shown again. Nothing is patched per widget.

Widgets are "controlled": before a widget is drawn its key is set from the choice, and its
``on_change`` callback writes the choice back (callbacks run before the script), so two widgets
that show the same choice (the class pills and the "any class" box) always agree, and a choice
made on one page holds on every page.

The model, images, method and layer are also written to the page's URL (query parameters), so a
reload or a shared link shows the same view; the page itself is the URL's path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from explain import METHOD_INFO, ModelHandle

from .method_choice import offered
from .sources import (  # default_model_spec: the model a new session starts on
    ModelChoice,
    Picture,
    default_choice,
    default_model_spec,
    default_sample_set,
    load_images_source,
)

__all__ = ["default_model_spec", "default_sample_set"]

PREFIX = "gce."

#: Each choice and the scopes it depends on.
SETTINGS: dict[str, tuple[str, ...]] = {
    "method": (),
    "present_mode": (),
    "alpha": (),
    "cmap": (),
    "methods": (),
    "layers_scope": (),
    "shared_scale": (),
    "layer": ("model",),
    "all_layers": ("model",),
    "picture": ("images",),
    "target": ("classes", "picture"),
    "compare_layers": ("model",),
    "quick_perturbation": (),
}

#: Query parameters that are written and read back.
URL_KEYS = ("model", "weights", "images", "method", "layer", "mode")


# -- the scopes ---------------------------------------------------------------------------------
def model_choice() -> ModelChoice:
    return st.session_state.get(PREFIX + "model") or default_choice()


def set_model_choice(choice: ModelChoice) -> None:
    """Use another model: every choice in the ``model`` scope starts afresh."""
    st.session_state[PREFIX + "model"] = choice


def prompts() -> list[str] | None:
    """The prompts this session asks the CLIP model in use (None: its starting prompts)."""
    return st.session_state.get(PREFIX + "prompts@" + model_choice().token)


def set_prompts(found: Sequence[str]) -> None:
    """Ask other prompts: every choice in the ``classes`` scope starts afresh."""
    st.session_state[PREFIX + "prompts@" + model_choice().token] = list(found)


def model_key(handle: ModelHandle) -> str:
    """The identity of the model and its classes, for the results store: a class index means
    another prompt once the prompts change."""
    key = model_choice().key
    return key if handle.prompts is None else key + "|" + "\n".join(handle.prompts)


def images_source() -> str:
    """Where the pictures come from: a sample set id or ``"upload-<id>"`` (by default the
    samples that suit the model)."""
    return st.session_state.get(PREFIX + "images_source") or default_sample_set(model_choice().spec)


def pictures() -> list[Picture]:
    found = st.session_state.get(PREFIX + "pictures")
    if not found:
        source = images_source()
        found = load_images_source(source)
        if not found:  # e.g. a link to uploads this server no longer has
            source = default_sample_set(model_choice().spec)
            found = load_images_source(source)
        set_pictures(found, source)
    return found


def set_pictures(found: Sequence[Picture], source: str) -> None:
    """Use other pictures: every choice in the ``images`` scope starts afresh."""
    st.session_state[PREFIX + "pictures"] = list(found)
    st.session_state[PREFIX + "images_source"] = source


def _images_token() -> str:
    keys = "".join(p.key for p in pictures())
    return hashlib.sha1(keys.encode()).hexdigest()[:10]


def picture_index() -> int:
    return min(max(int(get("picture", 0)), 0), len(pictures()) - 1)


def current_picture() -> Picture:
    return pictures()[picture_index()]


def token(scope: str) -> str:
    """The identity of a scope now (short)."""
    if scope == "model":
        return model_choice().token
    if scope == "classes":
        asked = "\n".join(prompts() or [])
        return model_choice().token + hashlib.sha1(asked.encode()).hexdigest()[:6]
    if scope == "images":
        return _images_token()
    if scope == "picture":
        return current_picture().key[:10]
    raise KeyError(scope)


# -- choices ------------------------------------------------------------------------------------
def _key(name: str) -> str:
    scopes = SETTINGS[name]
    return PREFIX + name + ("@" + ".".join(token(s) for s in scopes) if scopes else "")


def get(name: str, default: Any = None) -> Any:
    """The choice ``name`` for the current model / images / picture."""
    return st.session_state.get(_key(name), default)


def put(name: str, value: Any) -> None:
    st.session_state[_key(name)] = value


def widget_key(name: str, page: str = "") -> str:
    """The key of a widget that shows choice ``name``: it names the scopes' identities, so a
    widget drawn for another model or other images is a different widget."""
    return "w." + (page + "." if page else "") + _key(name).removeprefix(PREFIX)


def controlled(name: str, value: Any, page: str = "") -> tuple[str, Callable[[], None]]:
    """Set a widget's key to the choice ``value`` and return ``(key, on_change)``; the
    callback stores what the user picked as the choice."""
    key = widget_key(name, page)
    st.session_state[key] = value

    def store() -> None:
        put(name, st.session_state[key])

    return key, store


def method(handle: ModelHandle | None = None) -> str:
    """The chosen method if it exists (and is offered for ``handle``), else Grad-CAM."""
    chosen = get("method")
    usable = METHOD_INFO if handle is None else offered(handle)
    return chosen if chosen in usable else "gradcam"


def layer(handle: ModelHandle) -> str:
    """The chosen layer if the model has it (with a map), else the model's default layer."""
    chosen = get("layer")
    names = {i.name for i in handle.map_layers}
    return chosen if chosen in names else handle.default_layer


def target(probs: Any) -> int:
    """The class to explain: the chosen one for this model and picture, else the top class."""
    chosen = get("target")
    if isinstance(chosen, int) and 0 <= chosen < len(probs):
        return chosen
    return int(probs.argmax())


def present_mode() -> bool:
    return bool(get("present_mode", False))


# -- the link -----------------------------------------------------------------------------------
def restore_from_url(load: Callable[[ModelChoice], bool]) -> None:
    """Once per session: take the model, images, method, layer and mode from the URL.

    Args:
        load: tries to load a model choice; returns whether it worked (it reports why not).
    """
    if st.session_state.get(PREFIX + "url_read"):
        return
    st.session_state[PREFIX + "url_read"] = True
    params = {k: st.query_params.get(k, "") for k in URL_KEYS}
    choice = ModelChoice.from_url(params)
    if choice is not None and choice != model_choice():
        load(choice)
    source = params["images"]
    if source and source != images_source():
        found = load_images_source(source)
        if found:
            set_pictures(found, source)
        else:
            st.session_state[PREFIX + "notice"] = (
                "The images this link names are not on this server (any more); the sample "
                "images are shown instead."
            )
    if params["method"] in METHOD_INFO:
        put("method", params["method"])
    if params["layer"]:
        put("layer", params["layer"])
    if params["mode"] == "present":
        put("present_mode", True)


def sync_url(handle: ModelHandle) -> None:
    """Write the current model, images, method and layer to the URL (only what changed)."""
    wanted = model_choice().url_params()
    if images_source() != default_sample_set(model_choice().spec):
        wanted["images"] = images_source()
    wanted["method"] = method(handle)
    wanted["layer"] = layer(handle)
    if present_mode():
        wanted["mode"] = "present"
    current = {k: st.query_params.get(k) for k in URL_KEYS if k in st.query_params}
    if current != wanted:
        for k in URL_KEYS:
            if k in st.query_params and k not in wanted:
                del st.query_params[k]
        st.query_params.update(wanted)

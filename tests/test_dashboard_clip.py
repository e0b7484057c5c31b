"""The dashboard on a CLIP model (a tiny random Hugging Face ``CLIPModel`` saved to a folder):
loaded through the picker, its classes are the prompts typed in the sidebar's prompt box, the
pages explain them, a prompt change shows the new ones, and bad prompts get a clear message
while the previous prompts stay in use."""

from __future__ import annotations

from pathlib import Path

import pytest
from clip_factory import make_hf_clip
from streamlit.testing.v1 import AppTest

from explain import METHOD_INFO, applicable_methods, load_model
from explain.builtin.shapes import make_dataset

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
FIRST = ["a red circle", "a blue square"]
SECOND = ["a green triangle", "a star", "a photo of a dog"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dash-clip") / "tiny-clip"
    make_hf_clip(folder)
    return folder


def _prompts_shown(at: AppTest) -> list[str]:
    box = next(w for w in at.main.selectbox if w.label == "…or any prompt")
    return list(box.options)


def _headline(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("### "))


def _expected_top(folder: Path, prompts: list[str]) -> str:
    """The prompt the model itself ranks first on the first shapes sample (the page's image)."""
    handle = load_model(f"clip:{folder}", prompts=prompts, device="cpu")
    image = make_dataset(6, seed=2024, marker="none").images[0]
    return prompts[int(handle.predict([image])[0].argmax())]


def test_clip_prompts_are_the_classes_on_every_page(clip_folder, monkeypatch):
    monkeypatch.setenv("GCE_DATA_ROOTS", str(clip_folder.parent))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"model": "builtin:shapes", "images": "shapes"})
    at.run()
    next(r for r in at.sidebar.radio if r.label == "Source").set_value("CLIP (Hugging Face)").run()
    next(t for t in at.sidebar.text_input if t.label == "Hub id or local folder").input(
        str(clip_folder)
    ).run()
    next(b for b in at.sidebar.button if b.label == "Load").click().run()
    assert not at.exception
    assert str(clip_folder) in next(m.value for m in at.sidebar.markdown if "**Model:**" in m.value)

    assert "model" not in at.query_params  # a link never names a folder on the server
    box = next(t for t in at.sidebar.text_area if t.label == "Prompts (one per line)")
    box.input("\n".join(FIRST)).run()
    assert not at.exception
    assert _prompts_shown(at) == FIRST
    top = _expected_top(clip_folder, FIRST)
    assert _headline(at).startswith(f"### {top} · ")
    captions = [img.caption for i in at.main.get("image") for img in i.proto.imgs]
    assert any(
        c.startswith("Map of “") and c.removeprefix("Map of “")[:-1] in FIRST for c in captions
    )

    box = next(t for t in at.sidebar.text_area if t.label == "Prompts (one per line)")
    box.input("\n".join(SECOND)).run()
    assert not at.exception
    assert _prompts_shown(at) == SECOND
    assert _headline(at).startswith(f"### {_expected_top(clip_folder, SECOND)} · ")

    # An empty box: a clear message, no traceback, the previous prompts still in use.
    box = next(t for t in at.sidebar.text_area if t.label == "Prompts (one per line)")
    box.input("").run()
    assert not at.exception
    assert any("The prompt list is empty" in e.value for e in at.sidebar.error)
    assert _prompts_shown(at) == SECOND

    # The other pages work on the prompts; the methods offered are those the library finds
    # applicable (FullGrad needs biases this tower lacks: left out, with its reason).
    at.switch_page("views/methods.py").run()
    assert not at.exception
    usable, skipped = applicable_methods(load_model(f"clip:{clip_folder}", prompts=SECOND))
    methods = next(w for w in at.main.multiselect if w.label == "Methods")
    assert methods.options == [METHOD_INFO[m].title for m in usable]
    assert "fullgrad" in skipped
    assert any("FullGrad is not offered" in c.value for c in at.main.caption)
    assert _prompts_shown(at) == SECOND
    for page in ("views/layers.py", "views/present.py"):
        at.switch_page(page).run()
        assert not at.exception

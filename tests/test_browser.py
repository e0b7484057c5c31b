"""End to end in a real browser: ``streamlit run dashboard/app.py`` driven by Debian's Chromium
through playwright, the way people click during a demo: back and forth between methods
(Score-CAM included), uploads, a model switch, a reload, class changes, downloads, the Present
page in presentation mode and its export; at 1400 x 1000, 1366 x 768, 1000 and 800 pixels.

Every step waits for the content it expects (the class, layer, method or image named on the
page), then for the run to finish, and asserts what is on screen: no exception element
anywhere, selectors that show what is displayed, an export that matches the screen.
Screenshots go to ``artifacts/browser``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GCE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("GCE_SCREENSHOTS", ROOT / "artifacts" / "browser"))
SHAPES = "?model=builtin:shapes&images=shapes"
#: Longest wait for one step, in milliseconds (a loaded machine can be slow).
WAIT = int(float(os.environ.get("GCE_BROWSER_WAIT_S", "180")) * 1000)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    from dashboard import serve

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    port = serve.free_port()
    with open(SCREENSHOTS / "streamlit.log", "w") as log:
        process = serve.start(port, log)
        try:
            yield serve.wait_ready(port, process)
        finally:
            serve.stop(process)


@pytest.fixture(scope="module")
def browser(server):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def _tab(browser, width: int, height: int):
    context = browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=True
    )
    tab = context.new_page()
    tab.set_default_timeout(WAIT)
    return tab


# -- waiting and reading ----------------------------------------------------------------------
def _settle(page) -> None:
    """The run has finished: the app says its script is not running and nothing is stale."""
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='stApp']\")"
        "?.getAttribute('data-test-script-state') === 'notRunning'"
        " && !document.querySelector('[data-stale=\"true\"]')",
        timeout=WAIT,
    )


def _see(page, *texts: str) -> str:
    """Wait until the page shows every text (the expected content, not just a finished run),
    then until the run is over; check no exception is shown; return the page's text."""
    try:
        page.wait_for_function(
            "texts => texts.every(t => document.body.innerText.includes(t))",
            arg=list(texts),
            timeout=WAIT,
        )
    except Exception:
        _shot(page, "failure.png")  # what the page showed instead, for the CI log reader
        raise
    _settle(page)
    body = page.inner_text("body")
    assert all(t in body for t in texts), texts  # still there once the run is over
    _no_exception(page)
    return body


def _open(page, link: str, heading: str, *texts: str) -> str:
    """Go to a page through the sidebar and wait for its own title, then for ``texts``."""
    page.get_by_role("link", name=link, exact=True).first.click()
    page.wait_for_function(
        "h => [...document.querySelectorAll(\"[data-testid='stMain'] h1\")]"
        ".some(e => e.innerText.trim() === h)",
        arg=heading,
        timeout=WAIT,
    )
    return _see(page, *texts)


def _no_exception(page) -> None:
    shown = page.locator("[data-testid='stException']")
    assert shown.count() == 0, shown.first.inner_text()


def _explaining(page) -> str:
    """The line that says what the maps explain."""
    return page.locator("p").filter(has_text=re.compile(r"^Explaining ")).first.inner_text()


def _box(page, label: str, where: str = "[data-testid='stMain']"):
    """A selectbox by its label (its input carries the label as its accessible name)."""
    return page.locator(where).get_by_role("combobox", name=label, exact=True).first


def _shown(page, label: str, where: str = "[data-testid='stMain']") -> str:
    """What a selectbox displays."""
    return _box(page, label, where).input_value()


def _choose(page, label: str, option: str, where: str = "[data-testid='stMain']") -> None:
    """Open a selectbox, filter it by typing and click the option (once more if a re-render
    of the list took the option away under the cursor)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = _box(page, label, where)
    for attempt in range(3):
        box.scroll_into_view_if_needed()
        box.click()
        try:  # a click during an animation (an expander opening) opens no list: click again
            page.get_by_role("option").first.wait_for(timeout=5_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        page.keyboard.type(option)
        try:
            page.get_by_role("option", name=option, exact=True).first.click(timeout=20_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    raise PlaywrightTimeout(f"the list of {label!r} never opened")


def _lit_pill(page) -> str:
    """The text of the highlighted class pill ("" when none is)."""
    lit = page.locator("[data-testid='stMain'] [data-testid='stButtonGroup'] [aria-checked='true']")
    return lit.first.inner_text() if lit.count() else ""


def _watch_runs(page) -> None:
    """Count script runs from now on (to prove a click did not re-run the page)."""
    page.evaluate(
        """() => {
        window.__gceRuns = 0;
        const app = document.querySelector("[data-testid='stApp']");
        new MutationObserver(() => {
          if (app.getAttribute('data-test-script-state') === 'running') window.__gceRuns++;
        }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
    }"""
    )


def _press(page, key: str, expect: str) -> str:
    """Press a key with the focus on the page itself (not in an input) until the page shows
    ``expect``. On a freshly loaded page Streamlit listens for button shortcuts a moment after
    the first run; a press lost then (nothing runs, nothing changes) is pressed again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press(key)
        try:
            page.wait_for_function(
                "t => document.body.innerText.includes(t)", arg=expect, timeout=5_000
            )
            break
        except PlaywrightTimeout:
            _settle(page)  # a press that was taken has run by now; only a lost one is repeated
            if attempt == 2 or expect in page.inner_text("body"):
                break
    return _see(page, expect)


def _download(page, name: str) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("button", name=name).first.click()
    return Path(info.value.path()).read_bytes()


def _png(array: np.ndarray) -> dict:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return {"name": "my upload.png", "mimeType": "image/png", "buffer": buf.getvalue()}


def _upload(page, files: list[dict]) -> None:
    page.locator("[data-testid='stSidebar'] input[type='file']").first.set_input_files(files)


def _shot(page, name: str, top: bool = True) -> None:
    if top:  # from the page's title down
        page.locator("[data-testid='stMain'] h1").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / name))


# -- a newcomer's first screen ------------------------------------------------------------------
def test_first_screen_is_a_real_model_on_a_real_photo(browser, server):
    """No link: EfficientNet-Lite0 (real ImageNet weights) explains the shipped cat photo with
    an ImageNet class and a Grad-CAM overlay; the shapes model brings its shapes, and back."""
    page = _tab(browser, 1400, 1000)
    page.goto(server + "/")
    body = _see(page, "Explaining ", "with Grad-CAM at bn2 · image chelsea the cat")
    assert "Model: builtin:efficientnet-lite0" in body
    headline = page.locator("[data-testid='stMain'] h3").first.inner_text()
    top, share = headline.split(" · ")
    assert top in ("tabby", "tiger cat", "Egyptian cat") and share.endswith("%")  # a house cat
    assert _explaining(page).startswith(f"Explaining {top} (")
    assert _shown(page, "Image") == "chelsea the cat" and _shown(page, "Method") == "Grad-CAM"
    assert _shown(page, "Layer").startswith("bn2 · 1280×7×7")
    assert _lit_pill(page).startswith(top)
    pictures = page.locator(".st-key-explain_pictures [data-testid='stImage'] img")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.st-key-explain_pictures img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert pictures.count() == 3 and all(
        i.evaluate("e => e.complete && e.naturalWidth") == 224 for i in pictures.all()
    )  # the model's view, the map and the overlay, at the model's input size
    captions = page.locator(".st-key-explain_pictures [data-testid='stImageCaption']")
    assert captions.all_inner_texts() == ["What the model sees", f"Map of “{top}”", "Overlay"]
    _shot(page, "0-first-screen.png")
    # The shapes model comes with the shapes, Lite0 with the photos again.
    page.get_by_text("Change model").click()
    for name, expected in [
        ("shapes", "at layer3 · image circle 1"),
        ("efficientnet-lite0", "at bn2 · image chelsea the cat"),
    ]:
        _choose(page, "Built-in model", name, "[data-testid='stSidebar']")
        page.get_by_role("button", name="Use this model").click()
        _see(page, f"Model: builtin:{name}", expected)
        assert _shown(page, "Image") == expected.rsplit("image ", 1)[1]
    page.context.close()


# -- the demo, defects first ------------------------------------------------------------------
def test_demo_path_and_every_defect(browser, server):
    from explain.builtin.shapes import CLASSES, make_dataset

    page = _tab(browser, 1400, 1000)
    page.goto(server + "/" + SHAPES)
    page.get_by_role("heading", name="Explain a prediction").wait_for()
    _see(page, "Explaining circle", "with Grad-CAM at layer3", "image circle 1")
    assert _shown(page, "Image") == "circle 1"
    assert _shown(page, "Layer").startswith("layer3 · 128×8×8")
    _shot(page, "1-explain.png")

    # Defect 1: Score-CAM shown again (after another method) raised CacheReplayClosureError.
    for option, title in [("Score-CAM", "Score-CAM"), ("Grad-CAM++", "Grad-CAM++")] * 2:
        _choose(page, "Method", option)
        _see(page, f"with {title} at layer3")
        assert _shown(page, "Method") == title

    # Compare methods: the slow methods twice (leave the page and come back); no panel cut off.
    _open(page, "Compare methods", "Compare methods", "circle (100%) at layer3 · image circle 1")
    panels = ["Grad-CAM", "Grad-CAM++", "XGrad-CAM", "HiResCAM", "LayerCAM", "Eigen-CAM"]
    panels += ["Score-CAM", "Ablation-CAM"]
    methods = page.locator("[data-testid='stMain']").get_by_role("combobox", name="Methods")
    for title in panels[-2:]:
        methods.click()
        page.keyboard.type(title)
        page.keyboard.press("Enter")
        _see(page, f"{title} · ")
    page.keyboard.press("Escape")
    for _ in range(2):
        _see(page, *[f"{t} · " for t in panels])
        captions = page.locator("[data-testid='stMain'] [data-testid='stImageCaption']")
        assert [c.split(" · ")[0] for c in captions.all_inner_texts()] == panels
        _open(page, "Explain", "Explain a prediction", "with Grad-CAM++ at layer3")
        page.get_by_role("link", name="Compare methods", exact=True).first.click()

    # Defect 3 / 6 and consistency: a class picked by pill is named by the "any class" box.
    # The method chosen before holds on every page.
    _open(page, "Explain", "Explain a prediction", "with Grad-CAM++ at layer3")
    hexagon = page.get_by_role("radio", name=re.compile(r"^hexagon"))
    hexagon.click()
    _see(page, "Explaining hexagon")
    assert _shown(page, "…or any class") == "hexagon" and _lit_pill(page).startswith("hexagon")
    _choose(page, "…or any class", "triangle")
    _see(page, "Explaining triangle")
    assert _lit_pill(page).startswith("triangle") or not _lit_pill(page)

    # Defect 7: a download gives the file on screen and does not run the page again.
    _watch_runs(page)
    summary = json.loads(_download(page, "Summary (JSON)"))
    assert summary["class"] == "triangle" and summary["method"] == "gradcampp"
    assert summary["layer"] == "layer3" and summary["image"] == "circle 1"
    page.wait_for_timeout(1000)
    assert page.evaluate("window.__gceRuns") == 0
    _no_exception(page)

    # Defects 2, 5 and 6: an upload is named in the Image box, the class chosen for the old
    # image is dropped, bad files are named with the real reason.
    sample = make_dataset(1, seed=99)
    star = CLASSES[int(sample.labels[0])]
    _upload(page, [_png(sample.images[0])])
    body = _see(page, "image my upload.png", f"Explaining {star}")
    assert f"{star} · " in body  # the headline is the new image's prediction
    assert _shown(page, "Image") == "my upload.png"
    assert _shown(page, "…or any class") == star
    _upload(
        page,
        [
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
            {"name": "empty.png", "mimeType": "image/png", "buffer": b""},
        ],
    )
    body = _see(page, "Skipped notes.txt", "Skipped empty.png is empty")
    assert "notes.txt is not an image file" in body
    assert "BytesIO" not in body and "bytes is" not in body
    assert _shown(page, "Image") == "my upload.png"  # the previous image is kept

    # Defects 2 and 3: another model; the Layer box shows its layer and shape, the classes
    # are its own (a class chosen on the old model is not carried over).
    other = page.locator("[data-testid='stMain'] [data-testid='stButtonGroup'] button").nth(1)
    chosen = other.inner_text().rsplit(" (", 1)[0]
    other.click()
    _see(page, f"Explaining {chosen} (")
    page.get_by_text("Change model").click()
    page.get_by_text("torchvision", exact=True).click()
    _choose(page, "Architecture (type to search)", "resnet18", "[data-testid='stSidebar']")
    page.get_by_text("Pretrained weights").click()  # off: random weights, offline
    page.get_by_role("button", name="Load", exact=True).click()
    body = _see(page, "torchvision:resnet18 (random weights)", "at layer4 · image my upload.png")
    assert _shown(page, "Layer") == "layer4 · 512×7×7 (Sequential)"
    explained = _explaining(page).split(" (")[0].removeprefix("Explaining ")
    assert explained not in CLASSES
    assert _shown(page, "…or any class") == explained
    assert _lit_pill(page).startswith(explained)
    _shot(page, "2-model-switch.png")

    # Defect 8: a reload keeps model, images, method, layer (and the page).
    before = _explaining(page)
    assert "model=torchvision%3Aresnet18" in page.url or "model=torchvision:resnet18" in page.url
    page.reload()
    _see(page, "torchvision:resnet18 (random weights)", before)
    assert _shown(page, "Method") == "Grad-CAM++" and _shown(page, "Image") == "my upload.png"

    # Compare layers on the new model: the class picker, the input beside the grid, one scale.
    _open(
        page,
        "Compare layers",
        "Compare layers",
        "at 4 layers · image my upload.png",
        "layer4 · 512×7×7",
    )
    page.get_by_text("One colour scale for all layers").click()
    _see(page, "one colour scale")
    _shot(page, "3-layers.png")

    # Present, through a link on the built-in model: keyboard, export, another model.
    page.goto(server + "/present" + SHAPES)
    _see(page, "Image 1 of 6")
    body = _press(page, "ArrowRight", "Image 2 of 6")
    title = page.locator("h1").first.inner_text().strip()
    sentence = page.locator("p").filter(has_text="The model is").first.inner_text()
    html = _download(page, "Download HTML").decode()
    assert html.count('class="slide"') == 6 and "show(1);" in html  # opens on slide 2
    assert f"<h2>{title}</h2>" in html and sentence in html
    assert "Model: builtin:shapes" in html and "red = mattered most" in html
    date = re.search(r"builtin:shapes · (\d+ \w+ \d{4})", body).group(1)
    assert date in html and "red = mattered most" in body
    # Defect 4: after a model change the file is the new presentation.
    page.get_by_text("Change model").click()
    _choose(page, "Built-in model", "shapes-biased", "[data-testid='stSidebar']")
    page.get_by_role("button", name="Use this model").click()
    _see(page, "Model: builtin:shapes-biased ·")
    html = _download(page, "Download HTML").decode()
    assert "Model: builtin:shapes-biased" in html and "Model: builtin:shapes ·" not in html

    # Presentation mode: no sidebar, no controls; arrows move; Esc leaves.
    page.get_by_role("button", name="Presentation mode").click()
    _see(page, "Exit presentation")
    assert not page.locator("[data-testid='stSidebar']").is_visible()
    assert not page.get_by_role("button", name="Download HTML").is_visible()
    _press(page, "ArrowLeft", "Image 1 of 6")
    _shot(page, "4-present.png")
    _press(page, "Escape", "Download HTML")
    assert page.locator("[data-testid='stSidebar']").is_visible()
    page.context.close()


def test_embeddings_linked_selection_thumbnails_and_mistakes(browser, server):
    page = _tab(browser, 1400, 1000)
    page.goto(server + "/embeddings" + SHAPES)
    _see(page, "press Run")
    page.get_by_role("button", name="Run").click()
    _see(page, "images · 3 layers", "Layer metrics")
    # Hover a point: its image follows the cursor.
    drag = page.locator(".st-key-emb_scatter .nsewdrag").first
    box = drag.bounding_box()
    point = page.locator(".st-key-emb_scatter .scatterlayer .point").first
    point.hover(force=True)
    page.wait_for_function(
        "() => { const t = document.getElementById('gce-hover-thumb');"
        " return t && t.style.display === 'block' && t.src.startsWith('data:image/jpeg'); }"
    )
    # Box-select in the first panel: the same images light up in every panel. The hover may
    # have scrolled the page, so the panel is measured again where it now is.
    drag.scroll_into_view_if_needed()
    box = drag.bounding_box()
    page.mouse.move(box["x"] + 0.05 * box["width"], box["y"] + 0.05 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.95 * box["height"], steps=12)
    page.mouse.up()
    body = _see(page, "selected image(s)", "Grad-CAM at layer3")
    chosen = int(re.search(r"(\d+) selected image", body).group(1))
    lit = page.evaluate(
        """() => [...document.querySelectorAll('.st-key-emb_scatter .cartesianlayer .subplot')]
        .map(panel => [...panel.querySelectorAll('.point')].filter(p =>
            parseFloat(getComputedStyle(p).opacity) > 0.5).length)"""
    )
    page.locator(".st-key-emb_scatter").scroll_into_view_if_needed()
    _shot(page, "5-embeddings.png", top=False)
    assert len(lit) == 3 and lit[0] == lit[1] == lit[2] == chosen, lit
    captions = page.locator("[data-testid='stMain'] [data-testid='stImageCaption']")
    assert all(c.endswith("Grad-CAM at layer3") for c in captions.all_inner_texts())
    page.get_by_text("Show the mistakes").click()
    body = _see(page, " images: ")
    assert re.search(r"\d+ of \d+ images: \d+ wrong", body)
    page.context.close()


def test_bias_finder_pictures_and_region(browser, server):
    page = _tab(browser, 1400, 1000)
    page.goto(server + "/evaluate" + SHAPES)
    page.get_by_role("tab", name="Bias finder").click()
    page.get_by_role("button", name="Run the built-in demonstration").click()
    body = _see(page, "This model relies on the corner marker", "Clean model")
    captions = [c for c in body.splitlines() if " marker · a " in c]
    assert len(captions) == 8, captions
    _shot(page, "6-bias-finder.png")
    # A box dragged on the image fills the region's coordinates.
    drawing = page.locator(".js-plotly-plot .nsewdrag").last
    drawing.scroll_into_view_if_needed()
    box = drawing.bounding_box()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.6 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.98 * box["width"], box["y"] + 0.98 * box["height"], steps=10)
    page.mouse.up()
    page.wait_for_function(
        "() => [...document.querySelectorAll('input')].some(i => i.value === '62')"
    )
    _settle(page)
    left = int(page.get_by_label("left (px)").input_value())
    right = int(page.get_by_label("right (px)").input_value())
    assert 36 <= left <= 40 and right == 62  # 0.6 and 0.98 of the 64-pixel input
    page.context.close()


def test_presentation_fits_1366_by_768(browser, server):
    page = _tab(browser, 1366, 768)
    page.goto(server + "/present" + SHAPES + "&mode=present")
    _see(page, "Image 1 of 6", "red = mattered most", "Exit presentation")
    assert not page.locator("[data-testid='stSidebar']").is_visible()
    # Measured once the pictures have arrived (an image still loading is 0 pixels high).
    page.wait_for_function(
        "() => [...document.querySelectorAll('.st-key-present_slide img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    picture = page.locator(".st-key-present_picture img").first.bounding_box()
    sentence = page.locator("p").filter(has_text="The model is").first.bounding_box()
    nav = page.get_by_role("button", name="Next →").bounding_box()
    for part in (picture, sentence, nav):
        assert part["y"] >= 0 and part["y"] + part["height"] <= 768, part
        assert part["x"] >= 0 and part["x"] + part["width"] <= 1366, part
    assert picture["height"] > 400  # large enough for a room
    # What the room sees when the shot is taken: the run over and the sentence on screen (a
    # rerun shows a grey placeholder where the sentence was).
    _settle(page)
    said = page.locator(".st-key-present_slide p").filter(has_text="The model")
    assert said.first.is_visible() and len(said.first.inner_text()) > 40
    assert not page.locator("[data-testid='stSkeleton']").count()
    _shot(page, "7-present-1366x768.png")
    page.context.close()


@pytest.mark.parametrize("width", [1000, 800])
def test_explain_holds_at_narrow_widths(browser, server, width):
    page = _tab(browser, width, 900)
    page.goto(server + "/" + SHAPES)
    _see(page, "Explaining circle", "red = mattered most")
    page.wait_for_function(
        "() => document.querySelectorAll(\"[data-testid='stMain'] [data-testid='stImage'] img\")"
        ".length >= 3"
    )
    main = page.locator("[data-testid='stMain']").bounding_box()
    for pill in page.locator("[data-testid='stMain'] [data-testid='stButtonGroup'] button").all():
        edge = pill.bounding_box()
        assert edge["x"] + edge["width"] <= main["x"] + main["width"], edge  # wrapped, not cut
    overflow = page.evaluate(
        "() => { const m = document.querySelector(\"[data-testid='stMain']\");"
        " return m.scrollWidth - m.clientWidth; }"
    )
    assert overflow <= 1
    images = page.locator("[data-testid='stMain'] [data-testid='stImage'] img").all()
    assert len(images) == 3 and all(i.bounding_box()["width"] > 80 for i in images)
    _shot(page, f"8-explain-{width}.png")
    shutil.copy(SCREENSHOTS / f"8-explain-{width}.png", SCREENSHOTS / "latest.png")
    # Present: the slide's pictures stay inside the page (none cut off at the right).
    page.goto(server + "/present" + SHAPES)
    _see(page, "Image 1 of 6", "The model is")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    main = page.locator("[data-testid='stMain']").bounding_box()
    for picture in page.locator(".st-key-present_slide [data-testid='stImage'] img").all():
        edge = picture.bounding_box()
        assert edge["x"] + edge["width"] <= main["x"] + main["width"] + 1, edge
    _shot(page, f"9-present-{width}.png")
    page.context.close()


def test_quick_score_cam_switch(browser, server):
    """Score-CAM on a 128-channel layer offers "Quick: 64 of 128 channels"; switched on, the
    maps say they are approximate, on Compare methods too (the same switch, on there, and only
    Score-CAM's caption says approximate), and still do back on Explain; the switch is gone
    for Grad-CAM. In a narrow window, as on a laptop split screen."""
    page = _tab(browser, 800, 900)
    page.goto(server + "/" + SHAPES)
    _see(page, "Explaining ", "Grad-CAM")
    assert "Quick:" not in page.inner_text("[data-testid='stMain']")
    _choose(page, "Method", "Score-CAM")
    _see(page, "with Score-CAM at", "Quick: 64 of 128 channels")
    page.get_by_text("Quick: 64 of 128 channels").click()
    body = _see(page, "approximate: only the 64 channels of highest variance were perturbed.")
    assert "with Score-CAM at" in body
    _shot(page, "quick-score-cam.png")
    _open(page, "Compare methods", "Compare methods", "circle (100%) at layer3")
    assert "Quick:" not in page.inner_text("[data-testid='stMain']")  # fast methods only
    methods = page.locator("[data-testid='stMain']").get_by_role("combobox", name="Methods")
    methods.click()
    page.keyboard.type("Score-CAM")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    _see(page, "Score-CAM · ", " s · approximate, 64 channels", "Quick: 64 of 128 channels")
    assert page.get_by_role("switch", name="Quick: 64 of 128 channels").is_checked()
    captions = page.locator("[data-testid='stMain'] [data-testid='stImageCaption']")
    approximate = [c for c in captions.all_inner_texts() if "approximate" in c]
    assert [c.split(" · ")[0] for c in approximate] == ["Score-CAM"]  # the others are exact
    captions.last.scroll_into_view_if_needed()
    _shot(page, "quick-compare-methods.png", top=False)
    _open(page, "Explain", "Explain a prediction", "with Score-CAM at", "approximate: only")
    assert page.get_by_role("switch", name="Quick: 64 of 128 channels").is_checked()
    _choose(page, "Method", "Grad-CAM")
    body = _see(page, "with Grad-CAM at")
    assert "Quick:" not in page.inner_text("[data-testid='stMain']")
    page.context.close()


def test_app_command_starts_sessions_on_the_model_it_was_given(browser):
    """``gradcam-explorer app --model builtin:shapes --weights random``: the first screen of a
    new visitor is that model, explaining its own sample pictures."""
    import subprocess
    import sys

    from dashboard import serve

    port = serve.free_port()
    command = [sys.executable, "-m", "explain.cli", "app", "--model", "builtin:shapes",
               "--weights", "random", "--server.port", str(port), "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]  # fmt: skip
    with open(SCREENSHOTS / "streamlit-model.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = serve.wait_ready(port, process)
            page = _tab(browser, 1280, 800)
            page.goto(url)
            _see(page, "Model:", "builtin:shapes (random weights)", "Explaining ")
            side = page.locator("[data-testid='stSidebar']").inner_text()
            assert "builtin:shapes (random weights)" in side
            assert "Model: builtin:shapes · 6 classes" in page.inner_text("body")
            _shot(page, "app-model.png")
            page.context.close()
        finally:
            serve.stop(process)

"""End to end in a real browser: start ``streamlit run dashboard/app.py``, drive Debian's
Chromium with playwright through Explain -> Compare layers -> Embeddings -> Evaluate (bias
finder) -> Present, assert on what the page shows, and keep screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GCE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("GCE_SCREENSHOTS", ROOT / "artifacts" / "browser"))

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
def page(server):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
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
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(180_000)
        yield tab
        browser.close()


def _open(page, link: str, title: str, images: int = 0) -> None:
    page.get_by_role("link", name=link).first.click()
    page.get_by_role("heading", name=title).first.wait_for()
    _settle(page, images)


def _settle(page, images: int = 0) -> None:
    """Wait until Streamlit has finished the run: the app reports its script as not running,
    no element is stale any more, and at least ``images`` pictures are shown."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='stApp']\")"
        "?.getAttribute('data-test-script-state') === 'notRunning'"
        " && !document.querySelector('[data-stale=\"true\"]')"
        f" && document.querySelectorAll(\"[data-testid='stImage'] img\").length >= {images}",
        timeout=180_000,
    )


def test_click_through_the_dashboard(page, server):
    from explain.builtin.shapes import CLASSES

    page.goto(server)
    page.get_by_role("heading", name="Explain a prediction").wait_for()
    _settle(page, images=3)
    body = page.inner_text("body")
    assert "Explaining" in body and "Grad-CAM" in body
    assert any(name in body for name in CLASSES)
    assert page.locator("[data-testid='stImage'] img").count() >= 3
    page.screenshot(path=str(SCREENSHOTS / "1-explain.png"), full_page=True)

    _open(page, "Compare layers", "Compare layers", images=3)
    assert page.locator("[data-testid='stImage'] img").count() >= 3
    assert "layer3 · 128×8×8" in page.inner_text("body")
    page.screenshot(path=str(SCREENSHOTS / "2-layers.png"), full_page=True)

    _open(page, "Embeddings", "Embeddings")
    page.get_by_role("button", name="Run").click()
    page.get_by_text("images · 3 layers").first.wait_for()
    _settle(page)
    # Box-select points in the first panel: their images and Grad-CAM maps appear below.
    drag = page.locator(".js-plotly-plot .nsewdrag").first
    box = drag.bounding_box()
    page.mouse.move(box["x"] + 0.05 * box["width"], box["y"] + 0.05 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.95 * box["height"], steps=12)
    page.mouse.up()
    page.get_by_text("selected image(s)").first.wait_for()
    _settle(page, images=1)
    assert "predicted" in page.inner_text("body")
    page.screenshot(path=str(SCREENSHOTS / "3-embeddings.png"), full_page=True)

    # Evaluate -> Bias finder: a box dragged on the image fills the region's coordinates.
    _open(page, "Evaluate", "Evaluate explanations")
    page.get_by_role("tab", name="Bias finder").click()
    drawing = page.locator(".js-plotly-plot .nsewdrag").first
    drawing.wait_for()
    box = drawing.bounding_box()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.6 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.98 * box["width"], box["y"] + 0.98 * box["height"], steps=10)
    page.mouse.up()
    page.wait_for_function(
        "() => [...document.querySelectorAll('input')].some(i => i.value === '62')"
    )
    _settle(page)
    left = int(page.get_by_label("left").input_value())
    right = int(page.get_by_label("right").input_value())
    assert 36 <= left <= 40 and right == 62  # 0.6 and 0.98 of the 64-pixel input
    page.screenshot(path=str(SCREENSHOTS / "4-bias-finder.png"))

    page.get_by_role("link", name="Present").first.click()  # its title is the predicted class
    page.get_by_text("Image 1 of").first.wait_for()
    page.get_by_text("The model is").first.wait_for()
    _settle(page, images=2)
    text = page.inner_text("body")
    assert "The model is" in text and "Image 1 of" in text
    page.get_by_role("button", name="Next →").click()
    page.get_by_text("Image 2 of").first.wait_for()
    _settle(page, images=2)
    text = page.inner_text("body")
    title = page.locator("h1").first.inner_text().strip().lower()
    assert "Image 2 of" in text and f"that this is a {title}" in text
    page.screenshot(path=str(SCREENSHOTS / "5-present.png"), full_page=True)
    assert (SCREENSHOTS / "5-present.png").stat().st_size > 10_000
    shutil.copy(SCREENSHOTS / "1-explain.png", SCREENSHOTS / "latest.png")

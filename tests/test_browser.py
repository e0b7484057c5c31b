"""End to end in a real browser: start ``streamlit run dashboard/app.py``, drive Debian's
Chromium with playwright through Explain -> Compare layers -> Embeddings -> Present, assert on
what the page shows, and keep screenshots."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GCE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("GCE_SCREENSHOTS", ROOT / "artifacts" / "browser"))

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log = open(SCREENSHOTS / "streamlit.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard" / "app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


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
    page.screenshot(path=str(SCREENSHOTS / "4-present.png"), full_page=True)
    assert (SCREENSHOTS / "4-present.png").stat().st_size > 10_000
    shutil.copy(SCREENSHOTS / "1-explain.png", SCREENSHOTS / "latest.png")

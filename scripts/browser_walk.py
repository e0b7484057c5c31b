"""Walk the dashboard in a real Chromium the way a person does, at several window sizes, and
save a screenshot of every step (to look at, not to assert on: the assertions live in
``tests/test_browser.py``).

The walk: the first screen (the default model on the sample photos), an upload from
``../shared/data/photos``, a model switch (EfficientNet-Lite0 -> shapes -> Lite0), methods back
and forth (Score-CAM included), Compare layers and Compare methods, Evaluate on
``../shared/data/imagenet-val`` (its boxes CSV, ~10 images, localisation metrics), Present, its
presentation mode and its export. Every step waits for the text it expects and fails on any
exception shown on the page.

    .venv/bin/python scripts/browser_walk.py [--sizes 1400x1000,1366x768,1000x900,800x900]
        [--out artifacts/browser/walk] [--full 1400x1000]

Sizes listed in ``--full`` get the whole walk (the slow steps: Score-CAM on Lite0, the
evaluation); the others the first screen, the upload, Evaluate's results and Present.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))

import test_browser as tb  # noqa: E402  (its waiting and reading helpers)


def _step(page, out: Path, name: str, started: list[float], top: str | None = None) -> None:
    """Check the page, bring ``top`` (a heading's text) to the top, wait for every picture,
    take the screenshot."""
    tb._no_exception(page)
    if top is not None:
        page.get_by_role("heading", name=top).first.evaluate("e => e.scrollIntoView()")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    page.wait_for_timeout(300)  # let the last pictures paint
    page.screenshot(path=str(out / f"{name}.png"), full_page=False)
    print(f"  {name}: {time.perf_counter() - started[0]:.1f} s", flush=True)
    started[0] = time.perf_counter()


def _use_builtin(page, name: str) -> None:
    if not tb._box(page, "Built-in model", "[data-testid='stSidebar']").is_visible():
        page.get_by_text("Change model").click()  # the expander is closed
    tb._choose(page, "Built-in model", name, "[data-testid='stSidebar']")
    page.get_by_role("button", name="Use this model").click()
    tb._see(page, f"Model: builtin:{name}")


def walk(browser, url: str, width: int, height: int, out: Path, full: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page = tb._tab(browser, width, height)
    t = [time.perf_counter()]
    page.goto(url + "/")
    tb._see(page, "Explaining ", "image chelsea the cat", "red = mattered most")
    _step(page, out, "01-first-screen", t)

    photo = sorted((SHARED / "photos").glob("*.JPEG"))[4]  # a redbone (a dog)
    page.locator("[data-testid='stSidebar'] input[type='file']").first.set_input_files(str(photo))
    tb._see(page, f"image {photo.name}")
    _step(page, out, "02-upload", t)
    if full:
        _use_builtin(page, "shapes")
        tb._see(page, "at layer3 · image")
        _step(page, out, "03-shapes-model", t)
        page.get_by_role("button", name="Photos").click()
        tb._see(page, "image chelsea the cat")
        _use_builtin(page, "efficientnet-lite0")
        tb._see(page, "at bn2 · image chelsea the cat")
        _step(page, out, "04-back-to-lite0", t)
        for option in ("Score-CAM", "Grad-CAM++", "Score-CAM", "Grad-CAM"):
            tb._choose(page, "Method", option)
            tb._see(page, f"with {option} at bn2")
        _step(page, out, "05-methods-back-and-forth", t)
        tb._open(page, "Compare layers", "Compare layers", "at 5 layers")
        _step(page, out, "06-compare-layers", t)
        tb._open(page, "Compare methods", "Compare methods", "Grad-CAM · ", "Eigen-CAM · ")
        _step(page, out, "07-compare-methods", t)
        tb._open(page, "Embeddings", "Embeddings", "then press Run")
        _step(page, out, "07b-embeddings", t)
        tb._open(page, "Explain", "Explain a prediction", "with Grad-CAM at bn2")

    tb._open(page, "Evaluate", "Evaluate explanations", "then press Run")
    page.get_by_role("radio", name="Images folder + ground truth").click()
    tb._see(page, "Ground truth (boxes CSV")
    folder = page.get_by_label("Images folder", exact=True)
    folder.fill(str(SHARED / "imagenet-val" / "images"))
    slider = page.locator("input[type=range][aria-label='Images']")
    slider.focus()
    for _ in range(7):  # 24 -> 10 images (steps of 2)
        page.keyboard.press("ArrowLeft")
    page.get_by_role("button", name="Run").click()
    tb._see(page, "Does the map land on the object?", "Ground truth: ", "10 images")
    _step(page, out, "08-evaluate-localisation", t, top="Does the map land on the object?")
    _step(page, out, "09-evaluate-faithfulness", t, top="Does the map show what the model uses?")
    _step(page, out, "10-evaluate-one-image", t, top="One image at a time")

    page.get_by_role("button", name="Photos").click()
    tb._see(page, "showing chelsea the cat")
    page.get_by_role("link", name="Present", exact=True).first.click()
    tb._see(page, "Image 1 of 6", "red = mattered most", "The model is")
    _step(page, out, "11-present", t)
    html = tb._download(page, "Download HTML").decode()
    (out / "presentation.html").write_text(html)
    page.get_by_role("button", name="Presentation mode").click()
    tb._see(page, "Exit presentation")
    tb._press(page, "ArrowRight", "Image 2 of 6")
    _step(page, out, "12-presentation-mode", t)
    tb._press(page, "Escape", "Download HTML")
    page.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1400x1000,1366x768,1000x900,800x900")
    parser.add_argument("--full", default="1400x1000")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "browser" / "walk")
    parser.add_argument("--port", type=int, default=8611)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from dashboard import serve

    os.environ.setdefault("GCE_DATA_ROOTS", str(SHARED))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "streamlit.log", "w") as log:
        server = serve.start(args.port, log)
        try:
            url = serve.wait_ready(args.port, server)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=["--no-sandbox"])
                for size in args.sizes.split(","):
                    width, height = (int(v) for v in size.split("x"))
                    print(f"{size}:", flush=True)
                    walk(browser, url, width, height, args.out / size, size in args.full)
                browser.close()
        finally:
            serve.stop(server)


if __name__ == "__main__":
    main()

"""Dashboard latency, measured in a real browser (Debian's Chromium driven by playwright).

- cold: from ``streamlit run`` to the first rendered explanation on the built-in model;
- warm: from a layer change or a class change to the updated picture, on the built-in model and
  on a ResNet-50 (torchvision architecture, random weights so that it runs offline).

    .venv/bin/python benchmarks/app_latency.py [--repeats 5]

Target: warm interactions under 1 s on CPU for the ResNet-50.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GCE_CHROMIUM", "/usr/bin/chromium")

_DONE = (
    "() => document.querySelector(\"[data-testid='stApp']\")"
    "?.getAttribute('data-test-script-state') === 'notRunning'"
    " && !document.querySelector('[data-stale=\"true\"]')"
    " && document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 3"
)


def _overlay_src(page) -> str:
    return page.locator("[data-testid='stImage'] img").nth(2).get_attribute("src") or ""


def _wait_change(page, before: str) -> float:
    """Seconds until the overlay picture differs from ``before`` and the run has finished."""
    start = time.perf_counter()
    page.wait_for_function(
        f"() => ({_DONE})() && document.querySelectorAll(\"[data-testid='stImage'] img\")[2]"
        f".getAttribute('src') !== {before!r}",
        timeout=120_000,
    )
    return time.perf_counter() - start


def _choose(page, label: str, option: str) -> None:
    box = page.locator("[data-testid='stSelectbox']").filter(has_text=label).first
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option).first.click()


def _layer_change(page, layer_text: str) -> float:
    before = _overlay_src(page)
    _choose(page, "Layer", layer_text)
    return _wait_change(page, before)


def _class_change(page, pill_index: int) -> float:
    before = _overlay_src(page)
    page.locator("[data-testid='stButtonGroup'] button").nth(pill_index).click()
    return _wait_change(page, before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--port", type=int, default=8599)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from dashboard import serve

    start = time.perf_counter()
    server = serve.start(args.port)
    try:
        url = serve.wait_ready(args.port, server)
        server_ready = time.perf_counter() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            page.goto(url)
            page.wait_for_function(_DONE, timeout=180_000)
            cold = time.perf_counter() - start
            rows = [
                ("cold start -> first explanation (built-in)", [cold]),
                ("  of which server start", [server_ready]),
            ]

            builtin_layers = ["layer2 (Sequential)", "layer3 (Sequential)"]
            rows.append(
                (
                    "warm layer change, built-in",
                    [_layer_change(page, builtin_layers[i % 2]) for i in range(args.repeats)],
                )
            )
            rows.append(
                (
                    "warm class change, built-in",
                    [_class_change(page, 1 + i % 3) for i in range(args.repeats)],
                )
            )

            # ResNet-50 (random weights: offline) through the sidebar's model picker.
            page.get_by_text("Change model").click()
            page.get_by_text("torchvision", exact=True).click()
            _choose(page, "Architecture", "resnet50")
            page.get_by_text("ImageNet weights").click()  # off: random weights
            t0 = time.perf_counter()
            page.get_by_role("button", name="Load", exact=True).click()
            page.wait_for_function(
                "() => document.body.innerText.includes('torchvision:resnet50 (random weights)')",
                timeout=180_000,
            )
            page.wait_for_function(_DONE, timeout=180_000)
            rows.append(("load ResNet-50 + first explanation", [time.perf_counter() - t0]))
            resnet_layers = ["layer3 (Sequential)", "layer4 (Sequential)"]
            rows.append(
                (
                    "warm layer change, ResNet-50",
                    [_layer_change(page, resnet_layers[i % 2]) for i in range(args.repeats)],
                )
            )
            rows.append(
                (
                    "warm class change, ResNet-50",
                    [_class_change(page, 1 + i % 3) for i in range(args.repeats)],
                )
            )
            browser.close()
    finally:
        serve.stop(server)

    print(f"{'measure':48s} {'median s':>9s} {'min s':>7s} {'max s':>7s}  n")
    for name, values in rows:
        print(
            f"{name:48s} {statistics.median(values):9.3f} {min(values):7.3f} "
            f"{max(values):7.3f}  {len(values)}"
        )
    warm = [v for name, values in rows if "warm" in name and "ResNet" in name for v in values]
    verdict = "meets" if statistics.median(warm) < 1.0 else "MISSES"
    print(
        f"\nResNet-50 warm interactions: median {statistics.median(warm):.3f} s -> {verdict} "
        "the 1 s target"
    )


if __name__ == "__main__":
    main()

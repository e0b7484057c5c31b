"""Time per image of every evaluation metric, per CAM method, with batching on and off, on a
torchvision ResNet-50 (random weights: the speed does not depend on them) on the CPU, next to
pytorch-grad-cam's equivalents where there are some (ROAD, CamMultImageConfidenceChange).

    python benchmarks/metrics_speed.py            # 4 photos, gradcam + gradcampp, 20 steps
    python benchmarks/metrics_speed.py --quick    # 2 photos, gradcam, short curves (~2 min)

Every timing is the median of ``--repeats`` runs (``time.perf_counter``) divided by the number
of images; "batched" runs ``--batch-size`` perturbed images per forward pass, "unbatched" one.
Two threads (``torch.set_num_threads(2)``), as on the project's machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
sys.path.insert(0, str(ROOT))

from explain import compute_cams, load_model  # noqa: E402
from explain.evaluation import (  # noqa: E402
    boxes_to_masks,
    cascading_randomisation,
    confidence_change,
    deletion,
    energy_pointing_game,
    insertion,
    pointing_game,
    road,
)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peers(fractions: list[float]) -> dict[str, Callable[..., object]]:
    """pytorch-grad-cam's metrics that compute the same thing, by our metric name."""
    try:
        from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
        from pytorch_grad_cam.metrics.road import (
            ROADLeastRelevantFirstAverage,
            ROADMostRelevantFirstAverage,
        )
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    except ImportError:
        return {}
    # Theirs removes the pixels at or above percentile p: fraction q <-> p = 100 (1 - q).
    percentiles = [round(100 * (1 - q)) for q in fractions]

    def wrap(metric: object) -> Callable[..., object]:
        def run(model, x, maps, targets):
            wrapped = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
            return metric(x, maps, wrapped, model)

        return run

    return {
        "average_drop": wrap(CamMultImageConfidenceChange()),
        "road_morf": wrap(ROADMostRelevantFirstAverage(percentiles)),
        "road_lerf": wrap(ROADLeastRelevantFirstAverage(percentiles)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 images, gradcam, short curves")
    parser.add_argument("--images", type=int, default=None, help="photos to use (default 4)")
    parser.add_argument("--methods", default=None, help="default gradcam,gradcampp")
    parser.add_argument("--steps", type=int, default=None, help="deletion/insertion steps")
    parser.add_argument("--repeats", type=int, default=None, help="runs per timing (median)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    quick = args.quick
    n = args.images or (2 if quick else 4)
    methods = (args.methods or ("gradcam" if quick else "gradcam,gradcampp")).split(",")
    steps = args.steps or (5 if quick else 20)
    repeats = args.repeats or (1 if quick else 3)
    fractions = [0.2, 0.5, 0.8] if quick else [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    sanity_stages = ["fc", "layer4"] if quick else ["fc", "layer4", "layer3", "layer2"]

    torch.set_num_threads(2)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    handle = load_model("torchvision:resnet50", weights=None, device="cpu")
    photos = sorted(PHOTOS.glob("*.JPEG"))[:n]
    if len(photos) < n:
        print(f"need {n} photos in {PHOTOS}, found {len(photos)}", file=sys.stderr)
        return 1
    x = handle.preprocess(photos)
    targets = handle.predict(x).argmax(axis=1)
    handle.predict(x[:1])  # warm-up: first-call allocations are not part of any timing
    layer = handle.default_layer
    masks = boxes_to_masks((56, 56, 168, 168), (224, 224), n)  # a centred box, for timing only
    peer = peers(fractions)
    bs = args.batch_size

    metric_calls: dict[str, Callable[[np.ndarray, int], object]] = {
        "deletion": lambda m, b: deletion(handle, x, m, targets, steps=steps, batch_size=b),
        "insertion": lambda m, b: insertion(handle, x, m, targets, steps=steps, batch_size=b),
        "average_drop": lambda m, b: confidence_change(handle, x, m, targets, batch_size=b),
        "road_morf": lambda m, b: road(handle, x, m, targets, fractions=fractions, batch_size=b),
        "road_lerf": lambda m, b: road(
            handle, x, m, targets, order="lerf", fractions=fractions, batch_size=b
        ),
        "pointing_game": lambda m, b: (pointing_game(m, masks), energy_pointing_game(m, masks)),
    }
    print(
        f"ResNet-50 (random weights), {n} photo(s) at 224x224, layer {layer}, CPU x2 threads; "
        f"deletion/insertion {steps} steps, ROAD {len(fractions)} fractions, batch {bs}, "
        f"median of {repeats}."
    )
    rows = []
    for method in methods:
        result = {}

        def cams(method: str = method, result: dict = result) -> None:
            result["r"] = compute_cams(handle, x, [layer], method, targets.tolist())

        t = median_time(cams, repeats)
        maps = result["r"].maps[layer]
        rows.append({"metric": "(maps)", "method": method, "batched": t / n})
        for metric, call in metric_calls.items():
            row = {"metric": metric, "method": method}
            row["batched"] = median_time(lambda c=call, m=maps: c(m, bs), repeats) / n
            if metric != "pointing_game":
                row["unbatched"] = median_time(lambda c=call, m=maps: c(m, 1), repeats) / n
            if metric in peer:
                row["peer"] = (
                    median_time(
                        lambda p=peer[metric], m=maps: p(handle.model, x, m, targets), repeats
                    )
                    / n
                )
            rows.append(row)
        sanity = {"metric": f"sanity ({len(sanity_stages)} stages)", "method": method}
        for key, cam_batch in (("batched", 16), ("unbatched", 1)):

            def cascade(cb: int = cam_batch, method: str = method, result: dict = result) -> None:
                cascading_randomisation(
                    handle, x, [method], [layer], targets, stages=sanity_stages,
                    batch_size=cb, original={method: result["r"]},
                )  # fmt: skip

            sanity[key] = median_time(cascade, repeats) / n
        rows.append(sanity)

    header = (
        f"{'metric':<22}{'method':<11}{'batched s/img':>14}{'unbatched':>11}{'unb./bat.':>10}"
        f"{'pytorch-grad-cam':>18}{'pgc/ours':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        b, u, p = row.get("batched"), row.get("unbatched"), row.get("peer")
        cells = [
            f"{row['metric']:<22}{row['method']:<11}",
            f"{b:>14.4f}",
            f"{u:>11.4f}" if u is not None else f"{'-':>11}",
            f"{u / b:>10.2f}" if u is not None else f"{'-':>10}",
            f"{p:>18.4f}" if p is not None else f"{'-':>18}",
            f"{p / b:>10.2f}" if p is not None else f"{'-':>10}",
        ]
        print("".join(cells))
    print(
        "pytorch-grad-cam: ROAD*Average over the same fractions (noisy linear imputation, "
        "lil_matrix set-up), CamMultImageConfidenceChange (= our Average Drop pass, which also "
        "gives Increase in Confidence); both run all images in one forward pass per fraction."
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure CAM methods on real ImageNet validation photos with their official object boxes.

Every figure sits next to the centre (Gaussian) and random baselines, with the paired test's
p-value, on all images and on the objects smaller than half of the image; the localisation
protocol is Grad-CAM's (threshold 15 % of the map's maximum, box around the largest region,
IoU >= 0.5; top-1 localisation error). Works with any model spec::

    python scripts/evaluate_imagenet_val.py --model builtin:efficientnet-lite0 --out runs/lite0

Writes everything :meth:`EvaluationResult.save` writes (``report.md`` holds the verdict
tables) and prints the report. Score-CAM perturbs every channel of the layer, one forward pass
each; ``--max-channels`` keeps the ones of highest variance (approximate) and
``--scorecam-check N`` measures how far that approximation moves the maps on N images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr
from tqdm import tqdm

from explain import compute_cams, load_model
from explain.evaluation import AnnotatedDataset, evaluate, load_annotated

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared" / "data" / "imagenet-val"
METHODS = "gradcam,gradcampp,layercam,scorecam,eigencam"
METRICS = (
    "pointing_game,energy_pointing_game,box_iou,box_accuracy,localisation_error,deletion,insertion"
)


def _progress():
    bar = tqdm(total=0, file=sys.stderr, unit="u")

    def update(done: int, total: int, message: str) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.set_description_str(message[:48], refresh=False)
        bar.refresh()

    return bar, update


def scorecam_check(handle, dataset, layer: str, n: int, max_channels: int) -> dict:
    """Pearson correlation between Score-CAM with all channels and with ``max_channels``,
    per image, on the first ``n`` images; and the seconds each took."""
    data = load_annotated(handle, dataset, max_images=n, seed=1)
    targets = data.labels.tolist()
    start = time.perf_counter()
    full = compute_cams(handle, data.x, layer, "scorecam", targets).maps[layer]
    t_full = time.perf_counter() - start
    start = time.perf_counter()
    part = compute_cams(handle, data.x, layer, "scorecam", targets, max_channels=max_channels).maps[
        layer
    ]
    t_part = time.perf_counter() - start
    r = [pearsonr(a.ravel(), b.ravel()).statistic for a, b in zip(full, part, strict=True)]
    peak_same = [
        np.unravel_index(a.argmax(), a.shape) == np.unravel_index(b.argmax(), b.shape)
        for a, b in zip(full, part, strict=True)
    ]
    return {
        "images": len(data),
        "max_channels": max_channels,
        "pearson_median": float(np.median(r)),
        "pearson_min": float(np.min(r)),
        "same_peak_share": float(np.mean(peak_same)),
        "seconds_per_image_all_channels": t_full / len(data),
        "seconds_per_image_max_channels": t_part / len(data),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:efficientnet-lite0")
    parser.add_argument("--data", type=Path, default=VAL / "images")
    parser.add_argument("--boxes", type=Path, default=VAL / "boxes.csv")
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--metrics", default=METRICS)
    parser.add_argument("--layer", default=None, help="default: the model's default layer")
    parser.add_argument("--targets", default="label", choices=["label", "predicted"])
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20, help="deletion/insertion intervals")
    parser.add_argument("--max-channels", type=int, default=None, help="Score-CAM channels")
    parser.add_argument("--scorecam-check", type=int, default=0, metavar="N")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    handle = load_model(args.model, device="cpu")
    layer = args.layer or handle.default_layer
    dataset = AnnotatedDataset(args.data, args.boxes)
    bar, update = _progress()
    start = time.perf_counter()
    try:
        result = evaluate(
            handle, dataset, args.methods.split(","), [layer], args.metrics.split(","),
            targets=args.targets, max_images=args.max_images, steps=args.steps,
            max_channels=args.max_channels, batch_size=args.batch_size, progress=update,
        )  # fmt: skip
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    paths = result.save(args.out)
    extra = {
        "command": " ".join(sys.argv),
        "seconds": round(seconds, 1),
        "top1": float(result.images["correct"].mean()),
    }
    if args.scorecam_check and args.max_channels:
        extra["scorecam_check"] = scorecam_check(
            handle, dataset, layer, args.scorecam_check, args.max_channels
        )
    (args.out / "run.json").write_text(json.dumps(extra, indent=2), encoding="utf-8")
    print(paths["report"].read_text(encoding="utf-8"))
    print(json.dumps(extra, indent=2))
    print(json.dumps({k: round(v, 1) for k, v in result.timings.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

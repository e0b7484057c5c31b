"""Bias finder: does a model look at a region it should not rely on ("Clever Hans")?

The measure is the share of the CAM's mass that falls on a region (a planted marker, a
watermark, a caption, a hospital tag), set against the region's share of the image area and,
where object masks exist, against the share on the object itself. A counterfactual check backs
it up: the region is filled from its surroundings (noisy linear imputation, as in ROAD) and we
count how often the model's answer changes.

:func:`find_bias` works for any region given as boxes or masks; :func:`shapes_bias_study` runs
the built-in demonstration, ``builtin:shapes-biased`` against ``builtin:shapes`` with and
without the corner marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..builtin import HELD_OUT_SEED
from ..cams import compute_cams
from ..errors import ExplainError
from ..models import ModelHandle
from ..progress import Progress, notify
from .faithfulness import noisy_linear_impute
from .localisation import boxes_to_masks, energy_pointing_game

#: A region whose share of the map's mass is at least this many times its share of the image's
#: area is one the model relies on (when it also beats the object, where that is known).
MIN_DENSITY = 3.0


@dataclass
class BiasReport:
    """What :func:`find_bias` found.

    Attributes:
        share_region: mean share of the map's mass on the region, in [0, 1].
        share_object: mean share on the object (None without object masks).
        verdict: one sentence in plain words.
        relies_on_region: the decision the verdict states.
        region_area, object_area: mean share of the image area.
        density_region, density_object: share of mass / share of area (1 = no preference).
        flip_rate: share of images whose top-1 class changes when the region is filled from its
            surroundings (None when not measured).
        details: a longer explanation with the numbers.
        per_image: one row per image: share_region, share_object, target, prediction,
            prediction_without_region.
        method, layer: the maps used.
    """

    share_region: float
    share_object: float | None
    verdict: str
    relies_on_region: bool
    region_area: float
    object_area: float | None
    density_region: float
    density_object: float | None
    flip_rate: float | None
    details: str
    per_image: pd.DataFrame = field(repr=False)
    method: str = "gradcam"
    layer: str = ""

    def _repr_html_(self) -> str:
        from ..display import bias_view

        return bias_view(self).html()


def as_region_masks(regions: Any, n: int, size: tuple[int, int]) -> np.ndarray:
    """Boxes or masks -> ``(N, H, W)`` bool.

    Args:
        regions: one box ``(x0, y0, x1, y1)`` (pixels, exclusive end) for every image, a list
            of boxes (one per image), one ``(H, W)`` mask for every image, or ``(N, H, W)``
            masks.
        n: number of images.
        size: ``(H, W)`` of the model input.
    """
    if isinstance(regions, tuple | list) and regions:

        def is_box(item: Any) -> bool:
            return (
                isinstance(item, tuple | list)
                and len(item) == 4
                and all(isinstance(v, int | np.integer) for v in item)
            )

        if is_box(regions):
            return boxes_to_masks(tuple(int(v) for v in regions), size, n)
        if all(item is None or is_box(item) for item in regions):
            if len(regions) != n:
                raise ExplainError(f"{len(regions)} boxes were given for {n} images.")
            return boxes_to_masks(list(regions), size)
    arr = np.asarray(regions).astype(bool)
    if arr.shape == tuple(size):
        return np.broadcast_to(arr, (n, *size)).copy()
    if arr.shape == (n, *size):
        return arr
    raise ExplainError(
        f"A region of shape {arr.shape} does not fit {n} images of {size[0]}x{size[1]}.",
        hint="give a box (x0, y0, x1, y1) in model-input pixels, a list of boxes, or masks.",
    )


def _verdict(
    density_region: float,
    density_object: float | None,
    region_name: str,
    object_name: str,
    min_density: float,
) -> tuple[bool, str]:
    relies = density_region >= min_density and (
        density_object is None or density_region > density_object
    )
    if relies:
        tail = f", not on {object_name}." if density_object is not None else "."
        return True, f"This model relies on {region_name}{tail}"
    if density_object is not None and density_object >= max(min_density / 2, density_region):
        return False, f"This model looks at {object_name}, not at {region_name}."
    if density_object is not None:
        return False, (
            f"This model does not rely on {region_name}, but it does not clearly look at "
            f"{object_name} either."
        )
    return False, f"This model does not rely on {region_name}."


def fill_region(
    x: torch.Tensor, regions: np.ndarray, noise: float = 0.0, seed: int = 0
) -> torch.Tensor:
    """Each image with its region filled from the surrounding pixels (noisy linear imputation).

    Args:
        x: ``(N, 3, H, W)`` model input.
        regions: ``(N, H, W)`` bool.
        noise: imputation noise (0: the plain linear fill); ``seed`` seeds it.

    Returns:
        ``(N, 3, H, W)`` float32 tensor.
    """
    out = np.stack(
        [
            noisy_linear_impute(x[i], regions[i], noise, np.random.default_rng([seed, i]))
            for i in range(len(x))
        ]
    )
    return torch.from_numpy(out)


def find_bias(
    handle: ModelHandle,
    images: Any,
    regions: Any,
    object_masks: np.ndarray | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    *,
    targets: Sequence[int] | None = None,
    region_name: str = "the marked region",
    object_name: str = "the object",
    counterfactual: bool = True,
    min_density: float = MIN_DENSITY,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> BiasReport:
    """How much of the explanation falls on a region the model should not need.

    ``share = sum(map * region) / sum(map)`` per image, averaged; its *density* is the share
    divided by the region's share of the image area (1 for a map that ignores where the region
    is). The model relies on the region when the density is at least ``min_density`` and, with
    object masks, higher than the object's density.

    Args:
        handle: the model.
        images: ``(N, 3, H, W)`` model input, or images (paths, PIL, ``(N, H, W, 3)`` uint8).
        regions: see :func:`as_region_masks` (model-input pixels).
        object_masks: ``(N, H, W)`` bool, where the real evidence is (optional).
        method: CAM method.
        layer: layer (default ``handle.default_layer``).
        targets: classes to explain (default the top-1 class).
        region_name, object_name: how the verdict names them ("the corner marker").
        counterfactual: also fill the region from its surroundings (linear imputation, no
            noise) and count how often the top-1 class changes.
        min_density: decision threshold, see above.
        batch_size: images per CAM pass.
        progress: ``progress(done, total, message)`` of the CAM pass.

    Returns:
        :class:`BiasReport`.
    """
    x = images.float() if isinstance(images, torch.Tensor) else handle.preprocess(images)
    n, size = len(x), (int(x.shape[-2]), int(x.shape[-1]))
    region = as_region_masks(regions, n, size)
    region_area = float(region.mean())
    if region_area == 0:
        raise ExplainError("The region is empty.", hint="give a box or mask with some pixels.")
    layer = layer or handle.default_layer
    res = compute_cams(
        handle, x, [layer], method, targets, batch_size=batch_size, progress=progress
    )
    maps = res.maps[layer]
    share_r = energy_pointing_game(maps, region)
    mean_r = float(np.nanmean(share_r)) if np.isfinite(share_r).any() else 0.0
    density_r = mean_r / region_area
    share_o = mean_o = object_area = density_o = None
    if object_masks is not None:
        obj = np.asarray(object_masks, dtype=bool)
        share_o = energy_pointing_game(maps, obj)
        object_area = float(obj.mean())
        mean_o = float(np.nanmean(share_o)) if np.isfinite(share_o).any() else 0.0
        density_o = mean_o / object_area if object_area > 0 else 0.0
    prediction = res.probs.argmax(axis=1)
    flips = None
    without = np.full(n, -1)
    if counterfactual:
        without = handle.predict(fill_region(x, region)).argmax(axis=1)
        flips = float((without != prediction).mean())
    relies, verdict = _verdict(density_r, density_o, region_name, object_name, min_density)
    details = (
        f"{region_name[:1].upper() + region_name[1:]} covers {region_area:.1%} of the image and "
        f"holds {mean_r:.1%} of the {method} map's mass at {layer} ({density_r:.1f}x its share "
        "by area)"
    )
    if mean_o is not None:
        details += (
            f"; {object_name} covers {object_area:.1%} and holds {mean_o:.1%} ({density_o:.1f}x)"
        )
    details += "."
    if flips is not None:
        details += (
            f" Filling {region_name} from its surroundings changes the model's answer on "
            f"{flips:.0%} of the {n} images."
        )
    per_image = pd.DataFrame(
        {
            "image": np.arange(n),
            "share_region": share_r,
            "share_object": share_o if share_o is not None else np.nan,
            "target": res.targets,
            "prediction": prediction,
            "prediction_without_region": without,
        }
    )
    return BiasReport(
        mean_r,
        mean_o,
        verdict,
        relies,
        region_area,
        object_area,
        density_r,
        density_o,
        flips,
        details,
        per_image,
        method,
        layer,
    )


@dataclass
class BiasStudy:
    """The built-in demonstration: models x marker conditions.

    Attributes:
        table: one row per model and marker condition: model, marker, n, accuracy,
            share_marker, share_shape, density_marker, density_shape, flip_rate, relies.
        reports: ``(model, marker) -> BiasReport``.
        verdicts: ``model -> one sentence`` (from the images with markers, with the accuracy
            change when the marker is absent).
    """

    table: pd.DataFrame
    reports: dict[tuple[str, str], BiasReport]
    verdicts: dict[str, str]

    def _repr_html_(self) -> str:
        from ..display import bias_view

        return bias_view(self).html()


def shapes_bias_study(
    models: Sequence[str | ModelHandle] = ("builtin:shapes-biased", "builtin:shapes"),
    n: int = 60,
    seed: int = HELD_OUT_SEED,
    markers: Sequence[str] = ("class", "none"),
    method: str = "gradcam",
    layer: str | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> BiasStudy:
    """Does each built-in model rely on the corner marker? Share of CAM mass on the marker box
    versus on the shape, over shapes test images with the class-coloured marker (``"class"``)
    and without it (``"none"``; the box is then the empty corner where the marker would be).

    Args:
        models: specs or handles of shapes models.
        n: images per condition.
        seed: data seed (default :data:`~explain.builtin.HELD_OUT_SEED`, the held-out split
            the built-ins were measured on).
        markers: marker modes of :func:`explain.builtin.shapes.make_dataset`.
        method, layer: the maps.

    Returns:
        :class:`BiasStudy`.
    """
    from ..builtin.shapes import make_dataset, marker_box_for
    from ..models import load_model

    rows, reports, verdicts = [], {}, {}
    total, done = len(models) * len(markers), 0
    for spec in models:
        handle = spec if isinstance(spec, ModelHandle) else load_model(spec, device="cpu")
        name = handle.spec if isinstance(spec, ModelHandle) else str(spec)
        accuracy = {}
        for marker in markers:
            data = make_dataset(n, seed=seed, size=handle.input_size[0], marker=marker)
            x = handle.preprocess(list(data.images))
            report = find_bias(
                handle,
                x,
                marker_box_for(handle.input_size[0]),
                data.masks,
                method,
                layer,
                region_name="the corner marker",
                object_name="the shape",
                batch_size=batch_size,
            )
            reports[(name, marker)] = report
            accuracy[marker] = float((report.per_image["prediction"] == data.labels).mean())
            rows.append(
                {
                    "model": name,
                    "marker": marker,
                    "n": n,
                    "accuracy": accuracy[marker],
                    "share_marker": report.share_region,
                    "share_shape": report.share_object,
                    "density_marker": report.density_region,
                    "density_shape": report.density_object,
                    "flip_rate": report.flip_rate,
                    "relies": report.relies_on_region,
                }
            )
            done += 1
            notify(progress, done, total, f"{name}, marker {marker}")
        with_marker = next((m for m in markers if m != "none"), markers[0])
        verdict = reports[(name, with_marker)].verdict
        if "none" in accuracy and with_marker != "none":
            verdict += (
                f" Accuracy: {accuracy[with_marker]:.0%} with the marker, {accuracy['none']:.0%} "
                "without it."
            )
        verdicts[name] = verdict
    return BiasStudy(pd.DataFrame(rows), reports, verdicts)

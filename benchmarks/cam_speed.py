"""How fast our CAMs are next to the peers, side by side in one run (issue 3).

Every case runs ours and each peer on the same random-init torchvision model, the same input
(a photo from the shared data when there is one, else seeded noise), the same class, on the CPU
with ``torch.set_num_threads(2)``, batch 1. Times are medians over ``--repeats`` calls after one
warm-up call, the implementations taking turns (so a change in the machine's load hits them all
alike); the slow peers (Score-CAM, Ablation-CAM) run once, without a warm-up. Each peer's map is compared with
ours (Pearson correlation at input resolution), to show that both compute the same thing.

Cases (``--only``): ``gradcam`` (resnet50 ``layer4``, with a bare forward pass for scale),
``blocks`` (resnet50, all 16 bottleneck blocks), ``topk`` (top-5 classes at ``layer4``),
``scorecam`` and ``ablationcam`` (resnet18 ``layer4``), ``shapleycam``, ``finercam`` and
``kpcacam`` (resnet50 ``layer4``, against pytorch-grad-cam), ``legrad`` (vit_b_16, all 12
blocks, against torchcam; our attention rollout and Chefer relevancy timed alongside, for
scale: no installed peer has them), ``clip`` (Grad-CAM for a text prompt on a random-init CLIP
ViT-B/32, against pytorch-grad-cam with the token reshape of its CLIP example).

Run from the repository root::

    python -m benchmarks.cam_speed            # 224x224, 5 repeats (a few minutes)
    python -m benchmarks.cam_speed --quick    # 112x112, 3 repeats (under a minute or two)
    python -m benchmarks.cam_speed --only gradcam,topk --repeats 9 --json out.json

The peers (pytorch-grad-cam, torchcam, Captum) are development requirements only: they are
imported here, inside the cases, never by the library.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python benchmarks/cam_speed.py``
    sys.path.insert(0, str(ROOT))

from explain import TopK, compute_cams, load_model  # noqa: E402
from explain.preprocessing import Preprocess  # noqa: E402

CASES = (
    "gradcam",
    "blocks",
    "topk",
    "scorecam",
    "ablationcam",
    "shapleycam",
    "finercam",
    "kpcacam",
    "legrad",
    "clip",
)
#: The 16 bottleneck blocks of resnet50.
BLOCKS = [f"layer{i}.{j}" for i, n in zip(range(1, 5), (3, 4, 6, 3), strict=True) for j in range(n)]
#: Perturbed copies per forward pass, the same for every implementation.
PERTURBATION_BATCH = 64


@dataclass
class Row:
    """One timed implementation of one case."""

    case: str
    impl: str
    seconds: float  # median
    pearson: float | None = None  # with our map (the lowest over layers / classes)
    note: str = ""
    ours: bool = False
    best: float = 0.0  # the fastest call: load on a shared machine only ever adds time


@dataclass
class Setup:
    """What every case shares."""

    size: int
    repeats: int
    photo: Path | None


# -- helpers ------------------------------------------------------------------------------------
def as_map(cam: Any, size: int) -> np.ndarray:
    """Any ``(h, w)`` map (tensor or array) -> ``(size, size)`` float64, upsampled
    bilinearly when needed, ReLU, min-max scaled."""
    t = torch.as_tensor(np.asarray(cam.detach().cpu() if torch.is_tensor(cam) else cam))
    t = t.double().reshape(1, 1, *t.shape[-2:])
    if t.shape[-1] != size or t.shape[-2] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    m = torch.relu(t[0, 0]).numpy()
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def lowest_pearson(ours: list[np.ndarray], theirs: list[Any], size: int) -> float:
    return min(pearson(as_map(a, size), as_map(b, size)) for a, b in zip(ours, theirs, strict=True))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hide the peers' own progress bars and prints."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


def make_model(arch: str, setup: Setup, **kwargs: Any) -> tuple[Any, torch.Tensor, int]:
    """A random-init torchvision model behind a handle, the input and its top-1 class."""
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None, **kwargs).eval()
    handle = load_model(
        model,
        weights=None,
        device="cpu",
        labels=[str(i) for i in range(1000)],
        preprocess=Preprocess(input_size=(setup.size, setup.size)),
        name=f"{arch} (random init)",
    )
    if setup.photo is not None:
        x = handle.preprocess([setup.photo])
    else:
        x = torch.randn(1, 3, setup.size, setup.size, generator=torch.Generator().manual_seed(0))
    return handle, x, int(handle.predict(x).argmax())


def find_photo() -> Path | None:
    shared = Path(os.environ.get("GCE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    photos = sorted((shared / "photos").glob("*.JPEG"))
    return photos[0] if photos else None


# -- running a case ------------------------------------------------------------------------------
@dataclass
class Impl:
    """One implementation of a case: ``fn()`` sets up its own hooks, computes, removes them,
    and returns its maps (one per layer or class) for the comparison with ours."""

    name: str
    fn: Callable[[], list[Any]]
    repeats: int
    warmup: int = 1
    note: str = ""
    ours: bool = False
    #: ours' maps -> what this implementation's maps are comparable with (default: the same).
    reference: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None
    #: False for a row timed for scale only (another method): no Pearson with ours.
    compare: bool = True


def run_case(case: str, impls: list[Impl], size: int) -> list[Row]:
    """Warm each implementation up, then time them in turns (round-robin), so that a change in
    the machine's load during the run affects all of them alike; medians per implementation.
    The order within each turn is shuffled (seeded: a rerun takes the same orders). A call runs
    slower right after a heavy one (the one-second Captum loop, say); a fixed order would hand
    that penalty to the same implementation every turn."""
    results: dict[str, Any] = {}
    times: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for impl in impls:
        for _ in range(impl.warmup):
            results[impl.name] = impl.fn()
    order = random.Random(0)
    for turn in range(max(impl.repeats for impl in impls)):
        for impl in order.sample(impls, len(impls)):
            if turn < impl.repeats:
                start = time.perf_counter()
                results[impl.name] = impl.fn()
                times[impl.name].append(time.perf_counter() - start)
    ours = next(impl for impl in impls if impl.ours)
    ours_maps = [np.asarray(m) for m in results[ours.name]]
    rows = []
    for impl in impls:
        r = None
        if not impl.ours and impl.compare and results[impl.name] is not None:
            reference = impl.reference(ours_maps) if impl.reference else ours_maps
            r = lowest_pearson(reference, results[impl.name], size)
        t = times[impl.name]
        rows.append(Row(case, impl.name, statistics.median(t), r, impl.note, impl.ours, min(t)))
    return rows


def pgc_call(
    cls: Any, model: Any, layers: list[Any], x: torch.Tensor, classes: list[int], **kw: Any
) -> list[np.ndarray]:
    """A pytorch-grad-cam object used for ``classes`` (one call each) then released."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with cls(model=model, target_layers=layers, **kw) as cam, quiet():
        return [cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0] for c in classes]


# -- cases --------------------------------------------------------------------------------------
def case_gradcam(setup: Setup) -> list[Row]:
    """Grad-CAM, resnet50 ``layer4``: ours, the three peers and a bare forward pass."""
    from captum.attr import LayerGradCam
    from pytorch_grad_cam import GradCAM
    from torchcam.methods import GradCAM as TorchcamGradCAM

    handle, x, c = make_model("resnet50", setup)
    model, n = handle.model, setup.repeats

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def torchcam() -> list[torch.Tensor]:
        with TorchcamGradCAM(model, "layer4") as extractor, torch.enable_grad():
            return [extractor(c, model(x))[0][0]]

    def captum() -> list[torch.Tensor]:
        lgc = LayerGradCam(model, model.layer4)
        return [lgc.attribute(x, target=c, relu_attributions=True)[0, 0]]

    impls = [
        Impl(
            "ours (compute_cams)",
            lambda: [compute_cams(handle, x, "layer4", targets=c).maps["layer4"][0]],
            n,
            ours=True,
        ),
        Impl(
            "pytorch-grad-cam GradCAM", lambda: pgc_call(GradCAM, model, [model.layer4], x, [c]), n
        ),
        Impl("torchcam GradCAM", torchcam, n),
        Impl("Captum LayerGradCam", captum, n),
        Impl("bare forward pass (no CAM)", lambda: forward(), n, note="for scale"),
    ]
    return run_case("Grad-CAM resnet50 layer4", impls, setup.size)


def case_blocks(setup: Setup) -> list[Row]:
    """Grad-CAM at the 16 bottleneck blocks of resnet50."""
    from captum.attr import LayerGradCam
    from pytorch_grad_cam import GradCAM
    from torchcam.methods import GradCAM as TorchcamGradCAM

    handle, x, c = make_model("resnet50", setup)
    model, n, s = handle.model, setup.repeats, setup.size
    modules = dict(model.named_modules())
    blocks = [modules[layer] for layer in BLOCKS]

    def ours() -> list[np.ndarray]:
        res = compute_cams(handle, x, BLOCKS, targets=c)
        return [res.maps[layer][0] for layer in BLOCKS]

    def pgc_per_layer() -> list[np.ndarray]:
        return [pgc_call(GradCAM, model, [block], x, [c])[0] for block in blocks]

    def mean_of(maps: list[np.ndarray]) -> list[np.ndarray]:
        return [np.mean([as_map(m, s) for m in maps], axis=0)]

    def torchcam() -> list[torch.Tensor]:
        with TorchcamGradCAM(model, BLOCKS) as extractor, torch.enable_grad():
            return [m[0] for m in extractor(c, model(x))]

    def captum_loop() -> list[torch.Tensor]:
        return [
            LayerGradCam(model, block).attribute(x, target=c, relu_attributions=True)[0, 0]
            for block in blocks
        ]

    impls = [
        Impl("ours (one call, 16 layers)", ours, n, ours=True),
        Impl("pytorch-grad-cam, one object per layer", pgc_per_layer, n),
        Impl(
            "pytorch-grad-cam, one object, 16 layers",
            lambda: pgc_call(GradCAM, model, blocks, x, [c]),
            n,
            note="returns only the mean map; vs our mean",
            reference=mean_of,
        ),
        Impl("torchcam, one extractor, 16 layers", torchcam, n),
        Impl("Captum LayerGradCam, loop over layers", captum_loop, n),
    ]
    return run_case("Grad-CAM, 16 blocks of resnet50 (lowest Pearson of 16)", impls, s)


def case_topk(setup: Setup) -> list[Row]:
    """Grad-CAM maps of the top-5 classes of one image, resnet50 ``layer4``."""
    from captum.attr import LayerGradCam
    from pytorch_grad_cam import GradCAM
    from torchcam.methods import GradCAM as TorchcamGradCAM

    handle, x, _ = make_model("resnet50", setup)
    model, n = handle.model, setup.repeats
    top5 = [int(i) for i in np.argsort(-handle.predict(x)[0])[:5]]

    def ours() -> list[np.ndarray]:
        res = compute_cams(handle, x, "layer4", targets=TopK(5))
        assert res.targets[0].tolist() == top5
        return list(res.maps["layer4"][0])

    def torchcam() -> list[torch.Tensor]:
        with TorchcamGradCAM(model, "layer4") as extractor, torch.enable_grad():
            scores = model(x)
            return [extractor(k, scores, retain_graph=j < 4)[0][0] for j, k in enumerate(top5)]

    def captum() -> list[torch.Tensor]:
        lgc = LayerGradCam(model, model.layer4)
        return [lgc.attribute(x, target=k, relu_attributions=True)[0, 0] for k in top5]

    impls = [
        Impl("ours (TopK(5), batched gradients)", ours, n, ours=True),
        Impl(
            "pytorch-grad-cam GradCAM, 5 calls",
            lambda: pgc_call(GradCAM, model, [model.layer4], x, top5),
            n,
        ),
        Impl("torchcam GradCAM, 5 calls", torchcam, n, note="one forward, retain_graph"),
        Impl("Captum LayerGradCam, 5 calls", captum, n),
    ]
    return run_case(
        "Grad-CAM, top-5 classes, resnet50 layer4 (lowest Pearson of 5)", impls, setup.size
    )


def case_scorecam(setup: Setup) -> list[Row]:
    """Score-CAM, resnet18 ``layer4``; the peers run once (they take seconds)."""
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import ScoreCAM as TorchcamScoreCAM

    handle, x, c = make_model("resnet18", setup)
    model = handle.model

    def ours() -> list[np.ndarray]:
        res = compute_cams(
            handle, x, "layer4", "scorecam", c, perturbation_batch=PERTURBATION_BATCH
        )
        return [res.maps["layer4"][0]]

    def pgc() -> list[np.ndarray]:
        with ScoreCAM(model=model, target_layers=[model.layer4]) as cam, quiet():
            cam.batch_size = PERTURBATION_BATCH  # its documented knob (default 16)
            return [cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0]]

    def torchcam() -> list[torch.Tensor]:
        with (
            TorchcamScoreCAM(model, "layer4", batch_size=PERTURBATION_BATCH) as extractor,
            torch.no_grad(),
        ):
            return [extractor(c, model(x))[0][0]]

    impls = [
        Impl("ours (compute_cams)", ours, setup.repeats, ours=True),
        Impl("pytorch-grad-cam ScoreCAM", pgc, 1, warmup=0, note="1 run"),
        Impl("torchcam ScoreCAM", torchcam, 1, warmup=0, note="1 run"),
    ]
    return run_case("Score-CAM resnet18 layer4", impls, setup.size)


def case_ablationcam(setup: Setup) -> list[Row]:
    """Ablation-CAM, resnet18 ``layer4``; the peer runs once."""
    from pytorch_grad_cam import AblationCAM

    handle, x, c = make_model("resnet18", setup)
    model = handle.model
    notes: list[str] = []

    def ours() -> list[np.ndarray]:
        res = compute_cams(
            handle, x, "layer4", "ablationcam", c, perturbation_batch=PERTURBATION_BATCH
        )
        notes[:] = res.notes
        return [res.maps["layer4"][0]]

    # layer4[-1], whose output is layer4's: the peer swaps the module for its ablation layer.
    impls = [
        Impl("ours (compute_cams)", ours, setup.repeats, ours=True),
        Impl(
            "pytorch-grad-cam AblationCAM",
            lambda: pgc_call(
                AblationCAM, model, [model.layer4[-1]], x, [c], batch_size=PERTURBATION_BATCH
            ),
            1,
            warmup=0,
            note="1 run",
        ),
    ]
    rows = run_case("Ablation-CAM resnet18 layer4", impls, setup.size)
    rows[0].note = " ".join(notes)
    return rows


def pgc_case(
    setup: Setup,
    title: str,
    method: str,
    peer: Any,
    ours_target: Callable[[int], Any],
    peer_targets: Callable[[int], Any],
) -> list[Row]:
    """Ours ``method`` next to pytorch-grad-cam's ``peer`` class, resnet50 ``layer4``; the
    targets of each are made from the image's top-1 class."""
    handle, x, c = make_model("resnet50", setup)
    model, n = handle.model, setup.repeats

    def ours() -> list[np.ndarray]:
        return [compute_cams(handle, x, "layer4", method, ours_target(c)).maps["layer4"][0]]

    def pgc() -> list[np.ndarray]:
        with peer(model=model, target_layers=[model.layer4]) as cam, quiet():
            return [cam(input_tensor=x, targets=peer_targets(c))[0]]

    impls = [
        Impl("ours (compute_cams)", ours, n, ours=True),
        Impl(f"pytorch-grad-cam {peer.__name__}", pgc, n),
    ]
    return run_case(title, impls, setup.size)


def case_shapleycam(setup: Setup) -> list[Row]:
    """Shapley-CAM with the paper's ReST score (so the second-order term is not zero)."""
    from pytorch_grad_cam import ShapleyCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST

    def rest(c: int) -> Callable[[torch.Tensor], torch.Tensor]:  # z_c - CE(z, c)
        return lambda z: 2 * z[:, c] - z.logsumexp(dim=1)

    title = "Shapley-CAM (ReST score) resnet50 layer4"
    return pgc_case(
        setup, title, "shapleycam", ShapleyCAM, rest, lambda c: [ClassifierOutputReST(c)]
    )


def case_finercam(setup: Setup) -> list[Row]:
    """Finer-CAM: the top-1 class against its 3 classes of nearest logit."""
    from pytorch_grad_cam import FinerCAM

    title = "Finer-CAM resnet50 layer4"
    return pgc_case(setup, title, "finercam", FinerCAM, lambda c: c, lambda c: None)


def case_kpcacam(setup: Setup) -> list[Row]:
    """KPCA-CAM (sigmoid kernel; class-agnostic)."""
    from pytorch_grad_cam import KPCA_CAM

    title = "KPCA-CAM resnet50 layer4"
    return pgc_case(setup, title, "kpcacam", KPCA_CAM, lambda c: None, lambda c: None)


def case_legrad(setup: Setup) -> list[Row]:
    """LeGrad over the 12 blocks of vit_b_16 (random init, its head given random weights)."""
    from torchcam.methods import LeGrad as TorchcamLeGrad

    handle, x, _ = make_model("vit_b_16", setup, image_size=setup.size)
    model, n = handle.model, setup.repeats
    with torch.no_grad():  # torchvision zero-initialises the head: every class would tie
        model.heads.head.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    c = int(handle.predict(x).argmax())
    last = "encoder.layers.encoder_layer_11"  # the map uses every block up to this one

    def ours(method: str) -> Callable[[], list[np.ndarray]]:
        return lambda: [compute_cams(handle, x, last, method, c).maps[last][0]]

    def torchcam() -> list[torch.Tensor]:
        blocks = list(model.encoder.layers)
        with TorchcamLeGrad(model, blocks) as extractor, torch.enable_grad():
            return [extractor(c, model(x))[0][0]]

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    impls = [
        Impl("ours LeGrad (compute_cams)", ours("legrad"), n, ours=True),
        Impl("torchcam LeGrad, 12 blocks", torchcam, n),
        Impl(
            "ours attention rollout", ours("rollout"), n, note="no peer; for scale", compare=False
        ),
        Impl("ours Chefer relevancy", ours("chefer"), n, note="no peer; for scale", compare=False),
        Impl("bare forward pass (no map)", forward, n, note="for scale", compare=False),
    ]
    return run_case("LeGrad vit_b_16, 12 blocks", impls, setup.size)


def case_clip(setup: Setup) -> list[Row]:
    """Grad-CAM for a text prompt on a CLIP ViT-B/32 (random init, ``CLIPConfig``'s sizes):
    ours, and pytorch-grad-cam ``GradCAM`` on the same zero-shot classifier (logits over 5
    prompts) with the reshape transform of its CLIP / ViT examples (class token dropped)."""
    from pytorch_grad_cam import GradCAM
    from transformers import CLIPConfig, CLIPModel

    from explain.models.clip import CLIP_MEAN, CLIP_STD, HFPromptClassifier, image_children
    from explain.models.prompts import PromptEncoder

    size = 32 * max(1, round(setup.size / 32))  # whole 32-pixel patches
    grid = size // 32
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(vision_config={"image_size": size})).eval()

    def encode(texts: list[str]) -> torch.Tensor:  # no tokenizer offline: seeded token ids
        ids = torch.randint(0, 49406, (len(texts), 16), generator=torch.Generator().manual_seed(0))
        ids[:, -1] = 49407  # the end-of-text token, where the text tower pools
        return clip.get_text_features(input_ids=ids).pooler_output

    prompts = [f"prompt {i}" for i in range(5)]
    model = HFPromptClassifier(clip, image_children(clip), PromptEncoder(encode, clip), prompts)
    handle = load_model(
        model,
        weights=None,
        device="cpu",
        labels=prompts,
        preprocess=Preprocess(input_size=(size, size), resize=size, mean=CLIP_MEAN, std=CLIP_STD),
        name="CLIP ViT-B/32 (random init)",
    )
    if setup.photo is not None:
        x = handle.preprocess([setup.photo])
    else:
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    c, n = int(handle.predict(x).argmax()), setup.repeats
    layer = "vision_model.encoder.layers.11.layer_norm1"

    def ours() -> list[np.ndarray]:
        return [compute_cams(handle, x, layer, "gradcam", c).maps[layer][0]]

    def tokens_to_grid(t: torch.Tensor) -> torch.Tensor:
        return t[:, 1:].reshape(t.shape[0], grid, grid, t.shape[2]).permute(0, 3, 1, 2)

    def pgc() -> list[np.ndarray]:
        target = [clip.vision_model.encoder.layers[11].layer_norm1]
        return pgc_call(GradCAM, handle.model, target, x, [c], reshape_transform=tokens_to_grid)

    impls = [
        Impl("ours (compute_cams)", ours, n, ours=True),
        Impl("pytorch-grad-cam GradCAM", pgc, n),
    ]
    return run_case(f"Grad-CAM for a prompt, CLIP ViT-B/32 {size}x{size}", impls, size)


RUNNERS: dict[str, Callable[[Setup], list[Row]]] = {
    "gradcam": case_gradcam,
    "blocks": case_blocks,
    "topk": case_topk,
    "scorecam": case_scorecam,
    "ablationcam": case_ablationcam,
    "shapleycam": case_shapleycam,
    "finercam": case_finercam,
    "kpcacam": case_kpcacam,
    "legrad": case_legrad,
    "clip": case_clip,
}


# -- report -------------------------------------------------------------------------------------
def environment(setup: Setup) -> dict[str, Any]:
    def ver(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "input": f"1x3x{setup.size}x{setup.size}",
        "image": setup.photo.name if setup.photo else "seeded noise",
        "repeats": setup.repeats,
        "pytorch-grad-cam": ver("grad-cam"),
        "torchcam": ver("torchcam"),
        "captum": ver("captum"),
    }


def _duration(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.1f} ms" if ms < 10_000 else f"{seconds:,.2f} s"


def format_table(rows: list[Row]) -> str:
    """Text table: median and fastest time, peer/ours ratios of both (above 1: ours is
    faster) and the Pearson correlation with our map."""
    width = max(len(r.impl) for r in rows) + 2
    head = (
        f"{'implementation':<{width}}{'median':>11}{'fastest':>11}{'peer/ours':>11}"
        f"{'(fastest)':>11}{'Pearson':>9}  note"
    )
    lines = []
    case = None
    ours = rows[0]
    for row in rows:
        if row.case != case:
            case = row.case
            ours = next(r for r in rows if r.case == case and r.ours)
            lines += ["", case, head, "-" * (len(head) + 10)]
        ratio = "" if row.ours else f"{row.seconds / ours.seconds:.2f}x"
        ratio_best = "" if row.ours else f"{row.best / ours.best:.2f}x"
        r = "" if row.pearson is None else f"{row.pearson:.4f}"
        lines.append(
            f"{row.impl:<{width}}{_duration(row.seconds):>11}{_duration(row.best):>11}"
            f"{ratio:>11}{ratio_best:>11}{r:>9}  {row.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="112x112 input and 3 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per fast case")
    parser.add_argument("--only", default=",".join(CASES), help=f"from {', '.join(CASES)}")
    parser.add_argument("--size", type=int, default=None, help="input side (224; --quick: 112)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")

    torch.set_num_threads(args.threads)
    setup = Setup(
        size=args.size or (112 if args.quick else 224),
        repeats=args.repeats or (3 if args.quick else 5),
        photo=find_photo(),
    )
    env = environment(setup)
    print("CAM speed, CPU: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print("time: median of calls taken in turns after one warm-up; peer/ours above 1: ours faster.")
    rows: list[Row] = []
    for case in chosen:
        start = time.perf_counter()
        new = RUNNERS[case](setup)
        rows += new
        print(format_table(new), flush=True)
        print(f"({case}: {time.perf_counter() - start:.0f} s in all)", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"environment": env, "rows": [asdict(r) for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Embeddings speed and memory, side by side in one run (CPU).

1. Extraction throughput of resnet50 (random weights, 224x224) with 4 layers pooled in one pass,
   against a plain forward pass over the same images, one pass per layer, and torchvision's
   ``create_feature_extractor`` (full maps returned, pooled afterwards), and
   ``collect_activations`` end to end from the JPEG files (decoding and resizing included).
   Target: one pass with 4 layers >= 0.85x the plain forward's throughput.
2. Projection time and peak memory (RSS above the baseline, each run in a fresh process) for
   2,000 and 10,000 points of 2,048 dimensions with PCA, t-SNE and UMAP.
3. Stored size of the pooled features of 10,000 images x 4 layers of resnet50 (< 400 MB).

Usage::

    python benchmarks/embed_speed.py --quick        # about 4 minutes on 2 idle cores
    python benchmarks/embed_speed.py                # 2,000 and 10,000 points (t-SNE/UMAP on
                                                    # 10,000 take minutes on 2 cores)
    python benchmarks/embed_speed.py --skip-projection --images 256 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without an install

import numpy as np  # noqa: E402
import torch  # noqa: E402

RESNET50_LAYERS = ["layer1", "layer2", "layer3", "layer4"]


# -- 1. extraction ------------------------------------------------------------------------------
def _timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def _photos(images: int) -> list[Path]:
    photos = sorted((ROOT.parent / "shared" / "data" / "photos").glob("*.JPEG"))
    return [photos[i % len(photos)] for i in range(images)] if photos else []


def extraction(images: int, batch_size: int, repeats: int) -> list[tuple[str, float, float, float]]:
    """Each way to get pooled features of the same images: (name, images/s, throughput
    relative to the plain forward pass by wall time, the same by CPU time).

    Variants are interleaved batch by batch, in an order that rotates, so that a busy machine
    slows them alike; CPU time (all threads of this process) is less sensitive to other
    processes than wall time. Medians over repeats. The images are the shared real photos
    (random tensors without them).
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    from embeddings import FileListDataset, collect_activations
    from embeddings.collect import forward_pooled, resolve_pooling
    from explain import load_model

    handle = load_model("torchvision:resnet50", weights=None, device="cpu")
    infos = [handle.layer(name) for name in RESNET50_LAYERS]
    poolings = {info.name: resolve_pooling(info) for info in infos}
    paths = _photos(images)
    if paths:
        x = handle.preprocess(paths)
    else:
        x = torch.randn(images, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    batches = list(torch.split(x, batch_size))
    path_batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    fx = create_feature_extractor(handle.model, return_nodes=RESNET50_LAYERS)
    _ = handle.fingerprint  # hashed once per model, outside the timing

    def plain(i: int) -> None:
        with torch.inference_mode():
            handle.model(batches[i])

    def one_pass(i: int) -> None:
        forward_pooled(handle, batches[i], infos, poolings)

    def per_layer(i: int) -> None:
        for info in infos:
            forward_pooled(handle, batches[i], [info], {info.name: poolings[info.name]})

    def feature_extractor(i: int) -> None:
        with torch.inference_mode():
            maps = fx(batches[i])
            [maps[name].mean(dim=(2, 3)) for name in RESNET50_LAYERS]

    def end_to_end(i: int) -> None:
        collect_activations(
            handle,
            FileListDataset(path_batches[i]),
            RESNET50_LAYERS,
            batch_size=batch_size,
            cache_dir=False,
        )

    # Same numbers from both ways of pooling (a check, not a timing).
    with torch.inference_mode():
        reference = {k: v.mean(dim=(2, 3)).numpy() for k, v in fx(batches[0]).items()}
    ours, _ = forward_pooled(handle, batches[0], infos, poolings)
    for name in RESNET50_LAYERS:
        np.testing.assert_allclose(ours[name], reference[name], rtol=1e-4, atol=1e-5)

    variants = {
        "plain forward (no hooks)": plain,
        "one pass, 4 layers pooled in hooks": one_pass,
        "one pass per layer (4 passes)": per_layer,
        "torchvision feature_extractor + pool": feature_extractor,
    }
    if paths:
        variants["collect_activations from JPEG files"] = end_to_end
    for fn in variants.values():  # warm-up (allocator, oneDNN primitives, imports)
        fn(0)
    names = list(variants)
    wall = {name: [0.0] * repeats for name in names}
    cpu = {name: [0.0] * repeats for name in names}
    for r in range(repeats):
        for i in range(len(batches)):
            shift = (r + i) % len(names)
            for name in names[shift:] + names[:shift]:
                w, c = _timed(variants[name], i)
                wall[name][r] += w
                cpu[name][r] += c
    base_wall = statistics.median(wall[names[0]])
    base_cpu = statistics.median(cpu[names[0]])
    return [
        (
            name,
            images / statistics.median(wall[name]),
            base_wall / statistics.median(wall[name]),
            base_cpu / statistics.median(cpu[name]),
        )
        for name in names
    ]


# -- 2. projections -----------------------------------------------------------------------------
def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _synthetic_features(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Clustered, low-rank-plus-noise, non-negative features like pooled ReLU maps."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 64)) * 3
    latent = centres[rng.integers(0, 10, n)] + rng.normal(size=(n, 64))
    mix = rng.normal(size=(64, dim)) / 8
    return np.maximum(latent @ mix + 0.3 * rng.normal(size=(n, dim)), 0).astype(np.float32)


def _projection_worker(method: str, n: int, dim: int, pca_dim: int | None, queue) -> None:
    torch.set_num_threads(2)
    from embeddings.projection import project

    x = _synthetic_features(n, dim)
    # Imports (UMAP: about 10 s) and numba's JIT compilation stay outside the timing.
    project(_synthetic_features(60, 64, seed=1), method, seed=0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to now
    before = _rss_kb("VmRSS")
    start = time.perf_counter()
    out = project(x, method, dim=2, seed=0, pca_dim=pca_dim)
    seconds = time.perf_counter() - start
    peak = _rss_kb("VmHWM")
    queue.put((seconds, (peak - before) / 1024, out.shape))


def projection(
    method: str, n: int, dim: int = 2048, pca_dim: int | None = 50, timeout: float = 3600
) -> tuple[float, float]:
    """(seconds, peak MB above the baseline) of one projection, in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_projection_worker, args=(method, n, dim, pca_dim, queue))
    proc.start()
    try:
        seconds, peak_mb, _shape = queue.get(timeout=timeout)
    finally:
        proc.join(timeout=30)
    return seconds, peak_mb


# -- 3. storage ---------------------------------------------------------------------------------
def stored_size(images: int = 10_000) -> tuple[float, float]:
    """(MB on disk, MB in memory) of the cache entry of ``images`` x resnet50's 4 layers."""
    from embeddings.cache import ActivationStore

    widths = {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    rng = np.random.default_rng(0)
    arrays = {
        "indices": np.arange(images),
        "failed": np.zeros(0, np.int64),
        "reasons": np.zeros(0, np.str_),
        "probabilities": rng.random((images, 1000), dtype=np.float32),
    }
    for j, width in enumerate(widths.values()):
        arrays[f"f{j}"] = rng.random((images, width), dtype=np.float32)
    in_memory = sum(a.nbytes for a in arrays.values()) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        store = ActivationStore(tmp, "bench")
        store.save_result(arrays, {"layers": list(widths)})
        on_disk = sum(p.stat().st_size for p in store.dir.iterdir()) / 1e6
    return on_disk, in_memory


# -- report -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer images and repeats, 2,000 points only"
    )
    parser.add_argument("--images", type=int, help="images per extraction timing")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, help="timings per variant (median reported)")
    parser.add_argument("--points", help="comma-separated point counts (default 2000,10000)")
    parser.add_argument("--methods", default="pca,tsne,umap")
    parser.add_argument(
        "--no-pca-step",
        action="store_true",
        help="also time t-SNE / UMAP on the raw 2,048 dimensions",
    )
    parser.add_argument("--skip-extraction", action="store_true")
    parser.add_argument("--skip-projection", action="store_true")
    parser.add_argument("--json", help="also save the rows to this JSON file")
    args = parser.parse_args(argv)
    report: dict[str, list] = {"extraction": [], "projection": [], "storage": []}
    torch.set_num_threads(2)
    images = args.images or (16 if args.quick else 64)
    repeats = args.repeats or 3
    points = [int(p) for p in (args.points or ("2000" if args.quick else "2000,10000")).split(",")]
    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}"
    )

    if not args.skip_extraction:
        print(
            f"\n1. Pooled features of resnet50 (random weights), {images} real photos at "
            f"224x224, batch {args.batch_size}, median of {repeats}, interleaved by batch"
        )
        print(f"{'variant':<40} {'images/s':>9} {'vs plain':>9} {'(CPU time)':>11}")
        for name, rate, ratio, cpu_ratio in extraction(images, args.batch_size, repeats):
            print(f"{name:<40} {rate:9.2f} {ratio:8.2f}x {cpu_ratio:10.2f}x")
            report["extraction"].append(
                {
                    "variant": name,
                    "images_per_s": rate,
                    "vs_plain": ratio,
                    "vs_plain_cpu": cpu_ratio,
                }
            )

    if not args.skip_projection:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        print(
            "\n2. Projection to 2-D of synthetic pooled features (2,048 dims), fresh process each"
        )
        print(f"{'method':<28} {'points':>7} {'seconds':>9} {'peak MB':>9}")
        for n in points:
            for method in methods:
                variants = [(method if method == "pca" else f"{method} (PCA-50 first)", 50)]
                if args.no_pca_step and method != "pca":
                    variants.append((f"{method} (no PCA step)", None))
                for label, pca_dim in variants:
                    seconds, peak = projection(method, n, pca_dim=pca_dim)
                    print(f"{label:<28} {n:7d} {seconds:9.2f} {peak:9.1f}", flush=True)
                    report["projection"].append(
                        {"method": label, "points": n, "seconds": seconds, "peak_mb": peak}
                    )

    on_disk, in_memory = stored_size()
    verdict = "OK" if on_disk < 400 else "OVER"
    print(
        f"\n3. Stored features, 10,000 images x resnet50 layer1-4 (3,840 floats/image) + "
        f"1,000-class probabilities: {on_disk:.0f} MB on disk, {in_memory:.0f} MB in memory "
        f"(limit 400 MB: {verdict})"
    )
    report["storage"].append({"images": 10_000, "disk_mb": on_disk, "memory_mb": in_memory})
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

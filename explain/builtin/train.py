"""Train the built-in shapes models and write their weights + JSON records.

Usage::

    python -m explain.builtin.train --variant shapes|shapes-biased|all [--seed 0] [--epochs N]
        [--train-size N] [--test-size N] [--out explain/builtin/weights]

``shapes`` trains on marker-free images and images with random (uninformative) markers, so it
learns the shapes and ignores the marker. ``shapes-biased`` trains on images whose marker always
has the true class's colour, so it learns the shortcut. Both are then tested on freshly generated
images (another seed) with no marker, the class's marker, a random marker and another class's
marker. Training is deterministic given the seed (CPU, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import BUILTIN_MODELS, HELD_OUT_SEED, MEAN, STD, TRAINING_SEED, WEIGHTS_DIR, to_tensor
from .net import ShapesNet
from .shapes import CLASSES, NUM_CLASSES, make_dataset

#: The test seed is offset from the training seed so test images are never training images;
#: with the default training seed it is the held-out seed every evaluation uses.
TEST_SEED_OFFSET = HELD_OUT_SEED - TRAINING_SEED
TEST_MODES = ("none", "class", "random", "other")
ARCH_KWARGS = {"num_classes": NUM_CLASSES, "width": 32, "blocks": 2}


@dataclass(frozen=True)
class Recipe:
    """Training data and schedule of one variant."""

    markers: tuple[str, ...]  # train-set marker modes, equal shares
    train_size: int
    epochs: int
    lr: float
    batch_size: int = 128
    weight_decay: float = 5e-4


RECIPES: dict[str, Recipe] = {
    "shapes": Recipe(markers=("none", "random"), train_size=9000, epochs=6, lr=0.1),
    "shapes-biased": Recipe(markers=("class",), train_size=6000, epochs=3, lr=0.05),
}


def build_train_set(recipe: Recipe, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 images and (N,) labels; each marker mode gets its own index range."""
    share = recipe.train_size // len(recipe.markers)
    parts = [
        make_dataset(share, seed=seed, size=size, marker=m, start=k * share)
        for k, m in enumerate(recipe.markers)
    ]
    images = np.concatenate([p.images for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    return images, labels


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """(N,) predicted class indices for (N, H, W, 3) uint8 images."""
    model.eval()
    preds = []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i : i + batch_size]).contiguous(memory_format=torch.channels_last)
        preds.append(model(x).argmax(1).numpy())
    return np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)


def evaluate(model: nn.Module, n: int, seed: int, size: int) -> dict[str, dict]:
    """Accuracy (and, with a marker, the rate of predicting the marker's class) per marker mode."""
    results: dict[str, dict] = {}
    for mode in TEST_MODES:
        data = make_dataset(n, seed=seed, size=size, marker=mode)
        pred = predict(model, data.images)
        entry = {"accuracy": float((pred == data.labels).mean()), "n": n, "seed": seed}
        if mode != "none":
            entry["follows_marker"] = float((pred == data.marker_labels).mean())
        results[mode] = entry
    return results


def train_variant(
    variant: str,
    seed: int = 0,
    epochs: int | None = None,
    train_size: int | None = None,
    test_size: int = 1200,
    size: int = 64,
    out: Path = WEIGHTS_DIR,
) -> dict:
    """Train one variant, write ``<out>/<variant>.safetensors`` and ``.json``; return the record."""
    from safetensors.torch import save_file

    base = RECIPES[variant]
    recipe = Recipe(
        markers=base.markers,
        train_size=train_size or base.train_size,
        epochs=epochs or base.epochs,
        lr=base.lr,
        batch_size=base.batch_size,
        weight_decay=base.weight_decay,
    )
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    images, labels = build_train_set(recipe, seed, size)
    print(f"[{variant}] generated {len(labels)} training images in {time.perf_counter() - t0:.1f}s")

    model = ShapesNet(**ARCH_KWARGS).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=recipe.weight_decay,
    )
    steps_per_epoch = -(-len(labels) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.2
    )
    loss_fn = nn.CrossEntropyLoss()
    order_rng = np.random.default_rng([seed, 7])  # batch order, independent of the data stream
    y_all = torch.from_numpy(labels)
    for epoch in range(recipe.epochs):
        model.train()
        te = time.perf_counter()
        order = order_rng.permutation(len(labels))
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            x = to_tensor(images[idx]).contiguous(memory_format=torch.channels_last)
            y = y_all[idx]
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            total += len(idx)
        print(
            f"[{variant}] epoch {epoch + 1}/{recipe.epochs} loss {loss_sum / total:.4f} "
            f"train acc {correct / total:.4f} ({time.perf_counter() - te:.1f}s)",
            flush=True,
        )
    train_time = time.perf_counter() - t0

    test_seed = seed + TEST_SEED_OFFSET
    tests = evaluate(model, test_size, test_seed, size)
    for mode, r in tests.items():
        follow = f", follows marker {r['follows_marker']:.4f}" if "follows_marker" in r else ""
        print(f"[{variant}] test marker={mode}: accuracy {r['accuracy']:.4f}{follow}")

    model = model.to(memory_format=torch.contiguous_format).eval()
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / f"{variant}.safetensors"), metadata={"variant": variant})
    record = {
        "name": variant,
        "description": BUILTIN_MODELS[variant],
        "labels": list(CLASSES),
        "input_size": [size, size],
        "mean": list(MEAN),
        "std": list(STD),
        "normalisation": "uint8 RGB / 255, then (x - mean) / std per channel",
        "arch": {"name": "ShapesNet", "kwargs": ARCH_KWARGS},
        "seed": seed,
        "epochs": recipe.epochs,
        "train": {
            "size": len(labels),
            "data_seed": seed,
            "marker_modes": list(recipe.markers),
            "batch_size": recipe.batch_size,
            "optimizer": "SGD nesterov momentum 0.9, OneCycle",
            "max_lr": recipe.lr,
            "weight_decay": recipe.weight_decay,
        },
        "test": tests,
        "train_wall_time_s": round(train_time, 1),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    (out / f"{variant}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"[{variant}] wrote {out / variant}.safetensors/.json ({train_time:.0f}s training)")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=[*RECIPES, "all"], required=True)
    parser.add_argument("--seed", type=int, default=TRAINING_SEED)
    parser.add_argument("--epochs", type=int, default=None, help="default: per variant")
    parser.add_argument("--train-size", type=int, default=None, help="default: per variant")
    parser.add_argument("--test-size", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args(argv)
    variants = list(RECIPES) if args.variant == "all" else [args.variant]
    for v in variants:
        train_variant(v, args.seed, args.epochs, args.train_size, args.test_size, out=args.out)


if __name__ == "__main__":
    main()

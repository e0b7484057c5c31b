"""Load every torchvision image classifier with random weights, find its default layer and
stage layers, and compute one Grad-CAM: a maintainer's check that layer discovery works across
the whole zoo (too slow and memory-hungry for the test suite: ViT-H/14 alone has 632 M
parameters).

    .venv/bin/python scripts/check_torchvision_zoo.py [NAME ...]
"""

from __future__ import annotations

import gc
import sys
import time
import warnings

import torch

from explain import compute_cams, load_model, torchvision_classifiers


def main(names: list[str]) -> int:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    failed = []
    for name in names or torchvision_classifiers():
        start = time.perf_counter()
        try:
            handle = load_model(f"torchvision:{name}", weights=None, device="cpu")
            layer = handle.default_layer
            compute_cams(handle, torch.randn(1, 3, *handle.input_size), layers=layer)
            print(
                f"{name:22s} {handle.layer(layer).describe():60s} "
                f"{len(handle.stage_layers())} stages  {time.perf_counter() - start:5.1f} s",
                flush=True,
            )
            del handle
        except Exception as exc:  # report every failure, keep going
            failed.append(name)
            print(f"{name:22s} FAILED {type(exc).__name__}: {exc}", flush=True)
        gc.collect()
    print(f"\n{len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The model options every command line shares (explain.cli.options), through the real
commands with the pretrained CIFAR-10 ResNet-20: predictions and accuracy, not exit codes only."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CIFAR_TEST, CIFAR_WEIGHTS, spawn

from embeddings.__main__ import main as embeddings_main
from explain.architectures import CIFAR10_CLASSES
from explain.cli.command import error_line
from explain.cli.evaluate import main as evaluate_main
from explain.cli.explain import main as explain_main
from explain.cli.options import (
    add_model_options,
    load_model_from_args,
    parse_labels,
    preprocess_overrides,
)
from explain.errors import ExplainError, InputSizeError

MEAN, STD = "0.485,0.456,0.406", "0.229,0.224,0.225"  # the checkpoint's normalisation
CIFAR_OPTIONS = [
    "--weights",
    str(CIFAR_WEIGHTS),
    "--input-size",
    "32",
    "--mean",
    MEAN,
    "--std",
    STD,
]


def run(main, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "cifar10.txt"
    path.write_text("\n".join(CIFAR10_CLASSES) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def images(cifar_files) -> tuple[list[Path], np.ndarray]:
    paths, labels = cifar_files
    return paths[::50], labels[::50]  # two per class


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    return parser.parse_args(argv)


def test_option_parsing(labels_file):
    args = _parse(["--model", "m.x:f(depth=20)", "--input-size", "32,48", "--mean", "0.5"])
    assert args.input_size == (32, 48) and args.mean == (0.5, 0.5, 0.5)
    assert preprocess_overrides(args) == {"input_size": (32, 48), "mean": (0.5, 0.5, 0.5)}
    assert preprocess_overrides(_parse(["--model", "x", "--resize", "none"])) == {"resize": None}
    assert preprocess_overrides(_parse(["--model", "x", "--resize", "0.875"])) == {
        "crop_fraction": 0.875
    }
    assert preprocess_overrides(_parse(["--model", "x", "--resize", "256"])) == {"resize": 256}
    assert preprocess_overrides(_parse(["--model", "x"])) is None
    assert parse_labels(str(labels_file)) == list(CIFAR10_CLASSES)
    assert parse_labels("cat, dog,") == ["cat", "dog"]
    for bad in (["--input-size", "0"], ["--mean", "1,2"], ["--resize", "-3"]):
        with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
            _parse(["--model", "x", *bad])
    assert error_line(ExplainError("Bad.", hint="do\nthis")) == "error: Bad. Try: do this"


def test_factory_spec_and_model_arg_load_the_same_model(labels_file):
    common = [*CIFAR_OPTIONS, "--labels", str(labels_file), "--device", "cpu"]
    by_spec = load_model_from_args(
        _parse(["--model", "explain.architectures:cifar_resnet(depth=20)", *common])
    )
    by_arg = load_model_from_args(
        _parse(
            ["--model", "explain.architectures:cifar_resnet", "--model-arg", "depth=20", *common]
        )
    )
    assert by_spec.spec == by_arg.spec == "explain.architectures:cifar_resnet(depth=20)"
    assert by_spec.labels == list(CIFAR10_CLASSES) and by_spec.input_size == (32, 32)
    assert by_spec.fingerprint == by_arg.fingerprint


def test_explain_command_on_the_cifar_resnet(images, labels_file, tmp_path):
    paths, labels = images
    argv = [
        *paths,
        "--model",
        "explain.architectures:cifar_resnet",
        "--model-arg",
        "depth=20",
        *CIFAR_OPTIONS,
        "--labels",
        labels_file,
        "--layers",
        "layer3",
        "--out",
        tmp_path,
        "-q",
    ]
    code, _, stderr = run(explain_main, argv)
    assert code == 0, stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    predicted = [image["predictions"][0]["label"] for image in summary["images"]]
    truth = [CIFAR10_CLASSES[i] for i in labels]
    assert len(predicted) == 20
    assert np.mean([p == t for p, t in zip(predicted, truth, strict=True)]) >= 0.75
    assert summary["model"]["input_size"] == [32, 32] and summary["model"]["num_classes"] == 10


def test_embeddings_command_honours_mean_and_std(labels_file, tmp_path):
    def accuracy(extra: list[str], out: Path) -> float:
        argv = [
            CIFAR_TEST,
            "--model",
            "explain.architectures:cifar_resnet20",
            "--weights",
            CIFAR_WEIGHTS,
            "--input-size",
            "32",
            "--labels",
            labels_file,
            *extra,
            "--layers",
            "layer3",
            "--projection",
            "pca",
            "--max-images",
            "100",
            "--no-cache",
            "--out",
            out,
        ]
        code, _, stderr = run(embeddings_main, argv)
        assert code == 0, stderr
        samples = pd.read_csv(out / "samples.csv")
        return float((samples["label"] == samples["prediction"]).mean())

    right = accuracy(["--mean", MEAN, "--std", STD], tmp_path / "right")
    wrong = accuracy(["--mean", "0", "--std", "1"], tmp_path / "wrong")  # no normalisation
    assert right >= 0.75 and wrong < right - 0.2, (right, wrong)


def test_evaluate_command_on_the_cifar_resnet(labels_file, tmp_path):
    argv = [
        "--model",
        "explain.architectures:cifar_resnet(depth=20)",
        *CIFAR_OPTIONS,
        "--labels",
        labels_file,
        "--data",
        CIFAR_TEST,
        "--layers",
        "layer3",
        "--metrics",
        "deletion",
        "--max-images",
        "20",
        "--steps",
        "5",
        "--out",
        tmp_path,
        "-q",
    ]
    code, _, stderr = run(evaluate_main, argv)
    assert code == 0, stderr
    table = pd.read_csv(tmp_path / "table.csv")
    ours = table[table["method"] == "gradcam"]
    assert len(ours) == 20
    assert float((ours["label"] == ours["prediction"]).mean()) >= 0.7


def test_every_command_prints_one_line_for_a_bad_input_size(images, tmp_path):
    image = images[0][0]
    spec = "user_models:flat_head_net"  # a 16x16 model asked for the 224 default
    for main, argv in [
        (explain_main, [image, "--model", spec, "--out", tmp_path / "a"]),
        (evaluate_main, ["--model", spec, "--data", CIFAR_TEST, "--out", tmp_path / "b"]),
        (embeddings_main, [CIFAR_TEST, "--model", spec, "--out", tmp_path / "c"]),
    ]:
        code, stdout, stderr = run(main, argv)
        assert code == 2 and stdout == ""
        assert stderr.count("\n") == 1 and stderr.startswith("error: The forward pass of")
        assert "(1, 3, 224, 224)" in stderr and "--input-size" in stderr
    # With the right size the same model loads (random weights, four classes).
    args = _parse(["--model", spec, "--input-size", "16", "--device", "cpu"])
    assert load_model_from_args(args).num_classes == 4
    with pytest.raises(InputSizeError):
        load_model_from_args(_parse(["--model", spec, "--input-size", "20", "--device", "cpu"]))


def test_explain_entry_point_in_a_subprocess(images, tmp_path):
    image = images[0][0]
    cmd = [sys.executable, "-m", "explain", image, "--model", "user_models:flat_head_net"]
    proc = spawn([*cmd, "--out", tmp_path])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert "probe input of shape (1, 3, 224, 224)" in stderr

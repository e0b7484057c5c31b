"""CLIP prompts and contrasts on the command lines (``--prompts``, ``--prompts-file``,
``--contrast``), and ``--method all`` skipping methods that do not apply to the model."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from clip_factory import make_hf_clip
from conftest import CIFAR_TEST

from embeddings.__main__ import main as embeddings_main
from explain import Contrast, PromptError, compute_cams, load_model
from explain.cli.explain import main as explain_main
from explain.cli.options import parse_prompts

PROMPTS = ["a photo of a fish", "a dog, sitting", "a stop sign"]


def run(main, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-clip") / "tiny-clip"
    make_hf_clip(folder)
    return folder


def test_prompts_options_are_parsed(tmp_path):
    # ';' separates prompts (a prompt may hold commas); a file has one per line.
    assert parse_prompts("a dog, sitting; a cat", None) == ["a dog, sitting", "a cat"]
    file = tmp_path / "prompts.txt"
    file.write_text("a red car\n\n  a  bicycle \n", encoding="utf-8")
    assert parse_prompts(None, file) == ["a red car", "a bicycle"]
    assert parse_prompts("a cat", file) == ["a red car", "a bicycle", "a cat"]
    assert parse_prompts(None, None) is None
    with pytest.raises(PromptError, match="empty"):
        parse_prompts(" ; ", None)
    with pytest.raises(PromptError, match="Cannot read"):
        parse_prompts(None, tmp_path / "missing.txt")


def test_explain_command_with_prompts_and_contrast(clip_folder, photo_paths, tmp_path):
    photo = photo_paths[0]
    argv = [photo, "--model", f"clip:{clip_folder}", "--prompts", ";".join(PROMPTS)]
    code, _, stderr = run(
        explain_main,
        [*argv, "--target", "a dog, sitting", "--contrast", "2", "--out", tmp_path, "-q"],
    )
    assert code == 0, stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    record = summary["images"][0]
    assert record["targets"] == [{"index": 1, "label": "a dog, sitting rather than a stop sign"}]
    handle = load_model(f"clip:{clip_folder}", prompts=PROMPTS, device="cpu")
    probs = handle.predict([photo])[0]
    assert [p["label"] for p in record["predictions"]] == [
        PROMPTS[i] for i in np.argsort(-probs, kind="stable")
    ]
    expected = compute_cams(handle, [photo], targets=Contrast(1, 2))
    saved = np.load(tmp_path / record["outputs"][0]["map"])
    np.testing.assert_allclose(saved, expected.maps[handle.default_layer][0], atol=1e-6)
    # Usage errors: no prompts for a CLIP model, a contrast with several targets.
    code, _, stderr = run(
        explain_main, [photo, "--model", f"clip:{clip_folder}", "--out", tmp_path]
    )
    assert code == 2 and "needs text prompts" in stderr
    code, _, stderr = run(
        explain_main, [*argv, "--target", "top2", "--contrast", "a stop sign", "--out", tmp_path]
    )
    assert code == 2 and "one --target" in stderr


def test_embeddings_command_predicts_over_prompts(clip_folder, tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("\n".join(PROMPTS), encoding="utf-8")
    argv = [CIFAR_TEST, "--model", f"clip:{clip_folder}", "--prompts-file", file]
    options = ["--layers", "default", "--projection", "pca", "--max-images", "6", "--no-cache"]
    code, _, stderr = run(embeddings_main, [*argv, *options, "--out", tmp_path / "out"])
    assert code == 0, stderr
    samples = pd.read_csv(tmp_path / "out" / "samples.csv")
    handle = load_model(f"clip:{clip_folder}", prompts=PROMPTS, device="cpu")
    predicted = handle.predict(samples["path"].tolist()).argmax(axis=1)
    assert samples["prediction"].tolist() == [PROMPTS[i] for i in predicted]


def test_method_all_skips_methods_that_do_not_apply(photo_paths, tmp_path):
    base = [photo_paths[0], "--model", "builtin:shapes"]
    code, _, stderr = run(
        explain_main, [*base, "--method", "gradcam,rollout,legrad", "--out", tmp_path, "-q"]
    )
    assert code == 0, stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["methods"] == ["gradcam"]
    assert set(summary["skipped_methods"]) == {"rollout", "legrad"}
    assert any(n.startswith("rollout skipped: ") for n in summary["notes"])
    assert {entry["method"] for entry in summary["images"][0]["outputs"]} == {"gradcam"}
    # Nothing applies: one clear error, exit 2.
    code, _, stderr = run(explain_main, [*base, "--method", "rollout", "--out", tmp_path / "x"])
    assert code == 2 and "No method asked for applies" in stderr

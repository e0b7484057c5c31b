"""Results in Jupyter: the pictures a CamResult keeps, its captioned overlay grid, evaluation
tables with their curves, bias findings, embeddings as their figure, and ``explain.show``."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import explain
from explain import Classes, ExplainError, TopK, compute_cams, load_model
from explain.builtin.shapes import CLASSES, make_sample
from explain.display import View, cam_view, show, view
from explain.preprocessing import CallablePreprocess, HFPreprocess, input_pictures
from explain.render import grid, overlay


@pytest.fixture(scope="module")
def shapes():
    return load_model("builtin:shapes", device="cpu")


@pytest.fixture(scope="module")
def pictures():
    """A star and a circle, noise-free, as (H, W, 3) uint8."""
    return [make_sample(CLASSES.index(c), seed=1, noise=False).image for c in ("star", "circle")]


def _tiles(html: str) -> list[np.ndarray]:
    """The pictures embedded in a view's HTML, in order."""
    found = re.findall(r'src="data:image/(?:jpeg|png);base64,([^"]+)"', html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in found]


def _captions(html: str) -> list[str]:
    raw = re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", html)
    return [re.sub(r"<[^>]+>", " ", c).split() for c in raw]


# -- the pictures behind the maps --------------------------------------------------------------
def test_result_keeps_exactly_the_pictures_the_model_saw(shapes, pictures):
    from_images = compute_cams(shapes, pictures, layers=["layer3"])
    np.testing.assert_array_equal(from_images.images, shapes.prepare(pictures))
    from_tensor = compute_cams(shapes, shapes.preprocess(pictures), layers=["layer3"])
    np.testing.assert_array_equal(from_tensor.images, shapes.prepare(pictures))


def test_pictures_of_a_hugging_face_input_undo_its_rescale_and_normalisation(pictures):
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(
        size={"height": 48, "width": 40}, image_mean=[0.3, 0.5, 0.7], image_std=[0.2, 0.25, 0.3]
    )
    pre = HFPreprocess(processor, input_size=(48, 40))
    shown = input_pictures(pre(pictures), pre)
    expected = pre.prepare(pictures)
    assert shown.shape == expected.shape == (2, 48, 40, 3)
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1


def test_pictures_of_an_unknown_normalisation_are_stretched_per_image():
    pre = CallablePreprocess(lambda img: torch.zeros(3, 8, 8), input_size=(8, 8))
    x = torch.stack([torch.linspace(-3.0, 5.0, 192).reshape(3, 8, 8), torch.full((3, 8, 8), 2.0)])
    shown = input_pictures(x, pre)
    assert (shown[0].min(), shown[0].max()) == (0, 255)
    channel_first = shown[0].transpose(2, 0, 1).ravel()
    np.testing.assert_array_equal(channel_first, np.rint(np.linspace(0, 255, 192)).astype(np.uint8))
    assert not shown[1].any()  # a constant image has nothing to stretch


# -- the overlay grid ------------------------------------------------------------------------
def test_cam_result_shows_captioned_overlays_one_row_per_image(shapes, pictures):
    res = compute_cams(shapes, pictures, layers=["layer2", "layer3"], method="gradcam")
    assert res._repr_html_() == res.view().html() and res._repr_png_() == res.view().png
    shown = res.view(size=64, labels=shapes.labels)
    html = shown.html()
    tiles, captions = _tiles(html), _captions(html)
    assert len(tiles) == len(captions) == 2 * 3  # picture, layer2, layer3 for each image
    # each tile is its own picture or overlay (up to JPEG), far from every other one
    expected = []
    for i in range(2):
        expected += [pictures[i]] + [overlay(pictures[i], res.maps[k][i]) for k in res.maps]
    errors = np.array([[np.abs(t.astype(int) - e.astype(int)).mean() for e in expected]
                       for t in tiles])  # fmt: skip
    assert (np.diag(errors) < 5).all(), np.diag(errors)
    assert (errors + np.eye(6) * 99 > 4 * np.diag(errors)[:, None]).all(), errors
    for i in range(2):
        name = shapes.labels[res.targets[i]]
        prob = res.probs[i, res.targets[i]]
        assert captions[3 * i] == ["image", str(i + 1), "top-1", name, f"{prob:.0%}"]
        assert captions[3 * i + 2] == [name, f"{prob:.0%}", "layer3", "·", "Grad-CAM"]
    assert [shapes.labels[t] for t in res.targets] == ["star", "circle"]
    # the PNG is the same grid: 2 rows of 3 cells of 64 pixels
    png = np.asarray(Image.open(io.BytesIO(shown.png)))
    reference = grid(tiles, ["a\nb"] * 6, columns=3, cell=64)
    assert png.shape == reference.shape
    assert "Grad-CAM" in shown.text and "star" in shown.text


def test_several_targets_and_methods_share_one_grid(shapes, pictures):
    res = compute_cams(shapes, pictures[:1], layers="layer3", targets=TopK(2))
    other = compute_cams(shapes, pictures[:1], layers="layer3", method="eigencam")
    shown = cam_view([res, other], size=48)
    captions = _captions(shown.html())
    names = res.target_names[0]
    assert [c[0] for c in captions] == ["image", names[0], names[1], names[0]]
    assert captions[2][-1] == "Grad-CAM" and captions[3][-1] == "Eigen-CAM"
    assert captions[2][1] == f"{res.probs[0, res.targets[0, 1]]:.0%}"


def test_without_pictures_the_maps_are_heatmaps_and_long_batches_are_cut(shapes):
    data = [make_sample(i, seed=2).image for i in range(10)]
    res = compute_cams(shapes, data, layers="layer3", targets=Classes([0]))
    res.images = None
    shown = view(res, max_images=3, size=32)
    assert len(_tiles(shown.html())) == 3  # no picture column, one map per image
    assert "Showing the first 3 of 10 images" in shown.html()
    with pytest.raises(ExplainError, match="3 pictures were given for 10 images"):
        cam_view(res, np.zeros((3, 64, 64, 3), np.uint8))


def test_show_computes_and_displays_the_common_case(shapes, pictures, capsys, tmp_path):
    files = []
    for name, picture in zip(["star", "circle"], pictures, strict=True):
        Image.fromarray(picture).save(tmp_path / f"{name}.png")
        files.append(tmp_path / f"{name}.png")
    show(shapes, files, layers=["layer3"], methods=["gradcam", "layercam"])
    text = capsys.readouterr().out  # outside a notebook: the view's text
    assert text.startswith("Grad-CAM, LayerCAM: 2 image(s), layers layer3")
    assert "star: star 100% at layer3 (layercam)" in text and "circle: circle" in text
    assert explain.show is show
    with pytest.raises(ExplainError, match="does not know how to show a dict"):
        view({"a": 1})
    page = view(np.stack(pictures)).save(tmp_path / "pictures.html")
    assert len(_tiles(page.read_text())) == 2


# -- evaluation, bias, embeddings ------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluation(shapes):
    from explain.evaluation import evaluate

    return evaluate(
        shapes,
        "builtin:shapes",
        ["gradcam", "eigencam"],
        metrics=["deletion", "pointing_game"],
        max_images=6,
        steps=5,
        n_resamples=200,
    )


def test_evaluation_shows_its_leaderboard_verdicts_and_curves(evaluation):
    from explain.evaluation import figures

    shown = evaluation.view()
    html, *curves = shown.parts
    board = figures.leaderboard_table(evaluation)
    for metric in board.columns:
        decimals = figures.METRICS[metric].decimals
        best = figures.best_rows(board)[metric]
        for row, value in board[metric].items():
            cell = f"{value:.{decimals}f}" + (f" {figures.BEST_MARK}" if row in best else "")
            assert f">{cell}</td>" in html, (row, metric, cell)
        assert figures.METRICS[metric].column_title in html
    assert "Against the baselines" in html and "no significant difference" in html
    assert [fig.layout.title.text for fig in curves] == ["Deletion AUC (↓ is better)"]
    means = evaluation.mean_curves("deletion")
    grad = means[means["method"] == "gradcam"]["mean"].to_numpy()
    traces = {trace.name: np.asarray(trace.y) for trace in curves[0].data}
    np.testing.assert_allclose(traces["Grad-CAM at layer3"], grad)
    assert evaluation._repr_html_().count("Plotly.newPlot") == 1
    assert shown.text.splitlines()[0].startswith("Evaluation of builtin:shapes")
    with pytest.raises(ExplainError, match="no subset 'tiny'"):
        evaluation.view("tiny")


def test_bias_study_and_report_show_their_verdicts_and_numbers():
    from explain.evaluation import shapes_bias_study

    study = shapes_bias_study(n=6)
    shown = view(study)
    html = study._repr_html_()
    for spec, verdict in study.verdicts.items():
        assert spec in html and verdict.replace("'", "&#x27;") in html
    biased = study.table.iloc[0]
    assert f">{biased['accuracy'] * 100:.0f}</td>" in html
    assert f">{biased['share_marker'] * 100:.1f}</td>" in html
    assert shown.text.startswith(
        f"builtin:shapes-biased: {study.verdicts['builtin:shapes-biased']}"
    )
    report = study.reports[("builtin:shapes-biased", "class")]
    assert report.verdict in report._repr_html_() and view(report).text.startswith(report.verdict)


def test_embeddings_result_is_its_figure_and_its_numbers(shapes):
    from embeddings import collect_activations, explore, layer_metrics, project_layers

    emb = explore(shapes, "builtin:shapes", max_images=36, projection="pca", cache_dir=False)
    acts = collect_activations(shapes, "builtin:shapes", max_images=36, cache_dir=False)
    layouts = project_layers(acts.features, method="pca", seed=0)
    assert list(emb.layouts) == ["layer1", "layer2", "layer3"]
    for name, layout in layouts.items():
        np.testing.assert_allclose(emb.layouts[name], layout, rtol=1e-5, atol=1e-5)
    expected = layer_metrics(acts.features, acts.labels, layouts, seed=0, trust_metric="euclidean")
    pd.testing.assert_frame_equal(emb.metrics, expected)
    figure = emb.figure()
    assert [a.text for a in figure.layout.annotations] == ["layer1", "layer2", "layer3"]
    assert sum(len(t.x) for t in figure.data) == 3 * 36
    assert {t.name for t in figure.data} == set(CLASSES)
    shown = view(emb)
    assert isinstance(shown, View) and len(shown.figures) == 2
    assert shown.figures[1].layout.title.text == "Class separation by depth"
    assert "linear_probe_accuracy" in shown.text

"""Plotly figures (points map back to their rows, colours and legend shared across panels), the
standalone HTML page, and the command line end to end on the real CIFAR ResNet-20."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from embeddings.collect import Activations
from embeddings.figures import (
    CORRECT_COLORS,
    cka_heatmap,
    focus,
    html_page,
    metrics_chart,
    scatter,
    small_multiples,
)
from explain.architectures import CIFAR10_CLASSES
from explain.layers import LayerInfo


def _acts(n=30, seed=0) -> Activations:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    labels[-1] = -1  # one unlabelled image
    probs = rng.dirichlet(np.ones(4), size=n).astype(np.float32)
    infos = {
        "stage1": LayerInfo("stage1", "spatial", (4, 2, 2), order=3),
        "stage2": LayerInfo("stage2", "spatial", (8, 1, 1), order=7),
    }
    return Activations(
        features={
            "stage1": rng.normal(size=(n, 4)).astype(np.float32),
            "stage2": rng.normal(size=(n, 8)).astype(np.float32),
        },
        labels=labels,
        label_names=["cat", "dog", "fox"],
        paths=[f"/data/img{i}.png" for i in range(n)],
        names=[f"img{i}.png" for i in range(n)],
        indices=np.arange(n),
        probabilities=probs,
        class_names=["dog", "cat", "fox", "owl"],
        layer_infos=infos,
        pooling={"stage1": "avg", "stage2": "avg"},
    )


def _rows(fig):
    return [np.asarray([row[0] for row in trace.customdata], dtype=int) for trace in fig.data]


def test_scatter_by_label_maps_points_back_to_rows():
    acts = _acts()
    xy = np.random.default_rng(1).normal(size=(len(acts), 2))
    fig = scatter(acts, xy, "label", layer="stage2")
    assert [t.name for t in fig.data] == ["cat", "dog", "fox", "no label"]
    rows = _rows(fig)
    assert sorted(np.concatenate(rows).tolist()) == list(range(len(acts)))
    for trace, trace_rows in zip(fig.data, rows, strict=True):
        np.testing.assert_allclose(trace.x, xy[trace_rows, 0])
        np.testing.assert_allclose(trace.y, xy[trace_rows, 1])
        expected = "-" if trace.name == "no label" else trace.name
        assert all(row[2] == expected for row in trace.customdata)
        for row, r in zip(trace.customdata, trace_rows, strict=True):
            assert row[1] == acts.names[r] and row[3] == acts.prediction_text[r]
            assert row[4] == pytest.approx(float(acts.confidence[r])) and row[5] == "stage2"
    assert "customdata[1]" in fig.data[0].hovertemplate and isinstance(fig.data[0], go.Scatter)


def test_scatter_colourings():
    acts = _acts()
    xy = np.zeros((len(acts), 2))
    by_pred = scatter(acts, xy, "prediction")
    for trace, rows in zip(by_pred.data, _rows(by_pred), strict=True):
        assert {acts.prediction_text[r] for r in rows} == {trace.name}
    by_correct = scatter(acts, xy, "correct")
    counts = {t.name: len(t.x) for t in by_correct.data}
    known = acts.targets >= 0
    assert counts.get("correct", 0) == int(acts.correct.sum())
    assert counts.get("wrong", 0) == int((known & ~acts.correct).sum())
    assert counts["no label"] == 1
    assert all(t.marker.color == CORRECT_COLORS[t.name] for t in by_correct.data)
    by_conf = scatter(acts, xy, "confidence")
    assert len(by_conf.data) == 1
    np.testing.assert_allclose(by_conf.data[0].marker.color, acts.confidence)
    with pytest.raises(ValueError, match="color_by"):
        scatter(acts, xy, "size")
    with pytest.raises(ValueError, match=r"\(N, 2\|3\)"):
        scatter(acts, xy[:5], "label")


def test_scatter_3d_and_webgl_for_many_points():
    acts = _acts()
    fig = scatter(acts, np.zeros((len(acts), 3)), "label")
    assert all(isinstance(t, go.Scatter3d) for t in fig.data)
    big = _acts(n=2500)
    fig = scatter(big, np.zeros((2500, 2)), "prediction")
    assert all(isinstance(t, go.Scattergl) for t in fig.data)


def test_small_multiples_depth_order_shared_colours_one_legend():
    acts = _acts()
    rng = np.random.default_rng(2)
    layouts = {"stage2": rng.normal(size=(len(acts), 2)), "stage1": rng.normal(size=(30, 2))}
    fig = small_multiples(acts, layouts, "label")
    assert [a.text for a in fig.layout.annotations] == ["stage1", "stage2"]
    first = [t for t in fig.data if t.xaxis == "x"]
    second = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in first] == [t.name for t in second] == ["cat", "dog", "fox", "no label"]
    assert all(t.showlegend for t in first) and not any(t.showlegend for t in second)
    for a, b in zip(first, second, strict=True):
        assert a.marker.color == b.marker.color and a.legendgroup == b.legendgroup
    np.testing.assert_allclose(first[0].x, layouts["stage1"][_rows(fig)[0], 0])
    fig3d = small_multiples(acts, {k: np.zeros((30, 3)) for k in layouts}, "correct", cols=1)
    assert fig3d.layout.scene2 is not None and all(isinstance(t, go.Scatter3d) for t in fig3d.data)


def test_focus_highlights_the_same_rows_in_every_panel_and_keeps_only_some():
    acts = _acts()
    rng = np.random.default_rng(3)
    layouts = {"stage1": rng.normal(size=(30, 2)), "stage2": rng.normal(size=(30, 2))}
    chosen = [0, 4, 7, 29]
    fig = focus(small_multiples(acts, layouts, "label"), highlight=chosen)
    for axis in ("x", "x2"):
        lit = [
            int(trace.customdata[i][0])
            for trace in fig.data
            if trace.xaxis == axis
            for i in trace.selectedpoints
        ]
        assert sorted(lit) == chosen  # the same images, whichever panel they were picked in
    assert all(t.unselected.marker.opacity == pytest.approx(0.12) for t in fig.data)
    keep = [1, 2, 3, 29]
    kept = focus(small_multiples(acts, layouts, "confidence"), keep=keep, highlight=[2])
    for trace in kept.data:
        rows = [int(c[0]) for c in trace.customdata]
        assert rows == keep
        stage = "stage1" if trace.xaxis == "x" else "stage2"
        np.testing.assert_allclose(trace.x, layouts[stage][keep, 0])
        np.testing.assert_allclose(trace.marker.color, acts.confidence[keep])
        assert list(trace.selectedpoints) == [1]
    flat = focus(small_multiples(acts, {k: np.zeros((30, 3)) for k in layouts}), highlight=[5])
    sizes = [
        s for t in flat.data for s, c in zip(t.marker.size, t.customdata, strict=True) if c[0] == 5
    ]
    others = {
        s for t in flat.data for s, c in zip(t.marker.size, t.customdata, strict=True) if c[0] != 5
    }
    assert len(sizes) == 2 and min(sizes) > max(others)  # 3-D: larger points, no selection state


def test_cka_heatmap_metrics_chart_and_page():
    matrix = np.array([[1.0, 0.4], [0.4, 1.0]])
    heat = cka_heatmap(["a", "b"], matrix)
    np.testing.assert_array_equal(heat.data[0].z, matrix)
    assert heat.data[0].text[0][1] == "0.40"
    table = pd.DataFrame(
        {
            "layer": ["a", "b"],
            "depth": [0, 1],
            "dim": [4, 8],
            "silhouette": [0.1, 0.5],
            "knn_accuracy": [0.3, 0.9],
            "trustworthiness": [np.nan, np.nan],
        }
    )
    chart = metrics_chart(table, accuracy=0.85)
    assert [t.name for t in chart.data] == ["Silhouette", "k-NN accuracy"]
    assert list(chart.data[1].y) == [0.3, 0.9] and chart.layout.shapes[0].y0 == 0.85
    page = html_page([("CKA", heat), ("Metrics", chart), ("Note", "<p>hello</p>")], "Report <1>")
    assert page.count("* plotly.js v") == 1  # inlined once: works offline
    assert page.count('class="plotly-graph-div"') == 2 and "<p>hello</p>" in page
    assert "<title>Report &lt;1&gt;</title>" in page


def test_command_line_end_to_end(shared_data, tmp_path, capsys):
    from embeddings.__main__ import main

    argv = [
        str(shared_data / "cifar10-test"),
        "--model",
        "explain.architectures:cifar_resnet20",
        "--weights",
        str(shared_data / "cifar10-resnet20" / "resnet20-12fca82f.th"),
        "--input-size",
        "32",
        "--labels",
        ",".join(CIFAR10_CLASSES),
        "--layers",
        "layer2,layer3",
        "--projection",
        "pca",
        "--max-images",
        "60",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0
    out = tmp_path / "out"
    features = np.load(out / "features" / "layer3.npy")
    assert features.shape == (60, 64) and features.dtype == np.float32
    samples = pd.read_csv(out / "samples.csv")
    assert len(samples) == 60 and set(samples.label) <= set(CIFAR10_CLASSES)
    assert samples.correct.mean() > 0.6
    coords = pd.read_csv(out / "projections.csv")
    assert list(coords.columns) == ["row", "layer2_x", "layer2_y", "layer3_x", "layer3_y"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics.layer.tolist() == ["layer2", "layer3"]
    assert metrics.knn_accuracy[1] > metrics.knn_accuracy[0]
    cka = pd.read_csv(out / "cka.csv", index_col=0)
    assert cka.loc["layer3", "layer3"] == pytest.approx(1.0)
    page = (out / "report.html").read_text()
    assert page.count("* plotly.js v") == 1 and "layer3" in page
    assert "(from cache)" not in capsys.readouterr().out
    assert main(argv) == 0
    assert "(from cache)" in capsys.readouterr().out
    assert np.array_equal(np.load(out / "features" / "layer3.npy"), features)
    # Bad input: a clear message and exit status 2, no traceback.
    assert main([str(tmp_path / "nowhere"), "--model", "builtin:nope", "--out", str(out)]) == 2
    assert "error:" in capsys.readouterr().err

"""The example notebooks: stored without outputs, and each runs top to bottom offline in a
real Jupyter kernel and tells the story its text tells (numbers checked here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_notebooks_in_the_repository_have_no_outputs():
    assert [p.name for p in NOTEBOOKS] == [
        "01-explain-a-photo.ipynb",
        "02-embeddings-layer-by-layer.ipynb",
        "03-find-the-planted-bias.ipynb",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (path.name, cell.id)
                assert "execution" not in cell.metadata, (path.name, cell.id)
        assert nb.metadata.kernelspec.name == "python3"


def _run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    """Execute the notebook in a fresh kernel (this interpreter, this checkout, a private
    cache folder, working folder ``tmp_path``); returns its code cells with their outputs."""
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("GCE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(path, as_version=4)
    # a safety net against a hung kernel, not a speed limit
    client = NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, (path.name, cell.source, errors)
    return cells


def _text(cell) -> str:
    """Everything a cell printed or showed as text."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream" and out.name == "stdout":
            parts.append(out.text)
        elif "data" in out:
            parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


def _kinds(cell) -> list[set[str]]:
    return [set(out.data) for out in cell.outputs if "data" in out]


def _find(cells, start: str):
    """The code cell whose source starts with ``start``."""
    return next(cell for cell in cells if cell.source.startswith(start))


@pytest.mark.slow
def test_explain_a_photo(tmp_path, monkeypatch):
    cells = _run(EXAMPLES / "01-explain-a-photo.ipynb", tmp_path, monkeypatch)
    lines = _text(_find(cells, "x = handle.preprocess")).splitlines()
    top5 = [line.rsplit(None, 1)[0].strip() for line in lines if line.strip()]
    assert len(top5) == 5 and top5[0] in {"tabby", "tiger cat", "Egyptian cat"}, top5
    assert "tabby" in top5[:3]  # the photo's own label, among kinds of cat
    layers = _find(cells, "print(handle.stage_layers())")
    assert "blocks.0" in _text(layers) and "bn2" in _text(layers)
    for cell in (layers, _find(cells, "explain.show(")):
        assert _kinds(cell)[-1] >= {"text/html", "image/png", "text/plain"}
    grid = _find(cells, "res = explain.compute_cams")
    assert _kinds(grid) == [{"text/html", "image/png", "text/plain"}]
    assert "CamResult('gradcam', 1 image(s), layers ['bn2'])" in _text(grid)
    agreement = float(_text(_find(cells, "maps = res.maps")).split(":")[-1])
    assert agreement > 0.8  # "nearly the same picture"


@pytest.mark.slow
def test_embeddings_layer_by_layer(tmp_path, monkeypatch):
    cells = _run(EXAMPLES / "02-embeddings-layer-by-layer.ipynb", tmp_path, monkeypatch)
    figure = _find(cells, "emb = explore(")
    assert any("application/vnd.plotly.v1+json" in kinds for kinds in _kinds(figure))
    plot = next(o.data["application/vnd.plotly.v1+json"] for o in figure.outputs if "data" in o)
    assert [a["text"] for a in plot["layout"]["annotations"]] == ["layer1", "layer2", "layer3"]
    table = _text(_find(cells, "emb.metrics.round(3)"))
    assert "layer3" in table and "linear_probe_accuracy" in table
    probes = {}
    for line in _text(_find(cells, "biased = ")).splitlines():
        data, found, rest = line.partition(": linear probe accuracy by layer ")
        if found:
            probes[data.strip()] = ast.literal_eval(rest)
    # without the marker the shortcut model's last layer is near chance (1/6); with it, clean
    assert probes["builtin:shapes"]["layer3"] < 0.5
    assert probes["builtin:shapes:class"]["layer3"] > 0.9


@pytest.mark.slow
def test_find_the_planted_bias(tmp_path, monkeypatch):
    cells = _run(EXAMPLES / "03-find-the-planted-bias.ipynb", tmp_path, monkeypatch)
    accuracy = _text(cells[0])
    assert re.search(
        r"builtin:shapes-biased: accuracy (9\d|100)% on images with the marker", accuracy
    )
    evaluation = _find(cells, "result = evaluate(")
    kinds = _kinds(evaluation)
    assert {"text/html", "text/plain"} <= kinds[0]
    assert sum("application/vnd.plotly.v1+json" in k for k in kinds) == 2  # deletion, insertion
    board = {}
    for line in _text(evaluation).splitlines():
        match = re.match(r"(.+? at layer3|.+?\(baseline\))\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line)
        if match:
            board[match.group(1).strip()] = [float(v) for v in match.groups()[1:]]
    # faithful maps (deletion lower, insertion higher than a random map) that miss the shape
    for method in ("Grad-CAM at layer3", "LayerCAM at layer3", "Eigen-CAM at layer3"):
        deletion, insertion, pointing = board[method]
        assert deletion < board["Random map (baseline)"][0]
        assert insertion > board["Random map (baseline)"][1]
        assert pointing < 25.0
    control = _text(_find(cells, "control = evaluate("))
    assert re.search(r"gradcam\s+layer3\s+pointing_game\s+(0\.9\d*|1\.0+)\s", control), control
    study = _text(_find(cells, "study = shapes_bias_study"))
    assert "builtin:shapes-biased: This model relies on the corner marker" in study
    assert "builtin:shapes: This model looks at the shape" in study
    report = _text(cells[-1])
    assert report.startswith("This model relies on the corner marker, not on the shape.")

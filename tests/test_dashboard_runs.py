"""The Embeddings page opens a saved run (a Parquet run folder) and draws 100,000 points with
WebGL, through Streamlit's AppTest."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from run_checks import synthetic
from streamlit.testing.v1 import AppTest

from embeddings.runs import save_activations

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _figure(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def _array(value) -> np.ndarray:
    """A trace's array from the figure's JSON: a list, or Plotly's typed array
    (``{"dtype", "bdata"}``, base64)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def test_embeddings_page_opens_a_saved_run_of_100k_points(tmp_path, monkeypatch):
    n = 100_000
    acts = synthetic(n)
    save_activations(acts, tmp_path / "run", block_size=25_000, model="synthetic")
    monkeypatch.setenv("GCE_DATA_ROOTS", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"model": "builtin:shapes", "images": "shapes"})
    at.run()
    at.switch_page("views/embeddings.py").run()

    at.text_input(key="emb_run_path").set_value("/etc")
    at.button(key="emb_run_open").click().run()
    assert "outside the folders this dashboard may read" in " ".join(e.value for e in at.error)
    at.text_input(key="emb_run_path").set_value(str(tmp_path / "run"))
    at.button(key="emb_run_open").click().run()
    assert not at.exception and not at.error
    assert any(m.value.startswith(f"**{n:,} images** · 2 layers") for m in at.markdown)

    figure = _figure(at)
    traces = figure["data"]
    assert {t["type"] for t in traces} == {"scattergl"}  # WebGL, whatever the size
    assert sum(len(_array(t["x"])) for t in traces) == n
    assert len(traces) == 10  # one per class, coloured by label
    rows = np.concatenate([_array(t["customdata"]) for t in traces])
    assert sorted(rows.tolist()) == list(range(n))
    # PCA of the last layer keeps the 10 class clusters apart: most of the spread is between
    # classes (the features are class centres plus unit noise).
    xy = [np.stack([_array(t["x"]), _array(t["y"])], axis=1) for t in traces]
    within = np.mean([part.var(axis=0).sum() for part in xy])
    assert np.concatenate(xy).var(axis=0).sum() > 5 * within

    at.number_input(key="emb_run_points").set_value(20_000).run()
    assert sum(len(_array(t["x"])) for t in _figure(at)["data"]) == 20_000
    assert any("20,000 of the run's 100,000 images" in c.value for c in at.caption)
    at.button(key="emb_run_close").click().run()
    assert not at.get("plotly_chart") or "press **Run**" in " ".join(i.value for i in at.info)

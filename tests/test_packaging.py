"""The package as users get it: the core imports without the extras, requirements*.txt install
what pyproject.toml declares, and a wheel installed outside the checkout has its data, its
commands and a working dashboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tomllib
from conftest import ROOT, spawn
from packaging.requirements import Requirement

import explain
from explain.builtin.samples import sample_photos
from explain.cli import COMMANDS

#: Modules the core must not import: the extras' packages (and their heavy dependencies).
NOT_CORE = ("streamlit", "umap", "numba", "pynndescent", "ray", "matplotlib", "IPython")

CORE_ONLY = """
import sys
import explain, embeddings, explain.evaluation
from explain.builtin.shapes import CLASSES, make_sample
from explain.evaluation import figures

handle = explain.load_model("builtin:shapes")
images = [make_sample(CLASSES.index("star"), seed=1, noise=False).image]
res = explain.compute_cams(handle, images, layers=["layer2", "layer3"])
explain.show(res)  # outside a notebook: its text
picture = res.view().png  # the overlay grid (Pillow only)
emb = embeddings.explore(handle, "builtin:shapes", max_images=30, projection="pca",
                         cache_dir=False)
emb.figure()
loaded = sorted(name for name in {m.split(".")[0] for m in sys.modules} if name in NOT_CORE)
print("loaded:", loaded, "star:", res.target_names[0][0], "png:", len(picture) > 1000)
"""


def test_core_library_runs_without_the_extras_imported():
    """``import explain`` / ``embeddings``, a Grad-CAM, its picture and a PCA embedding load
    no Streamlit, UMAP, Ray, matplotlib or IPython."""
    code = f"NOT_CORE = {NOT_CORE!r}\n" + CORE_ONLY
    process = spawn([sys.executable, "-c", code])
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    assert "loaded: [] star: star png: True" in stdout, stdout


# -- requirements*.txt and pyproject.toml say the same ---------------------------------------
def _requirement(line: str) -> str | None:
    """A normalised requirement of a requirements-file line (None for options and blanks)."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    return _normalise(line)


def _normalise(text: str) -> str:
    req = Requirement(text)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    name = re.sub(r"[-_.]+", "-", req.name).lower()
    return f"{name}{extras}{req.specifier}"


def _file(name: str) -> set[str]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return {r for r in map(_requirement, lines) if r is not None}


def test_requirements_files_install_what_pyproject_declares():
    """CI installs from requirements*.txt: the runtime file holds the core dependencies and
    the extras app, embeddings and imagenet (nothing undeclared), the dev file the dev extra;
    the ranges admit torch 2.14.1 and torchvision 0.29.1."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]

    def own(items: list[str]) -> set[str]:  # without the references to the project's extras
        return {_normalise(i) for i in items if not i.startswith(project["name"])}

    core = own(project["dependencies"])
    runtime, dev = _file("requirements.txt"), _file("requirements-dev.txt")
    required = core | own(extras["app"]) | own(extras["embeddings"]) | own(extras["imagenet"])
    declared = core.union(*(own(v) for k, v in extras.items() if k != "dev"))
    assert runtime >= required, required - runtime
    assert runtime <= declared, runtime - declared
    assert dev == own(extras["dev"]), dev ^ own(extras["dev"])
    assert set(extras) >= {"app", "embeddings", "ray", "dev"}
    assert {"streamlit", "umap-learn"}.isdisjoint({Requirement(r).name for r in core})
    assert "ray" in {Requirement(r).name for r in own(extras["ray"])}
    assert "pyarrow" in {Requirement(r).name for r in core}  # run folders, in-process too
    pins = {Requirement(r).name: Requirement(r).specifier for r in core}
    assert "2.14.1" in pins["torch"] and "0.29.1" in pins["torchvision"]
    assert project["scripts"] == {"gradcam-explorer": "explain.cli:console"}


# -- a wheel installed outside the checkout ----------------------------------------------------
#: What the build needs from the checkout (the rest of it must not matter).
BUILD_INPUTS = ("pyproject.toml", "README.md", ".streamlit", "explain", "embeddings", "dashboard")

INSTALLED = """
import json, sys
from pathlib import Path

import explain, embeddings, dashboard
from explain.builtin.samples import sample_photos
from explain.cli.app import app_path

here = Path(sys.prefix)
for module in (explain, embeddings, dashboard):
    assert here in Path(module.__file__).parents, module.__file__  # the wheel, not the checkout
photo = sample_photos()[0]
handle = explain.load_model("builtin:shapes")
res = explain.compute_cams(handle, [photo.path], layers=["layer3"])

# Streamlit reads the settings and theme next to the installed app.py, from any folder.
from streamlit import config

config._main_script_path = str(app_path())
config.get_config_options(force_reparse=True)
theme = config.get_option("theme.primaryColor")
upload = config.get_option("server.maxUploadSize")

from streamlit.testing.v1 import AppTest

at = AppTest.from_file(str(app_path()), default_timeout=300).run()
print(json.dumps({
    "photo": str(photo.path),
    "target": int(res.targets[0]),
    "map_sum": float(res.maps["layer3"].sum()),
    "app": str(app_path()),
    "theme": theme,
    "upload": upload,
    "app_errors": [str(e.value) for e in at.exception],
    "titles": [t.value for t in at.title],
}))
"""


def _venv_with_wheel(tmp_path: Path) -> Path:
    """A fresh virtual environment outside the checkout with the wheel built from this checkout;
    its dependencies (torch included) are read from this environment's packages, never
    installed again."""
    source = tmp_path / "source"
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-q", "-w", wheels, source], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("gradcam_explorer-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q"]
    # Without PYTHONPATH: a checkout on it shows pip this project as installed already.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([*install, "--no-index", wheel], check=True, cwd=tmp_path, env=env)
    # The dependencies: this environment's site-packages after the venv's own (a path in a .pth
    # file; its .pth files, this checkout's editable install among them, are not run).
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_has_its_data_commands_and_dashboard(tmp_path):
    venv = _venv_with_wheel(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = venv / "bin" / "gradcam-explorer"

    # every command's --help, through the console script
    done = _run([command, "--help"], elsewhere)
    assert done.returncode == 0, done.stderr
    assert all(f"  {name}" in done.stdout for name in COMMANDS)
    assert done.stdout.startswith("usage: gradcam-explorer COMMAND")
    for name in COMMANDS:
        done = _run([command, name, "--help"], elsewhere)
        assert done.returncode == 0, (name, done.stderr)
        assert f"usage: gradcam-explorer {name}" in done.stdout, done.stdout
        if name != "app":
            assert "--model SPEC" in done.stdout  # the shared model options

    # a Grad-CAM in Python and from the command line, on a photo shipped in the wheel
    done = _run([venv / "bin" / "python", "-c", INSTALLED], elsewhere)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    photo = Path(found["photo"])
    assert venv in photo.parents and photo.name == sample_photos()[0].path.name
    out = tmp_path / "maps"
    done = _run([command, "explain", photo, "--model", "builtin:shapes", "--layers", "layer3",
                 "--out", out, "-q"], elsewhere)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    stem = photo.stem
    saved = np.load(out / f"{stem}__gradcam__layer3.npy")

    # the same numbers as this checkout computes
    handle = explain.load_model("builtin:shapes")
    here = explain.compute_cams(handle, [sample_photos()[0].path], layers=["layer3"])
    assert found["target"] == int(here.targets[0])
    assert summary["images"][0]["predictions"][0]["label"] == handle.labels[here.targets[0]]
    np.testing.assert_allclose(found["map_sum"], float(here.maps["layer3"].sum()), rtol=1e-5)
    np.testing.assert_allclose(saved, here.maps["layer3"][0], atol=1e-5)

    # the dashboard: its settings and theme installed next to it, and its first page runs
    app = Path(found["app"])
    assert venv in app.parents
    installed_config = app.parent / ".streamlit" / "config.toml"
    assert installed_config.read_bytes() == (ROOT / ".streamlit" / "config.toml").read_bytes()
    assert (found["theme"], found["upload"]) == ("#d6336c", 200)
    assert found["app_errors"] == [] and found["titles"], found


def test_installed_layout_keeps_one_streamlit_config():
    """The dashboard's .streamlit folder (shipped in the wheel) is the checkout's own, not a
    copy that could drift from it."""
    shipped = ROOT / "dashboard" / ".streamlit" / "config.toml"
    assert shipped.is_symlink()
    assert shipped.resolve() == (ROOT / ".streamlit" / "config.toml").resolve()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert ".streamlit/config.toml" in package_data["package-data"]["dashboard"]


def test_app_command_says_what_to_install_without_streamlit(monkeypatch, capsys):
    import importlib.util

    from explain.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name)
    )
    assert main(["app", "--server.port", "8999"]) == 2
    err = capsys.readouterr().err
    assert err == textwrap.dedent("""\
        error: The dashboard needs Streamlit, which is not installed. Try: pip install "gradcam-explorer[app]"
    """)  # fmt: skip

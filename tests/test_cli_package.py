"""The command-line package (``explain.cli``): ``from explain import evaluate`` stays the function
whatever is imported first, the umbrella ``main`` dispatches to every command, the module paths
README documents run, and ``app`` starts the dashboard."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pkgutil
import sys
import textwrap

import pandas as pd
import pytest
from conftest import ROOT, spawn
from PIL import Image

import explain
from explain.builtin.shapes import CLASSES, make_sample
from explain.cli import COMMANDS, main
from explain.cli.app import app_path, streamlit_command

#: Imports the command lines first, then checks the lazy library names.
CLI_FIRST = """
import importlib, inspect
for name in ("explain.cli", "explain.cli.evaluate", "explain.cli.explain",
             "explain.cli.embeddings", "explain.cli.app", "explain.evaluation.__main__",
             "explain.__main__", "embeddings.__main__"):
    importlib.import_module(name)
from explain import evaluate, find_bias
import explain, explain.evaluation
assert inspect.isfunction(evaluate) and evaluate is explain.evaluation.evaluate, evaluate
assert inspect.isfunction(find_bias) and find_bias is explain.evaluation.find_bias, find_bias
assert explain.evaluate is evaluate and explain.find_bias is find_bias
assert "embeddings" in __import__("sys").modules  # embeddings.__main__ was imported
print("ok")
"""
#: Reads the lazy names first, then imports the command lines, then reads them again.
LIBRARY_FIRST = """
import importlib, inspect, sys
import explain
before = explain.evaluate
assert inspect.isfunction(before), before
import explain.cli, explain.cli.embeddings
assert "embeddings" not in sys.modules  # explain never imports the embeddings package itself
for name in ("explain.cli.evaluate", "explain.cli.explain", "explain.evaluation.__main__"):
    importlib.import_module(name)
from explain import evaluate, find_bias
assert evaluate is before and inspect.isfunction(find_bias), (evaluate, find_bias)
print("ok")
"""


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_no_submodule_can_shadow_a_library_name():
    """A submodule of ``explain`` named like one of its attributes would replace the attribute
    once imported (``explain/evaluate.py`` once did); importing every submodule leaves every
    library name what it was."""
    import importlib

    before = {name: getattr(explain, name) for name in explain.__all__}
    submodules = {info.name for info in pkgutil.iter_modules(explain.__path__)}
    assert {"cli", "evaluation", "evaluate"} <= submodules
    for name in sorted(submodules - {"__main__"}):
        importlib.import_module(f"explain.{name}")
    changed = [n for n in explain.__all__ if getattr(explain, n) is not before[n]]
    assert not changed, changed
    assert explain.evaluate is explain.evaluation.evaluate


def test_evaluate_is_the_function_in_every_import_order(tmp_path):
    out = tmp_path / "eval"
    evaluation = ["--model", "builtin:shapes", "--metrics", "deletion", "--steps", "3"]
    evaluation += ["--max-images", "4", "--out", out, "-q"]
    procs = {  # at once: most of the time is each interpreter importing torch
        "cli first": spawn([sys.executable, "-c", textwrap.dedent(CLI_FIRST)]),
        "library first": spawn([sys.executable, "-c", textwrap.dedent(LIBRARY_FIRST)]),
        "module path": spawn([sys.executable, "-m", "explain.evaluation", *evaluation]),
        "old module path": spawn([sys.executable, "-m", "explain.evaluate", "--help"]),
    }
    results = {name: (p.communicate(timeout=300), p.returncode) for name, p in procs.items()}
    for name in ("cli first", "library first"):
        (stdout, stderr), code = results[name]
        assert code == 0 and stdout.strip() == "ok", (name, stderr)
    (stdout, stderr), code = results["module path"]
    assert code == 0 and stdout == "", stderr
    (stdout, stderr), code = results["old module path"]
    assert code == 0 and "--annotations" in stdout and "--model" in stdout, stderr
    table = pd.read_csv(out / "table.csv")
    assert len(table[table.method == "gradcam"]) == 4 and set(table.metric) == {"deletion"}


def test_dispatcher_lists_commands_and_rejects_unknown_ones():
    code, stdout, _ = run_main(["--help"])
    assert code == 0 and all(f"  {name}" in stdout for name in COMMANDS)
    assert set(COMMANDS) == {"explain", "embeddings", "evaluate", "app"}
    code, stdout, stderr = run_main(["explian", "x.png"])
    assert code == 2 and stdout == ""
    assert (
        stderr
        == "error: Unknown command 'explian'. Try: use one of explain, embeddings, evaluate, app.\n"
    )
    code, _, stderr = run_main([])
    assert code == 2 and "usage:" in stderr
    code, stdout, _ = run_main(["embeddings", "--help"])
    assert code == 0 and "python -m explain.cli embeddings" in stdout and "--model SPEC" in stdout


def test_dispatcher_gives_each_command_its_exit_status(tmp_path):
    for command in (["evaluate"], ["embeddings", tmp_path], ["explain", tmp_path]):
        argv = [*command, "--model", "nosuchsource:model", "--out", tmp_path / "out"]
        code, stdout, stderr = run_main(argv)
        assert code == 2 and stdout == "" and stderr.count("\n") == 1, (command, stderr)
        assert stderr.startswith("error: Unknown model source") and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_dispatcher_runs_the_explain_command(tmp_path):
    picture = tmp_path / "star.png"
    Image.fromarray(make_sample(CLASSES.index("star"), seed=1, noise=False).image).save(picture)
    for name in ("explain", "maps"):
        out = tmp_path / name
        code, stdout, stderr = run_main([name, picture, "--model", "builtin:shapes", "--out", out])
        assert code == 0, stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["command"].startswith(f"python -m explain.cli explain {picture}")
        assert summary["images"][0]["predictions"][0]["label"] == "star"
        assert (out / "star__gradcam__layer3.npy").is_file() and "Explained 1 image(s)" in stdout
    code, _, stderr = run_main(["explain", picture, "--model", "builtin:shapes", "--out", tmp_path,
                                "--layers", "layer9"])  # fmt: skip
    assert code == 2 and stderr.startswith("error: ") and "has no layer 'layer9'" in stderr


@pytest.mark.skipif(os.name != "posix", reason="the launcher replaces itself (os.execv) on POSIX")
def test_app_finds_the_dashboard_and_runs_streamlit(monkeypatch):
    assert app_path() == ROOT / "dashboard" / "app.py"
    command = streamlit_command(["--server.port", "8999"])
    assert command == [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                       "--server.port", "8999"]  # fmt: skip

    class Replaced(Exception):
        """os.execve does not return: the process has become Streamlit."""

    def execve(path, args, env):
        raise Replaced(path, args, env)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.delenv("GCE_MODEL", raising=False)
    with pytest.raises(Replaced) as replaced:
        main(["app", "--server.port", "8999", "--server.headless", "true"])
    path, args, env = replaced.value.args
    assert (path, args) == (sys.executable, [*command, "--server.headless", "true"])
    assert "GCE_MODEL" not in env and env["PATH"] == os.environ["PATH"]

    # --model and --weights are ours: they reach the dashboard through its environment.
    weights = ROOT / "pyproject.toml"  # any existing file: the dashboard is what loads it
    with pytest.raises(Replaced) as replaced:
        main(["app", "--model", "torchvision:resnet18", "--weights", str(weights),
              "--server.port", "8999"])  # fmt: skip
    path, args, env = replaced.value.args
    assert args == command
    assert (env["GCE_MODEL"], env["GCE_WEIGHTS"]) == ("torchvision:resnet18", str(weights))
    with pytest.raises(Replaced) as replaced:
        main(["app", "--model", "builtin:shapes", "--weights", "random"])
    assert replaced.value.args[2]["GCE_WEIGHTS"] == "random"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--weights", "random"], "error: --weights needs --model"),
        (["--model", "resnet50"], "error: --model 'resnet50' names no model source."),
        (["--model", "nosuch:thing"], "error: --model 'nosuch:thing' names no model source."),
        (["--model", "torchvision:resnet18", "--weights", "missing.pt"],
         "error: --weights missing.pt: no such file."),
    ],
)  # fmt: skip
def test_app_model_options_fail_clearly_before_starting(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("Streamlit must not start"))
    assert main(["app", *argv]) == 2
    assert capsys.readouterr().err.startswith(message)


@pytest.mark.slow
def test_app_command_serves_the_dashboard():
    from dashboard.serve import free_port, wait_ready

    port = free_port()
    options = ["--server.port", str(port), "--server.headless", "true"]
    options += ["--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
    command = [sys.executable, "-m", "explain.cli", "app", *options]
    process = spawn(command, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    try:
        assert wait_ready(port, process).endswith(f":{port}")
    finally:
        process.terminate()  # the launcher became Streamlit: this stops the server itself
        process.communicate(timeout=30)

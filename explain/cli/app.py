"""The ``app`` command: start the Streamlit dashboard (``streamlit run`` on its ``app.py``).

::

    python -m explain.cli app [STREAMLIT OPTIONS]      # e.g. --server.port 8502
    python -m explain.cli app --model torchvision:resnet50 --weights my_resnet50.pt

``--model`` (and ``--weights``) choose the model new sessions start on instead of the built-in
one; the dashboard reads them from the environment (``GCE_MODEL``, ``GCE_WEIGHTS``) and falls
back to the built-in model, with the reason on screen, when they do not load.

The dashboard is found through the installed ``dashboard`` package (``pip install
"gradcam-explorer[app]"`` installs it with Streamlit) without importing it: ``explain`` never
imports the dashboard. Streamlit reads the dashboard's settings and theme from the
``.streamlit`` folder next to its ``app.py``, wherever the package is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ExplainError
from .command import run_command

PROG = "python -m explain.cli app"


def app_path() -> Path:
    """The dashboard's Streamlit script (``dashboard/app.py`` of the installed package).

    Raises:
        ExplainError: no ``dashboard`` package with an ``app.py`` can be found.
    """
    spec = importlib.util.find_spec("dashboard")  # finds the package without running it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "app.py"
        if path.is_file():
            return path
    raise ExplainError(
        "The dashboard is not installed (no dashboard/app.py on the Python path).",
        hint='pip install "gradcam-explorer[app]" (or `pip install -e .` in a checkout).',
    )


def streamlit_command(options: Sequence[str] = ()) -> list[str]:
    """``python -m streamlit run <app.py> OPTIONS`` with this interpreter.

    Raises:
        ExplainError: Streamlit is not installed, or the dashboard cannot be found.
    """
    if importlib.util.find_spec("streamlit") is None:
        raise ExplainError(
            "The dashboard needs Streamlit, which is not installed.",
            hint='pip install "gradcam-explorer[app]"',
        )
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), *options]


#: The environment variables the dashboard reads its starting model from.
MODEL_ENV, WEIGHTS_ENV = "GCE_MODEL", "GCE_WEIGHTS"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``app`` argument parser: ``--model`` and ``--weights``; every other option is passed
    on to ``streamlit run``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [--model SPEC [--weights FILE|random]] [STREAMLIT OPTIONS]",
        description="Start the Grad-CAM Explorer dashboard in the browser. Other options are "
        "passed on to `streamlit run`.",
        epilog=f"Example: {prog} --model torchvision:resnet50 --server.port 8502",
        allow_abbrev=False,  # Streamlit's own options must never be read as abbreviations
    )
    parser.add_argument(
        "--model",
        metavar="SPEC",
        help="the model new sessions start on, as for `explain --model` (default: the "
        "built-in ImageNet model)",
    )
    parser.add_argument(
        "--weights",
        metavar="FILE|random",
        help="with --model: a checkpoint file, or `random` (default: the source's pretrained "
        "weights)",
    )
    return parser


def model_environment(model: str | None, weights: str | None) -> dict[str, str]:
    """The environment variables that start the dashboard's sessions on ``model``.

    Raises:
        ExplainError: ``--weights`` without ``--model``, a spec of no known source, or a
            weights file that does not exist.
    """
    if model is None:
        if weights is not None:
            raise ExplainError("--weights needs --model (the model the weights are for).")
        return {}
    from ..models import SOURCES, find_source

    spec = model.strip()
    source = spec.partition(":")[0]
    if ":" not in spec or find_source(source) is None:
        raise ExplainError(
            f"--model {model!r} names no model source.",
            hint=f"write SOURCE:NAME with a source among {', '.join(s.prefix for s in SOURCES)}, e.g. "
            "torchvision:resnet50.",
        )
    env = {MODEL_ENV: spec}
    if weights is not None and weights != "random":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ExplainError(f"--weights {weights}: no such file.")
        weights = str(path.resolve())
    if weights is not None:
        env[WEIGHTS_ENV] = weights
    return env


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run ``streamlit run`` on the dashboard (on POSIX this process becomes Streamlit); returns
    the exit status of a usage error, or Streamlit's where it runs as a child process."""
    return run_command(build_parser(prog), argv, _serve, pass_on=True)


def _serve(args: argparse.Namespace) -> int:
    env = {**os.environ, **model_environment(args.model, args.weights)}
    command = streamlit_command(args.passed_on)
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        # This process becomes Streamlit: Ctrl-C, SIGTERM and the exit status are its own, and
        # no server is left behind when the launcher is stopped.
        os.execve(command[0], command, env)
    return subprocess.call(command, env=env)

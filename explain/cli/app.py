"""The ``app`` command: start the Streamlit dashboard (``streamlit run`` on its ``app.py``).

::

    python -m explain.cli app [STREAMLIT OPTIONS]      # e.g. --server.port 8502

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


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``app`` argument parser: every option is passed on to ``streamlit run``."""
    return argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [STREAMLIT OPTIONS]",
        description="Start the Grad-CAM Explorer dashboard in the browser. Options are passed "
        "on to `streamlit run`.",
        epilog=f"Example: {prog} --server.port 8502 --server.headless true",
        allow_abbrev=False,  # Streamlit's own options must never be read as abbreviations
    )


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run ``streamlit run`` on the dashboard (on POSIX this process becomes Streamlit); returns
    the exit status of a usage error, or Streamlit's where it runs as a child process."""
    return run_command(build_parser(prog), argv, _serve, pass_on=True)


def _serve(args: argparse.Namespace) -> int:
    command = streamlit_command(args.passed_on)
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        # This process becomes Streamlit: Ctrl-C, SIGTERM and the exit status are its own, and
        # no server is left behind when the launcher is stopped.
        os.execv(command[0], command)
    return subprocess.call(command)

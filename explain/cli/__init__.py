"""The command lines of Grad-CAM Explorer: one package, one set of shared options.

::

    python -m explain.cli explain IMAGE... --model SPEC --out DIR   # python -m explain
    python -m explain.cli embeddings DATA --model SPEC --out DIR    # python -m embeddings
    python -m explain.cli evaluate --model SPEC --data DATA --out D # python -m explain.evaluation
    python -m explain.cli app [STREAMLIT OPTIONS]                  # the dashboard

An installed package has the same as one command, ``gradcam-explorer COMMAND ...``
(:func:`console`).

``options.py`` holds the arguments every command shares (the model options, lists of layers
and methods, numbers, the output folder); ``command.py`` what every command does around its
work (one-line errors, exit codes, the output folder, progress bars); each command has its
own module (``explain.py``, ``embeddings.py``, ``evaluate.py``, ``app.py``). :func:`main`
dispatches to them; a command's module is imported only when it runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from ..errors import ExplainError
from .command import OK, USAGE, error_line

PROG = "python -m explain.cli"
#: command -> (module in this package, one-line summary).
COMMANDS = {
    "explain": ("explain", "class-activation maps of image files: overlays, maps, summary.json"),
    "embeddings": ("embeddings", "per-layer embeddings of a dataset: features, projections"),
    "evaluate": ("evaluate", "how far CAM methods can be trusted: faithfulness, localisation"),
    "app": ("app", "start the dashboard (streamlit run)"),
}
#: Other names of commands.
ALIASES = {"maps": "explain", "evaluation": "evaluate", "dashboard": "app"}


def usage(prog: str = PROG) -> str:
    """The list of commands."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: {prog} COMMAND [OPTIONS]  ({prog} COMMAND --help for its options)", ""]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run ``COMMAND [OPTIONS]`` (see the module docstring); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(usage(prog))
        return OK
    if not argv:
        print(usage(prog), file=sys.stderr)
        return USAGE
    name = ALIASES.get(argv[0], argv[0])
    if name not in COMMANDS:
        error = ExplainError(
            f"Unknown command {argv[0]!r}.", hint=f"use one of {', '.join(COMMANDS)}."
        )
        print(error_line(error), file=sys.stderr)
        return USAGE
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    return module.main(argv[1:], prog=f"{prog} {name}")


def console() -> int:
    """The ``gradcam-explorer`` command that ``pip install`` puts on the PATH."""
    return main(prog="gradcam-explorer")


__all__ = ["ALIASES", "COMMANDS", "console", "main", "usage"]

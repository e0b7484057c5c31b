"""What every command does around its work: parse the arguments, turn errors into one line on
stderr and an exit status, make the output folder, show progress.

Exit status of every command: :data:`OK` (0) on success, :data:`NOTHING_DONE` (1) when the
command ran but produced nothing (``python -m explain`` when no image could be read),
:data:`USAGE` (2) for usage errors (an unknown model, layer, method or class; bad options; a
dataset that cannot be read; a folder that cannot be written) and :data:`INTERRUPTED` (130)
after Ctrl-C. Errors print one line (``error: <what> Try: <hint>``), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import ExplainError
from ..progress import Progress, tqdm_progress

OK = 0
NOTHING_DONE = 1
USAGE = 2
INTERRUPTED = 130

_UNSAFE = re.compile(r"[^\w.+=-]+")


def error_line(exc: BaseException) -> str:
    """``"error: <message> Try: <hint>"`` on one line, for stderr."""
    return "error: " + " ".join(str(exc).split())


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    work: Callable[[argparse.Namespace], int],
    *,
    pass_on: bool = False,
) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run ``work(args)``; returns the exit status.

    argparse's own messages (``usage: ...``) keep their status (2, or 0 for ``--help``); an
    :class:`~explain.errors.ExplainError` or ``OSError`` prints :func:`error_line` and gives
    :data:`USAGE`; Ctrl-C prints ``interrupted`` and gives :data:`INTERRUPTED`. ``work`` may
    record what it had done before re-raising. With ``pass_on``, arguments the parser does not
    know are kept in ``args.passed_on`` (for a command that hands them to another program).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if pass_on:
            args, args.passed_on = parser.parse_known_args(argv)
        else:
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message (2) or the help (0)
        return exc.code if isinstance(exc.code, int) else USAGE
    try:
        return work(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except (ExplainError, OSError) as exc:
        print(error_line(exc), file=sys.stderr)
        return USAGE


def prepare_out(out: Path) -> Path:
    """Create the output folder (and its parents); a clear error when it cannot be one."""
    if out.exists() and not out.is_dir():
        raise ExplainError(f"--out {out} is a file, not a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExplainError(f"Cannot create the output folder {out}: {exc}") from exc
    return out


def safe_part(text: str) -> str:
    """A piece of a file name: anything but letters, digits and ``. _ - + =`` becomes ``_``."""
    return _UNSAFE.sub("_", text).strip() or "_"


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool, unit: str = "it") -> Iterator[Progress]:
    """A :data:`~explain.progress.Progress` shown as a tqdm bar on stderr (none when ``quiet``
    or when stderr is not a terminal)."""
    with tqdm_progress(description, disable=True if quiet else None, unit=unit) as report:
        yield report


def say(text: str) -> None:
    """One line on stderr that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)

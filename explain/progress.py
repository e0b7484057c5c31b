"""One progress-callback type for every long computation, and adapters to show it.

Long calls (``compute_cams`` with a perturbation method, ``evaluate``, ``collect_activations``,
``project_layers``, ``layer_metrics``) accept ``progress(done, total, message)``. The command
lines show it with :func:`tqdm_progress`; the dashboard has a Streamlit adapter of its own.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

#: ``progress(done, total, message)``: ``done`` of ``total`` units finished; ``message`` says
#: what is running (may be empty).
Progress = Callable[[int, int, str], None]

#: Longest message a tqdm bar shows (longer ones are cut, so the bar stays on one line).
BAR_MESSAGE_CHARS = 48


def notify(progress: Progress | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` when there is one."""
    if progress is not None:
        progress(int(done), int(total), message)


def within(progress: Progress | None, start: float, stop: float, scale: int = 1000) -> Progress:
    """A callback for one step of a larger job: its ``done / total`` is mapped onto the
    fraction ``[start, stop]`` of the whole, reported in ``scale`` units."""

    def report(done: int, total: int, message: str = "") -> None:
        fraction = start + (stop - start) * (done / total if total else 1.0)
        notify(progress, round(fraction * scale), scale, message)

    return report


def as_progress(callback: Callable[..., Any] | None) -> Progress | None:
    """``callback`` as a :data:`Progress`.

    Transitional: the dashboard still passes ``progress(done, total)`` callbacks to
    ``collect_activations`` and ``project_layers``; a callable that takes exactly two
    positional arguments is wrapped so that the message is dropped. Remove once every caller
    passes three arguments.
    """
    if callback is None or _positional_arity(callback) != 2:
        return callback

    def report(done: int, total: int, message: str = "") -> None:
        callback(done, total)

    return report


def _positional_arity(callback: Callable[..., Any]) -> int | None:
    """How many positional arguments ``callback`` takes (``None``: any number, or unknown)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: call it as it is
        return None
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(kind in positional for kind in kinds)


@contextlib.contextmanager
def tqdm_progress(
    description: str = "", *, disable: bool | None = None, unit: str = "it"
) -> Iterator[Progress]:
    """A :data:`Progress` that drives a ``tqdm`` bar (on stderr), closed on exit.

    The message of each call becomes the bar's description (cut to
    :data:`BAR_MESSAGE_CHARS`). ``disable=None`` hides the bar when stderr is not a terminal.
    """
    from tqdm.auto import tqdm

    bar = tqdm(
        total=0, desc=description, disable=disable, leave=False, dynamic_ncols=True, unit=unit
    )

    def report(done: int, total: int, message: str = "") -> None:
        if bar.total != total:
            bar.total = total
        if message:
            bar.set_description_str(message[:BAR_MESSAGE_CHARS], refresh=False)
        bar.n = done
        bar.refresh()

    try:
        yield report
    finally:
        bar.close()


__all__ = ["Progress", "as_progress", "notify", "tqdm_progress", "within"]

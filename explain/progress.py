"""One progress-callback type for every long computation, and adapters to show it.

Long calls (``compute_cams`` with a perturbation method, ``evaluate``, ``collect_activations``,
``project_layers``, ``layer_metrics``) accept ``progress(done, total, message)``. The command
lines show it with :func:`tqdm_progress`; the dashboard has a Streamlit adapter of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

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


__all__ = ["Progress", "notify", "tqdm_progress", "within"]

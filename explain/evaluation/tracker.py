"""One progress count over the steps of an evaluation: each step (the maps of a method, one
metric group on one map, the randomisation check) gets a weight in rough work units, and its
own ``progress(done, total)`` is mapped onto its share of the whole."""

from __future__ import annotations

from ..progress import Progress


class StepTracker:
    """Maps the progress of each step onto one overall count of work units."""

    def __init__(self, progress: Progress | None, total: float):
        self.progress = progress
        self.total = max(1.0, float(total))
        self.done = 0.0

    def _emit(self, done: float, message: str) -> None:
        if self.progress is not None:
            self.progress(int(min(done, self.total)), int(self.total), message)

    def step(self, weight: float, message: str) -> Progress:
        """A callback for one step of ``weight`` units; call :meth:`finish` after it."""
        base = self.done

        def inner(done: int, todo: int, _msg: str = "") -> None:
            self._emit(base + weight * done / max(todo, 1), message)

        self._pending = (base + weight, message)
        self._emit(base, message)
        return inner

    def finish(self) -> None:
        self.done, message = self._pending
        self._emit(self.done, message)

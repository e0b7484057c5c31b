"""Results shared by every browser session: loaded models, maps, predictions, model views.

Nothing here touches a Streamlit element. Maps are kept in a plain, thread-safe store instead
of ``st.cache_data``: a cached function that draws a progress bar cannot be replayed
(``CacheReplayClosureError``), and the Present page's download builds slides on a thread of
its own, where no script context exists. The progress callback is used only when a result is
computed, so the first run shows progress and a repeat is served at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from explain import METHOD_INFO, ExplainError, ModelHandle, compute_cams
from explain.cams import CamResult
from explain.progress import Progress

from .sources import Picture

#: Bytes of maps kept for all sessions together (least recently used dropped first).
MAX_BYTES = 768 * 2**20


class ResultStore:
    """A least-recently-used map ``key -> value`` bounded by the values' size in bytes."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The stored value of ``key``, or ``compute()`` stored and returned (computed outside
        the lock: a slow map never blocks another session's cached one)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = compute()
        size = _nbytes(value)
        with self._lock:
            if key not in self._items:
                self._items[key] = (value, size)
                self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value

    def peek(self, key: Hashable) -> Any:
        """The stored value of ``key`` (now the most recent), or None; computes nothing."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, CamResult):
        arrays = [*value.maps.values(), *value.raw.values(), *value.pixels.values(), value.probs]
        return int(sum(a.nbytes for a in arrays))
    return 1024


_STORE = ResultStore()


def store() -> ResultStore:
    """The one store of this server process (a module global: usable from any thread)."""
    return _STORE


def cams(
    model_key: str,
    handle: ModelHandle,
    picture: Picture,
    method: str,
    layers: tuple[str, ...],
    targets: Any = None,
    *,
    max_channels: int | None = None,
    progress: Progress | None = None,
) -> CamResult:
    """Maps of one picture, computed once per model, picture, method, layers, targets and
    ``max_channels``.

    Args:
        model_key: the model's identity (the store's key, with the picture's).
        targets: as for :func:`explain.compute_cams` (must be hashable); ``None``: top class.
        max_channels: perturbation methods: perturb only this many channels (approximate).
        progress: ``progress(done, total, message)``, called only while computing.

    Raises:
        ExplainError: the method cannot run here (any failure of the computation becomes one,
            with its cause: a page shows it and goes on).
    """
    key = ("cams", model_key, picture.key, method, tuple(layers), targets, max_channels)

    def compute() -> CamResult:
        try:
            return compute_cams(
                handle,
                [picture.pixels],
                layers=list(layers),
                method=method,
                targets=targets,
                max_channels=max_channels,
                progress=progress,
            )
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # never a traceback
            title = METHOD_INFO[method].title if method in METHOD_INFO else method
            raise ExplainError(
                f"{title} failed on {handle.name} at {', '.join(layers)}: "
                f"{type(exc).__name__}: {exc}",
                hint="try another method or layer; the other pages keep working.",
            ) from exc

    return store().get(key, compute)


def predict(model_key: str, handle: ModelHandle, picture: Picture) -> np.ndarray:
    """Class probabilities ``(num_classes,)`` float32 of one picture."""
    return store().get(
        ("predict", model_key, picture.key), lambda: handle.predict([picture.pixels])[0]
    )


def known_probs(model_key: str, picture: Picture) -> np.ndarray | None:
    """The stored probabilities ``(num_classes,)`` of one picture, or None (nothing is run)."""
    return store().peek(("predict", model_key, picture.key))


def remember_probs(model_key: str, picture: Picture, probs: np.ndarray) -> np.ndarray:
    """Store probabilities that came with a map (they need no pass of their own); return the
    stored ones."""
    return store().get(("predict", model_key, picture.key), lambda: np.asarray(probs))


def model_view(model_key: str, handle: ModelHandle, picture: Picture) -> np.ndarray:
    """The picture resized / cropped as the model sees it, ``(H, W, 3)`` uint8."""
    return store().get(
        ("view", model_key, picture.key), lambda: handle.prepare([picture.pixels])[0]
    )

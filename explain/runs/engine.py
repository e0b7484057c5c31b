"""Engines: who computes the blocks of a run. ``local`` runs them one after another in this
process with the model already loaded; ``ray`` (:mod:`explain.runs.ray_engine`) hands them to a
pool of Ray actors that each load the model once. Both write the same block files, so a run
started by one can be finished by the other.

A piece of dataset-level work is a :class:`BlockTask`: a picklable description (model recipe,
dataset, options; never a live model) with ``run_block(handle, block)`` that returns the
block's rows. :func:`run_blocks` computes the blocks a run folder is missing and reports
progress in items.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..errors import EngineError
from ..progress import Progress, notify
from .folder import Block, RunFolder

#: Engine names accepted by ``engine=`` and ``--engine``.
ENGINES = ("local", "ray")


class BlockTask(Protocol):
    """What a worker needs to compute any block of a run (picklable; no live model).

    Attributes:
        recipe: how a worker loads the model (:class:`~explain.models.recipe.ModelRecipe`).
        fingerprint: the driver's ``handle.fingerprint``; a worker whose model differs stops.
    """

    recipe: Any
    fingerprint: str

    def run_block(self, handle: Any, block: Block) -> tuple[Any, dict[str, Any]]:
        """The rows of ``block`` (a ``pyarrow.Table``) and its metadata (JSON-able)."""
        ...


@dataclass(frozen=True)
class BlockDone:
    """One finished block, as its worker reports it.

    Attributes:
        index: the block; rows: rows written; seconds: compute time in the worker (reading,
        model, writing); worker: ``host:pid``; device: the model's device there;
        started, finished: when the worker began and ended it (seconds since the epoch).
    """

    index: int
    rows: int
    seconds: float
    worker: str = ""
    device: str = ""
    started: float = 0.0
    finished: float = 0.0


@dataclass
class RunStats:
    """What one call of :func:`run_blocks` did.

    Attributes:
        engine: ``"local"`` or ``"ray"``.
        blocks: blocks in the run; computed: blocks computed by this call; reused: blocks
            found already written (an earlier, interrupted call).
        rows: rows written by this call.
        seconds: wall time of this call; block_seconds: compute time of each computed block
            in its worker; block_spans: ``[worker, started, finished]`` of each (epoch seconds).
        workers: processes that computed blocks; devices: their devices.
    """

    engine: str
    blocks: int
    computed: int = 0
    reused: int = 0
    rows: int = 0
    seconds: float = 0.0
    block_seconds: list[float] = field(default_factory=list)
    block_spans: list[list[Any]] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["block_seconds"] = [round(s, 4) for s in self.block_seconds]
        out["seconds"] = round(self.seconds, 3)
        return out


def worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def compute_block(task: BlockTask, handle: Any, folder: RunFolder, block: Block) -> BlockDone:
    """Compute one block with a loaded model and write its file."""
    started, start = time.time(), time.perf_counter()
    table, meta = task.run_block(handle, block)
    folder.write_block(block, table, meta)
    return BlockDone(
        block.index,
        int(table.num_rows),
        time.perf_counter() - start,
        worker_name(),
        str(getattr(handle, "device", "")),
        started,
        time.time(),
    )


class Engine:
    """Computes blocks of a run; subclasses say how."""

    name = "engine"

    def execute(
        self,
        task: BlockTask,
        folder: RunFolder,
        blocks: Sequence[Block],
        handle: Any,
        done: Callable[[BlockDone], None],
    ) -> None:
        """Compute ``blocks`` (write their files), calling ``done`` after each."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def check_model(self, handle: Any) -> None:
        """Before any work: workers load the model again, so it needs a spec (a clear
        :class:`~explain.errors.ModelLoadError` for a model given as an object)."""
        from ..models.recipe import recipe_of

        recipe_of(handle)

    def recipe_for(self, handle: Any, folder: RunFolder) -> Any:
        """How this engine's workers load the model (:func:`worker_recipe`)."""
        return worker_recipe(handle, folder)


class LocalEngine(Engine):
    """In this process, one block after another, with the caller's loaded model."""

    name = "local"

    def check_model(self, handle: Any) -> None:
        """Any model will do: the caller's loaded one is used."""

    def recipe_for(self, handle: Any, folder: RunFolder) -> Any:
        return handle.recipe

    def execute(
        self,
        task: BlockTask,
        folder: RunFolder,
        blocks: Sequence[Block],
        handle: Any,
        done: Callable[[BlockDone], None],
    ) -> None:
        for block in blocks:
            done(compute_block(task, handle, folder, block))

    def describe(self) -> str:
        return "local (in this process)"


def worker_recipe(handle: Any, folder: RunFolder) -> Any:
    """How another process loads ``handle``'s model: its recipe, with randomly initialised
    weights (``weights=None``) first saved to ``<run>/model/weights.pth`` so that every worker
    gets the driver's weights, not a random draw of its own.

    Raises:
        ModelLoadError: a model given as an object (no spec to load it by).
    """
    import dataclasses

    import torch

    from ..models.recipe import recipe_of

    recipe = recipe_of(handle)
    if recipe.weights is not None:
        return recipe
    path = folder.path / "model" / "weights.pth"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        state = {k: v.detach().cpu() for k, v in handle.model.state_dict().items()}
        torch.save(state, tmp)
        os.replace(tmp, path)
    return dataclasses.replace(recipe, weights=str(path))


def resolve_engine(
    engine: str | Engine | None = None,
    *,
    address: str | None = None,
    num_workers: int | None = None,
) -> Engine:
    """An :class:`Engine` from a name (``None``/``"local"``, ``"ray"``) or an engine object.

    ``address`` or ``num_workers`` without an engine name mean Ray.

    Raises:
        EngineError: an unknown name, or Ray options given with ``engine="local"``.
    """
    if isinstance(engine, Engine):
        return engine
    name = (engine or ("ray" if address or num_workers else "local")).strip().lower()
    if name in ("local", "in-process", "inprocess"):
        if address or num_workers:
            raise EngineError(
                "address and num_workers are options of the Ray engine, not of 'local'.",
                hint="use engine='ray' (--engine ray) with them.",
            )
        return LocalEngine()
    if name == "ray":
        from .ray_engine import RayEngine

        return RayEngine(address=address, num_workers=num_workers)
    raise EngineError(f"Unknown engine {engine!r}.", hint=f"use one of {', '.join(ENGINES)}.")


def run_blocks(
    engine: Engine,
    task: BlockTask,
    folder: RunFolder,
    handle: Any,
    progress: Progress | None = None,
    message: str = "",
) -> RunStats:
    """Compute the blocks ``folder`` is missing with ``engine``; ``progress`` counts items.

    ``run.json`` then records ``status`` (``"complete"``) and this call's :class:`RunStats`
    under ``last_run``. An interrupted call leaves every finished block on disk.
    """
    start = time.perf_counter()
    todo = folder.missing()
    blocks = folder.blocks
    total = sum(b.size for b in blocks)
    sizes = {b.index: b.size for b in blocks}
    stats = RunStats(engine.name, len(blocks), reused=len(blocks) - len(todo))
    items = total - sum(b.size for b in todo)
    notify(progress, items, total, message)

    def done(report: BlockDone) -> None:
        nonlocal items
        items += sizes[report.index]
        stats.computed += 1
        stats.rows += report.rows
        stats.block_seconds.append(report.seconds)
        stats.block_spans.append([report.worker, report.started, report.finished])
        if report.worker and report.worker not in stats.workers:
            stats.workers.append(report.worker)
        if report.device and report.device not in stats.devices:
            stats.devices.append(report.device)
        where = f" ({report.worker}, {report.device})" if engine.name != "local" else ""
        notify(progress, items, total, f"{message}{where}")

    folder.update(status="running", engine=engine.describe())
    if todo:
        engine.execute(task, folder, todo, handle, done)
    stats.seconds = time.perf_counter() - start
    folder.update(
        status="complete" if folder.complete else "incomplete",
        engine=engine.describe(),  # now with the workers it had
        last_run=stats.as_dict(),
    )
    return stats

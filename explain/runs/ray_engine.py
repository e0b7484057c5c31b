"""The Ray engine: the blocks of a run go through Ray Data ``map_batches`` to a pool of actors,
one per GPU (or per CPU slot on a cluster without GPUs). Each actor loads the model once from
its recipe (spec and weights file; never a pickled live model), takes a GPU when it was given
one, and writes each block's Parquet file itself, returning only a one-row summary: the driver
holds no results, and reports progress as the summaries stream in.

Ray is an optional dependency (``pip install .[ray]``): it is imported when this engine runs.
On a cluster of several machines, the run folder must be on a file system every node mounts
(each actor checks that it sees the run's ``run.json`` and stops with a clear error if not).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Sequence
from typing import Any

from .. import errors
from ..errors import EngineError, ExplainError
from .engine import BlockDone, BlockTask, Engine, compute_block
from .folder import Block, RunFolder

#: Seconds to wait for a cluster address to accept a connection before giving up.
CONNECT_TIMEOUT_S = 5.0


def import_ray() -> Any:
    """The ``ray`` module with Ray Data; a clear error when it is not installed."""
    try:
        import ray
        import ray.data  # Ray Data is the part this engine uses
    except ImportError as exc:
        raise EngineError(
            "The Ray engine needs Ray, which is not installed here.",
            hint="pip install 'gradcam-explorer[ray]' (or pip install 'ray[data,client]'), "
            "or use --engine local.",
        ) from exc
    return ray


def check_address(address: str | None) -> None:
    """Fail fast (in seconds, not minutes) when ``host:port`` or ``ray://host:port`` does not
    accept a connection; ``None``, ``"auto"`` and ``"local"`` are left to Ray."""
    if address is None or address.strip().lower() in ("auto", "local"):
        return
    text = address.strip()
    hostport = text.split("://", 1)[1] if "://" in text else text
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise EngineError(
            f"Cannot read the Ray address {address!r}.",
            hint="give ray://HOST:10001 (Ray Client), HOST:6379 (the head node) or auto.",
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise EngineError(
            f"Cannot reach the Ray cluster at {address}: {exc}.",
            hint="check the host and port, and that the cluster runs there (ray start --head "
            "on the head node; Ray Client listens on port 10001), or use --engine local.",
        ) from exc


_ERROR_LINE = re.compile(r"(?:^|\n)\s*(?:explain\.errors|embeddings\.errors)\.(\w+): ([^\n]*)")
_HINT_LINE = re.compile(r"\nTry: ([^\n]*)")


def _explain_cause(exc: BaseException) -> ExplainError | None:
    """The :class:`ExplainError` a worker raised, found in Ray's wrapping of it: the exception
    itself when it crossed the process boundary, else rebuilt from the traceback text Ray
    passes on (``explain.errors.LayerError: ...`` and its ``Try: ...`` line)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ExplainError):
            return _same_error(current)
        todo.extend([getattr(current, "cause", None), current.__cause__, current.__context__])
    text = str(exc)
    found = list(_ERROR_LINE.finditer(text))
    if not found:
        return None
    last = found[-1]
    hint = _HINT_LINE.search(text, last.end())
    cls = getattr(errors, last.group(1), None)
    if not (isinstance(cls, type) and issubclass(cls, ExplainError)):
        cls = EngineError
    message = last.group(2).strip()
    return _same_error(ExplainError(message, hint.group(1).strip() if hint else None), cls)


def _same_error(cause: ExplainError, cls: type | None = None) -> ExplainError:
    """A fresh copy of a worker's error, as ``cls`` (default its own class): Ray's wrapper
    carries the worker's traceback text, which a user should not see."""
    try:
        return (cls or type(cause))(cause.message, cause.hint)
    except TypeError:
        return EngineError(cause.message, cause.hint)


class BlockWorker:
    """A Ray Data actor: loads the model once, then computes and writes blocks.

    Args:
        task: the run's :class:`~explain.runs.engine.BlockTask`.
        folder: the run folder's path, as the driver sees it.
        threads: CPU threads for the model (the CPUs this actor was given).
        device: ``"auto"`` (the GPU Ray gave this actor) or ``"cpu"`` (it was given none).
        cwd: the driver's working folder: where it exists (this machine, a shared file system),
            relative paths of the dataset mean here what they meant there.
    """

    def __init__(
        self, task: BlockTask, folder: str, threads: int, device: str = "auto", cwd: str = ""
    ):
        import torch

        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)

        torch.set_num_threads(max(1, int(threads)))
        self.folder = RunFolder(folder)
        if not self.folder.manifest_path.is_file():
            raise EngineError(
                f"A Ray worker on {socket.gethostname()} does not see the run folder {folder}.",
                hint="on a cluster of several machines, write the run to a folder every node "
                "mounts (a shared file system).",
            )
        self.task = task
        self.handle = task.recipe.load(device=device)
        if task.fingerprint and self.handle.fingerprint != task.fingerprint:
            raise EngineError(
                f"A Ray worker on {socket.gethostname()} loaded {task.recipe.spec} with other "
                "weights than the driver's model.",
                hint="give the same weights file on every node (an absolute path on a shared "
                "file system).",
            )

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        names = ("index", "rows", "seconds", "worker", "device", "started", "finished")
        out: dict[str, list[Any]] = {name: [] for name in names}
        for index, start, stop in zip(batch["index"], batch["start"], batch["stop"], strict=True):
            done = compute_block(
                self.task, self.handle, self.folder, Block(int(index), int(start), int(stop))
            )
            for name in names:
                out[name].append(getattr(done, name))
        return out


class RayEngine(Engine):
    """Blocks on a pool of Ray actors (Ray Data ``map_batches``).

    Args:
        address: ``None`` (a new local Ray, or the cluster ``RAY_ADDRESS`` names), ``"auto"``
            (a Ray already running on this machine), ``"ray://host:10001"`` (Ray Client) or
            ``"host:6379"`` (the head node).
        num_workers: actors in the pool (default: one per GPU of the cluster, else one per
            CPU).
        gpus_per_worker: GPUs per actor (default: 1 when the cluster has GPUs, else 0).
        cpus_per_worker: CPUs per actor (default: the cluster's CPUs shared among the actors).
        init_options: more keyword arguments for ``ray.init`` when this engine starts Ray.

    A Ray this engine started is shut down at the end of each run; one the caller started
    (``ray.init`` before) is used as it is and left running.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_workers: int | None = None,
        *,
        gpus_per_worker: float | None = None,
        cpus_per_worker: float | None = None,
        init_options: dict[str, Any] | None = None,
    ):
        if num_workers is not None and num_workers < 1:
            raise EngineError(f"num_workers must be at least 1, got {num_workers}.")
        self.address = address
        self.num_workers = num_workers
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.init_options = dict(init_options or {})
        self.last_plan: dict[str, Any] = {}

    def describe(self) -> str:
        plan = self.last_plan
        where = self.address or "local"
        if not plan:
            return f"ray ({where})"
        return (
            f"ray ({where}; {plan['workers']} workers x {plan['cpus']} CPU"
            + (f", {plan['gpus']} GPU" if plan["gpus"] else "")
            + ")"
        )

    # -- connecting -------------------------------------------------------------------------------
    def _connect(self, ray: Any) -> bool:
        """Connect to (or start) Ray; ``True`` when this call started it."""
        if ray.is_initialized():
            return False
        check_address(self.address)
        options = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            **self.init_options,
        }
        if self.address:
            options["address"] = self.address
        try:
            ray.init(**options)
        except ValueError as exc:
            if "ray[client]" in str(exc):
                raise EngineError(
                    "ray:// addresses need Ray Client, which is not installed here.",
                    hint="pip install 'ray[client]' (part of gradcam-explorer[ray]).",
                ) from exc
            raise EngineError(f"Cannot start Ray: {exc}") from exc
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise EngineError(
                f"Cannot connect to Ray at {self.address or 'a new local instance'}: {exc}",
                hint="check the address (ray status on the head node shows it), or use "
                "--engine local.",
            ) from exc
        return True

    def _plan(self, ray: Any, blocks: int) -> dict[str, Any]:
        """Workers, CPUs and GPUs per worker, from the cluster's resources."""
        resources = ray.cluster_resources()
        cpus = float(resources.get("CPU", 1.0))
        gpus = float(resources.get("GPU", 0.0))
        per_gpu = self.gpus_per_worker if self.gpus_per_worker is not None else (1 if gpus else 0)
        if self.num_workers is not None:
            workers = self.num_workers
        elif per_gpu:
            workers = max(1, int(gpus // per_gpu))
        else:
            workers = max(1, int(cpus))
        workers = max(1, min(workers, blocks))
        per_cpu = self.cpus_per_worker or max(1, int(cpus // workers))
        if workers * per_cpu > cpus or (per_gpu and workers * per_gpu > gpus):
            raise EngineError(
                f"{workers} workers with {per_cpu} CPU"
                + (f" and {per_gpu} GPU" if per_gpu else "")
                + f" each do not fit this Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs).",
                hint="ask for fewer workers (--num-workers), or add machines to the cluster.",
            )
        return {"workers": workers, "cpus": per_cpu, "gpus": per_gpu}

    # -- running ----------------------------------------------------------------------------------
    def execute(
        self,
        task: BlockTask,
        folder: RunFolder,
        blocks: Sequence[Block],
        handle: Any,
        done: Callable[[BlockDone], None],
    ) -> None:
        ray = import_ray()
        if getattr(task, "recipe", None) is None:
            from ..models.recipe import recipe_of

            recipe_of(handle)  # raises the clear error for a model given as an object
        started = self._connect(ray)
        try:
            self._run(ray, task, folder, blocks, done)
        finally:
            if started:
                ray.shutdown()

    def _run(
        self,
        ray: Any,
        task: BlockTask,
        folder: RunFolder,
        blocks: Sequence[Block],
        done: Callable[[BlockDone], None],
    ) -> None:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # progress comes from the block summaries
        plan = self._plan(ray, len(blocks))
        self.last_plan = plan
        items = [{"index": b.index, "start": b.start, "stop": b.stop} for b in blocks]
        results = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            BlockWorker,
            fn_constructor_args=(
                task,
                str(folder.path),
                max(1, int(plan["cpus"])),
                "auto" if plan["gpus"] else "cpu",
                os.getcwd(),
            ),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=plan["workers"]),
            num_cpus=plan["cpus"],
            num_gpus=plan["gpus"],
        )
        # A worker's error comes back as one clear message; Ray Data's log of it is noise.
        logger = logging.getLogger("ray.data")
        level = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            for row in results.iter_rows():
                done(
                    BlockDone(
                        int(row["index"]),
                        int(row["rows"]),
                        float(row["seconds"]),
                        str(row["worker"]),
                        str(row["device"]),
                        float(row["started"]),
                        float(row["finished"]),
                    )
                )
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            cause = _explain_cause(exc)
            if cause is not None:
                raise cause from exc
            raise EngineError(
                f"The Ray run failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                hint="blocks already written are kept; run the same command again to resume.",
            ) from exc
        finally:
            logger.setLevel(level)


def ray_available() -> bool:
    """Whether Ray (with Ray Data) can be imported here."""
    try:
        import_ray()
    except EngineError:
        return False
    return True


__all__ = ["BlockWorker", "RayEngine", "check_address", "import_ray", "ray_available"]

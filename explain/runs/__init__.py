"""Dataset-level work in blocks, on this process or on a Ray cluster, written to a run folder.

- :mod:`~explain.runs.folder`: the run folder (``run.json`` and one Parquet file per block),
  :func:`open_run` to read one.
- :mod:`~explain.runs.engine`: :class:`LocalEngine` (in this process), :func:`run_blocks`,
  :func:`resolve_engine`; :mod:`~explain.runs.ray_engine`: :class:`RayEngine` (Ray Data
  ``map_batches`` with a pool of model actors; Ray itself is imported only when it runs).
- :mod:`~explain.runs.cams`: class-activation maps of many images as a run
  (``python -m explain --engine``).

Activations (``embeddings.collect_activations(..., engine=, out=)``) and evaluations
(``explain.evaluate(..., engine=, out=)``) are runs too.
"""

from .engine import ENGINES, BlockDone, Engine, LocalEngine, RunStats, resolve_engine, run_blocks
from .folder import Block, RunFolder, column_matrix, open_run, plan_blocks, vector_column
from .ray_engine import RayEngine, ray_available

__all__ = [
    "ENGINES",
    "Block",
    "BlockDone",
    "Engine",
    "LocalEngine",
    "RayEngine",
    "RunFolder",
    "RunStats",
    "column_matrix",
    "open_run",
    "plan_blocks",
    "ray_available",
    "resolve_engine",
    "run_blocks",
    "vector_column",
]

"""Where a stage's batches run: one `Executor` per stage, built from the recipe's `[engine]` table.

A stage hands its work to the executor as workers and tasks and never asks where they run:

- `map_batches(table, worker, args)` / `map_slices(slices, ...)`: Arrow batches through a worker, results in input
  order. A worker class is built once per worker (`worker(*args)`: presidio, spaCy or a model load in the
  constructor) and called on each batch; a function is called as `worker(batch, *args)`.
- `map_tasks(fn, items, shared)`: `fn(*shared, *item)` per item, in order (query batches over one index).
- `map_reduce(mapper, items, reducer, shared, partitions)`: a shuffle (the LSH band table by bucket).
- `call(fn, args)`: one call where the workers run; `ask(worker, args, question)`: what a worker's model looks
  like there.

`LocalExecutor` (engine `local`) runs them in this process, a thread pool or a pool of forked worker processes;
`RayExecutor` (engine `ray`, `datakit[ray]`) on Ray Data actors and Ray tasks. The engine decides where work runs,
never what it computes: outputs are identical, so the engine is no part of a stage's config hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datakit.executor.base import NO_RESOURCES, Executor, Progress, Resources, Worker, concat, no_progress

if TYPE_CHECKING:
    from datakit.recipe import Engine

__all__ = ["NO_RESOURCES", "Executor", "Progress", "Resources", "Worker", "concat", "executor_for", "no_progress"]


def executor_for(engine: Engine | None) -> Executor:
    """The executor of a recipe's `[engine]`: the one place that reads its kind."""
    from datakit.executor.local import LocalExecutor

    if engine is None or engine.kind == "local":
        return LocalExecutor()
    from datakit.executor.ray import RayExecutor

    return RayExecutor(engine)

"""The Ray executor (engine `ray`): Ray Data on a Ray cluster (`pip install "datakit[ray]"`). A stage hands Arrow
batches of records to a pool of actors, each built once (presidio and spaCy load in the actor's constructor: they
do not pickle), or to tasks for stateless work, and gets the results back in input order (`preserve_order`), so
outputs are identical to the local engine's. A failed actor is restarted and its batch retried, a failed task
retried (`engine.max_retries`).

The engine decides where work runs, never what it computes: the stage code is the same functions either way
(`datakit.executor`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from datakit.errors import StageError
from datakit.executor.base import NO_RESOURCES, Executor, Progress, Resources, Worker, concat, no_progress
from datakit.recipe import Engine

ONE_PASS = 1 << 62  # rows per call from the content caches: every uncached text in one call (the pool starts once)


def ray_module() -> Any:
    """`ray`, or a one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise StageError('engine "ray" needs the Ray extra: pip install "datakit[ray]" (make installs it)') from None
    return ray


def connect(cfg: Engine) -> Any:
    """Connect to the recipe's Ray cluster (or start one on this machine); an existing connection is reused."""
    ray = ray_module()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
        if cfg.address is not None:
            kwargs["address"] = cfg.address
        ray.init(**kwargs)
    return ray


def actor_count(cfg: Engine, batches: int, num_gpus: float = 0.0) -> int:
    """`cfg.concurrency`, or as many actors as the cluster's CPUs (and GPUs, for GPU actors) hold."""
    ray = ray_module()
    resources = ray.cluster_resources()
    wanted = cfg.concurrency or max(1, int(float(resources.get("CPU", 1)) // cfg.num_cpus))
    if num_gpus and not cfg.concurrency:
        wanted = min(wanted, max(1, int(float(resources.get("GPU", 0)) // num_gpus)))
    return max(1, min(wanted, batches))


def map_ordered(
    table: pa.Table,
    actor: type | Callable[..., pa.Table],
    args: tuple[Any, ...],
    cfg: Engine,
    progress: Callable[[int], None] = lambda n: None,
    num_gpus: float = 0.0,
    cheap: bool = False,
) -> pa.Table:
    """`actor(*args)(batch)` over `table` in batches of `cfg.batch_size` rows, on a pool of Ray actors of
    `cfg.num_cpus` CPUs and `num_gpus` GPUs each; the output batches, concatenated in input order. A function
    instead of a class runs as Ray tasks, `actor(batch, *args)`: for stateless work, whose batches then need no
    actor of their own (a Ray Data actor pool costs ~4.5 s to start here, a task pool ~0.3 s once Ray Data runs).

    `cheap`: per-record work that costs less than a batch's trip through Ray (MinHash signatures, static
    embeddings, retrieval over prebuilt indexes): the batches grow to about four per actor (never below
    `cfg.batch_size`), enough to balance the pool and to retry a lost batch, few enough that the per-batch overhead
    stays small (measured at 20K records on 2 cores: batches of 256 doubled the leakage and assemble stages' time)."""
    ray = connect(cfg)
    from ray.data import DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the stage reports progress itself
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    size = cfg.batch_size
    if cheap:
        actors = actor_count(cfg, -(-table.num_rows // size), num_gpus)
        size = max(size, -(-table.num_rows // (4 * actors)))
    # one block per batch, so every actor of the pool gets work
    blocks = [table.slice(start, size) for start in range(0, table.num_rows, size)] or [table]
    batches = len(blocks)
    how: dict[str, Any] = (
        {
            "fn_constructor_args": args,
            "compute": ray.data.ActorPoolStrategy(size=actor_count(cfg, batches, num_gpus)),
            "max_restarts": cfg.max_retries,
            "max_task_retries": cfg.max_retries,
        }
        if isinstance(actor, type)
        else {"fn_args": args, "max_retries": cfg.max_retries}
    )
    dataset = ray.data.from_arrow(blocks).map_batches(
        actor,
        batch_size=size,
        batch_format="pyarrow",
        num_cpus=cfg.num_cpus,
        num_gpus=num_gpus or None,
        **how,
    )
    parts = []
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        parts.append(batch)
        progress(batch.num_rows)
    return concat(parts)


class RayExecutor(Executor):
    kind = "ray"
    pass_rows = ONE_PASS

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def parallelism(self) -> int:
        ray = connect(self.engine)
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    @property
    def threads_per_worker(self) -> int | None:
        return max(1, int(self.engine.num_cpus))  # the actor's CPUs, not the node's

    @property
    def gpus_per_model(self) -> float:
        return self.engine.num_gpus

    def map_slices(
        self,
        slices: Iterable[pa.Table],
        worker: Worker,
        args: tuple[Any, ...] = (),
        *,
        batch_rows: int | None = None,
        resources: Resources = NO_RESOURCES,
        progress: Progress = no_progress,
    ) -> Iterator[pa.Table]:
        """The slices through one actor pool (one Ray Data pipeline over all of them: the pool and its models start
        once), handed back slice by slice."""
        tables = list(slices)
        sizes = [t.num_rows for t in tables]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            yield from (pa.table({}) for _ in sizes)
            return
        out = map_ordered(
            concat(tables), worker, args, self.engine, progress, num_gpus=resources.gpus, cheap=resources.cheap
        )
        start = 0
        for n in sizes:
            yield out.slice(start, n) if n else pa.table({})
            start += n

    def map_tasks(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], shared: tuple[Any, ...] = ()) -> list:
        ray = connect(self.engine)
        refs = [ray.put(x) for x in shared]
        task = ray.remote(num_cpus=1, max_retries=self.engine.max_retries)(fn)
        return list(ray.get([task.remote(*refs, *item) for item in items]))

    def map_reduce(
        self,
        mapper: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        reducer: Callable[..., Any],
        shared: tuple[Any, ...],
        partitions: int,
    ) -> Iterator[Any]:
        ray = connect(self.engine)
        refs = [ray.put(x) for x in shared]
        retries = self.engine.max_retries
        map_task = ray.remote(num_returns=partitions, num_cpus=1, max_retries=retries)(mapper)
        reduce_task = ray.remote(num_cpus=1, max_retries=retries)(reducer)
        mapped = [map_task.remote(*item, partitions) for item in items]
        if partitions == 1:
            mapped = [[m] for m in mapped]
        results = [reduce_task.remote(*refs, *[m[p] for m in mapped]) for p in range(partitions)]
        for ref in results:
            yield ray.get(ref)

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), resources: Resources = NO_RESOURCES) -> Any:
        ray = connect(self.engine)
        task = ray.remote(num_cpus=self.engine.num_cpus, num_gpus=resources.gpus or None)(fn)
        return ray.get(task.remote(*args))

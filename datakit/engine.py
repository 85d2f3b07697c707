"""Where per-record work runs. `local`: this process and its worker pool (what every stage did before). `ray`: Ray
Data actors on a Ray cluster (`pip install "datakit[ray]"`): the stage hands Arrow batches of records to a pool of
actors, each built once (presidio and spaCy load in the actor's constructor: they do not pickle), and gets the
results back in input order (`preserve_order`), so outputs are identical to the local engine's. A failed actor is
restarted and its batch retried (`engine.max_retries`).

The engine decides where work runs, never what it computes: the stage code is the same functions either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from datakit.errors import StageError
from datakit.recipe import Engine


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


def actor_count(cfg: Engine, batches: int) -> int:
    ray = ray_module()
    cpus = float(ray.cluster_resources().get("CPU", 1))
    wanted = cfg.concurrency or max(1, int(cpus // cfg.num_cpus))
    return max(1, min(wanted, batches))


def map_ordered(
    table: pa.Table,
    actor: type,
    args: tuple[Any, ...],
    cfg: Engine,
    progress: Callable[[int], None] = lambda n: None,
) -> pa.Table:
    """`actor(*args)(batch)` over `table` in batches of `cfg.batch_size` rows, on a pool of Ray actors; the
    output batches, concatenated in input order."""
    ray = connect(cfg)
    from ray.data import DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the stage reports progress itself
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # one block per batch, so every actor of the pool gets work
    blocks = [table.slice(start, cfg.batch_size) for start in range(0, table.num_rows, cfg.batch_size)] or [table]
    batches = len(blocks)
    dataset = ray.data.from_arrow(blocks).map_batches(
        actor,
        fn_constructor_args=args,
        batch_size=cfg.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actor_count(cfg, batches)),
        num_cpus=cfg.num_cpus,
        max_restarts=cfg.max_retries,
        max_task_retries=cfg.max_retries,
    )
    parts = []
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        parts.append(batch)
        progress(batch.num_rows)
    return pa.concat_tables(parts) if parts else pa.table({})

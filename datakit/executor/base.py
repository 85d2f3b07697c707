"""The executor interface (`datakit.executor` says what each method is for) and what its implementations share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

Progress = Callable[[int], None]
Worker = type | Callable[..., pa.Table]


def no_progress(n: int) -> None:
    return None


@dataclass(frozen=True)
class Resources:
    """What one worker needs. `processes`: worker processes the local executor forks for a stateful worker (0: one
    per core; 1: this process), the deid stage's `n_jobs`. `gpus`: GPUs per Ray actor. `cheap`: per-record work
    that costs less than a batch's trip through Ray (larger Ray batches, tasks instead of actors where possible)."""

    processes: int = 1
    gpus: float = 0.0
    cheap: bool = False


NO_RESOURCES = Resources()


class Executor(ABC):
    kind: str
    # rows a streaming caller (the content caches) hands over per call: small here (memory follows a pass), one
    # pass on a cluster (its pool starts once)
    pass_rows: int

    @property
    @abstractmethod
    def parallelism(self) -> int:
        """How many tasks run at once (map tasks and reduce partitions are cut to at least this many)."""

    @property
    @abstractmethod
    def threads_per_worker(self) -> int | None:
        """Threads a worker may use for its own work (None: every core of this machine)."""

    @property
    def gpus_per_model(self) -> float:
        """GPUs the engine gives each model-holding worker (the embedding actors); 0 here."""
        return 0.0

    @abstractmethod
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
        """For each slice, in order, the worker's output batches concatenated; one pool of workers serves every
        slice. `batch_rows`: rows per worker call here (None: a slice per call); Ray batches by engine.batch_size."""

    def map_batches(
        self,
        table: pa.Table,
        worker: Worker,
        args: tuple[Any, ...] = (),
        *,
        batch_rows: int | None = None,
        resources: Resources = NO_RESOURCES,
        progress: Progress = no_progress,
    ) -> pa.Table:
        """`map_slices` over one slice."""
        (out,) = self.map_slices([table], worker, args, batch_rows=batch_rows, resources=resources, progress=progress)
        return out

    @abstractmethod
    def map_tasks(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], shared: tuple[Any, ...] = ()) -> list:
        """`[fn(*shared, *item) for item in items]`, the items in parallel (`shared` sent to the workers once)."""

    @abstractmethod
    def map_reduce(
        self,
        mapper: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        reducer: Callable[..., Any],
        shared: tuple[Any, ...],
        partitions: int,
    ) -> Iterator[Any]:
        """A shuffle: `mapper(*item, partitions)` returns one piece per partition; `reducer(*shared, *pieces)` of
        each partition, yielded in partition order as they are done (the pieces never pass through this process
        on a cluster)."""

    @abstractmethod
    def call(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), resources: Resources = NO_RESOURCES) -> Any:
        """`fn(*args)` where the workers run."""

    def ask(self, worker: type, args: tuple[Any, ...], question: str, resources: Resources = NO_RESOURCES) -> Any:
        """`worker(*args).<question>()` where the workers run (what its model looks like there)."""
        return self.call(ask_worker, (worker, args, question), resources)

    def drop(self, worker: Worker) -> None:
        """Forget the built instances of `worker` (its model is not needed again in this stage)."""
        return None

    def close(self) -> None:
        """End the workers this executor started (the stage is done)."""
        return None


def ask_worker(worker: type, args: tuple[Any, ...], question: str) -> Any:
    return getattr(worker(*args), question)()


def concat(parts: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(parts) if parts else pa.table({})

"""The local executor (engine `local`): this process, its threads, or a pool of worker processes.

A stateful worker asked for `processes > 1` runs in worker processes. Where the OS can fork, the worker is built
once in this process and the pool is forked from it, so the workers start in milliseconds instead of re-importing
spaCy, presidio (which pulls in transformers and torch when they are installed) and the model: ~7 s per spawned
worker on the 2-core machine, longer than de-identifying 2,000 reports. A forked worker runs only its own code on
Arrow batches (never Polars, whose thread pool is what makes forking a multi-threaded parent risky). Elsewhere the
workers are spawned and build their own. A worker dies with this process and leaves Ctrl-C to it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import pyarrow as pa

from datakit.executor.base import NO_RESOURCES, Executor, Progress, Resources, Worker, concat, no_progress

SPAWN_BELOW = 5000  # below this many rows a spawned pool's start-up costs more than it saves
PASS_ROWS = 8192  # rows per call from the content caches: memory follows one pass
PR_SET_PDEATHSIG = 1  # linux/prctl.h

_WORKER: Callable[[pa.Table], pa.Table] | None = None


def build(worker: Worker, args: tuple[Any, ...]) -> Callable[[pa.Table], pa.Table]:
    """A worker class, built (`worker(*args)`), or a function bound to its arguments (`worker(batch, *args)`)."""
    if isinstance(worker, type):
        built: Callable[[pa.Table], pa.Table] = worker(*args)
        return built
    return lambda batch: worker(batch, *args)


def _quiet_worker(parent: int) -> None:
    """A worker dies with its parent and leaves Ctrl-C to it: no BrokenPipeError or KeyboardInterrupt tracebacks.

    On Linux the kernel kills the worker when the parent dies (SIGKILL included); elsewhere the worker only
    ignores SIGINT (the parent's pool terminates it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a forked worker inherits the run's handlers: the pool's
        signal.signal(sig, signal.SIG_DFL)  # terminate() must end it quietly
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(0)


def _init(spec: tuple[Worker, tuple[Any, ...]] | None, parent: int) -> None:
    global _WORKER
    _quiet_worker(parent)
    if spec is not None:
        _WORKER = build(*spec)


def _work(batch: pa.Table) -> pa.Table:
    assert _WORKER is not None
    return _WORKER(batch)


class LocalExecutor(Executor):
    kind = "local"
    pass_rows = PASS_ROWS

    def __init__(self) -> None:
        self._built: dict[tuple[int, ...], tuple[Any, Callable[[pa.Table], pa.Table]]] = {}

    @property
    def parallelism(self) -> int:
        return 1  # tasks run one after another here; a worker's own threads use the cores

    @property
    def threads_per_worker(self) -> int | None:
        return None

    def worker(self, worker: Worker, args: tuple[Any, ...]) -> Callable[[pa.Table], pa.Table]:
        """The worker built once per executor (a model loads once per stage, however many calls)."""
        key = (id(worker), *map(id, args))
        if key not in self._built:
            self._built[key] = ((worker, args), build(worker, args))  # the arguments kept alive: ids stay theirs
        return self._built[key][1]

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
        global _WORKER
        jobs = resources.processes if resources.processes > 0 else (os.cpu_count() or 1)
        fork = "fork" in mp.get_all_start_methods()
        pool = None
        try:
            for table in slices:
                size = batch_rows or max(1, table.num_rows)
                chunks = [table.slice(s, size) for s in range(0, table.num_rows, size)]
                if pool is None and (jobs <= 1 or len(chunks) <= 1 or (not fork and table.num_rows < SPAWN_BELOW)):
                    here = self.worker(worker, args)
                    outs = []
                    for chunk in chunks:
                        outs.append(here(chunk))
                        progress(chunk.num_rows)
                    yield concat(outs)
                    continue
                if pool is None:
                    if fork:  # the workers inherit the worker built here
                        _WORKER = self.worker(worker, args)
                        pool = mp.get_context("fork").Pool(jobs, initializer=_init, initargs=(None, os.getpid()))
                    else:  # a clean interpreter per worker, which builds its own
                        spec = (worker, args)
                        pool = mp.get_context("spawn").Pool(jobs, initializer=_init, initargs=(spec, os.getpid()))
                outs = []
                for out in pool.imap(_work, chunks):
                    outs.append(out)
                    progress(out.num_rows)
                yield concat(outs)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
            _WORKER = None

    def map_tasks(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], shared: tuple[Any, ...] = ()) -> list:
        """The items on a thread pool of this process (the tasks here release the GIL: FAISS, numpy)."""
        workers = max(1, min(len(items), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda item: fn(*shared, *item), items))

    def map_reduce(
        self,
        mapper: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        reducer: Callable[..., Any],
        shared: tuple[Any, ...],
        partitions: int,
    ) -> Iterator[Any]:
        mapped = [mapper(*item, partitions) for item in items]
        if partitions == 1:  # the piece itself, as a cluster's one return value
            mapped = [[m] for m in mapped]
        for p in range(partitions):
            yield reducer(*shared, *[m[p] for m in mapped])

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), resources: Resources = NO_RESOURCES) -> Any:
        return fn(*args)

    def ask(self, worker: type, args: tuple[Any, ...], question: str, resources: Resources = NO_RESOURCES) -> Any:
        """Asked of the worker this executor built (or builds now, for its batches): the model loads once."""
        return getattr(self.worker(worker, args), question)()

    def drop(self, worker: Worker) -> None:
        for key in [k for k, (spec, _) in self._built.items() if spec[0] is worker]:
            del self._built[key]

    def close(self) -> None:
        self._built.clear()

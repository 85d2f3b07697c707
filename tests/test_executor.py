"""The local executor (engine `local`): workers built once and called per batch in order, a forked pool that
gives what this process gives, tasks and a map/reduce shuffle whose cut does not change the result (the near
layer's LSH pairs with one partition and with many)."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from datakit.executor import Resources, executor_for
from datakit.executor.local import LocalExecutor
from datakit.leakage import minhash
from datakit.leakage.layers import near
from datakit.recipe import Engine, MinHashConfig
from datakit.sources.sample import generate_cases


class Doubler:
    built = 0

    def __init__(self, factor: int) -> None:
        type(self).built += 1
        self.factor = factor

    def __call__(self, batch: pa.Table) -> pa.Table:
        values = batch.column("x").to_numpy() * self.factor
        return pa.table({"x": values, "pid": [os.getpid()] * batch.num_rows})


def _table(n: int) -> pa.Table:
    return pa.table({"x": np.arange(n, dtype=np.int64)})


def test_a_worker_is_built_once_and_batches_come_back_in_order() -> None:
    Doubler.built = 0
    executor = LocalExecutor()
    seen: list[int] = []
    slices = [_table(7), _table(0), _table(12)]
    out = list(executor.map_slices(slices, Doubler, (3,), batch_rows=5, progress=seen.append))
    assert [t.num_rows for t in out] == [7, 0, 12]
    assert out[2].column("x").to_pylist() == [3 * i for i in range(12)]
    assert Doubler.built == 1 and seen == [5, 2, 5, 5, 2]
    executor.ask(Doubler, (3,), "__repr__")  # asked of the same built worker
    assert Doubler.built == 1
    executor.close()


def test_a_forked_pool_gives_what_this_process_gives() -> None:
    executor = LocalExecutor()
    here = executor.map_batches(_table(40), Doubler, (2,), batch_rows=8)
    pooled = LocalExecutor().map_batches(_table(40), Doubler, (2,), batch_rows=8, resources=Resources(processes=2))
    assert pooled.column("x").equals(here.column("x"))
    assert set(pooled.column("pid").to_pylist()) - {os.getpid()}  # the batches did run in other processes


def test_tasks_keep_their_order_and_share_their_arguments() -> None:
    shared = np.arange(10)
    out = LocalExecutor().map_tasks(lambda s, i, k: int(s[i] * k), [(i, 2) for i in range(10)], shared=(shared,))
    assert out == [2 * i for i in range(10)]


def test_the_executor_of_an_engine() -> None:
    assert isinstance(executor_for(None), LocalExecutor)
    assert isinstance(executor_for(Engine()), LocalExecutor)
    pytest.importorskip("ray")
    from datakit.executor.ray import RayExecutor

    assert isinstance(executor_for(Engine(kind="ray")), RayExecutor)  # built without starting Ray


def test_lsh_pairs_do_not_depend_on_the_shuffle_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = generate_cases(1500, seed=5).cases["report_text"].str.to_lowercase()
    cfg = MinHashConfig(max_bucket=20)  # the sample's template buckets are larger: linked as stars
    sig = minhash.signatures(texts, k=cfg.k, num_perm=cfg.num_perm)
    sizes = minhash.shingle_counts(texts, cfg.k)
    one, stats_one = near.lsh_pairs(LocalExecutor(), sig, sizes, cfg, near.JACCARD_FLOOR)
    monkeypatch.setattr(near, "PARTITION_ROWS", 5_000)
    many, stats_many = near.lsh_pairs(LocalExecutor(), sig, sizes, cfg, near.JACCARD_FLOOR)
    assert stats_one.partitions == 1 and stats_many.partitions == -(-len(texts) * cfg.bands // 5_000) > 2
    assert stats_many.shuffled_rows == len(texts) * cfg.bands
    assert many.equals(one) and one["linked"].sum() > 100
    assert one.select(pl.struct("a", "b").is_unique().all()).item()  # each pair once

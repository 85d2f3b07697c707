"""What few-shot retrieval found for a batch of query records, and the worker that finds it (`datakit.executor`).

The `Searcher` (the guard over every record, the train pool, its BM25 and FAISS indexes) is built once and handed
to the executor's retrieval workers (`RetrievalActor`): here it is used as it is; a cluster puts it in its object
store once and each actor unpickles it in its constructor. The query records go to the workers in Arrow batches
(sorted by text, so records sharing a text are searched together); each worker runs `Searcher.search` on its batch
and returns one row per record with what it kept and what the guard blocked (`encode`, read back by `decode`). A
record's retrieval depends on the record alone (the dense ranking is rescored per query, see
`retrieve.dense_search`), so any batching gives the same results; the rerank and the final check
(`assert_no_blocked`) run in the stage's own process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from datakit.leakage.guard import LAYERS

if TYPE_CHECKING:
    from datakit.assemble.retrieve import Searcher

KEPT = ("cand", "pool", "rrf")


@dataclass
class Fetched:
    """What `Searcher.search` found for some query nodes (before the rerank)."""

    kept: pl.DataFrame  # node, cand, pool, rrf
    blocked: pl.DataFrame  # node, blocked, <layer> counts, depth (the fetch depth the node settled at)
    pairs: pl.DataFrame  # node, cand, layers: the blocked (record, candidate) pairs

    @staticmethod
    def concat(parts: list[Fetched]) -> Fetched:
        return Fetched(*(pl.concat([getattr(p, f) for p in parts]) for f in ("kept", "blocked", "pairs")))


class RetrievalActor:
    """A worker: the stage's `Searcher` (unpickled once on a cluster), answering batches of query records."""

    def __init__(self, searcher: Searcher, threads: int | None) -> None:
        self.searcher = searcher
        if threads is not None:
            self.searcher.threads = threads  # the actor's CPUs, not the node's

    def __call__(self, batch: pa.Table) -> pa.Table:
        todo = pl.DataFrame(pl.from_arrow(batch))
        found = self.searcher.search(todo)
        return encode(todo.select("node"), found).to_arrow()


def encode(nodes: pl.DataFrame, found: Fetched) -> pl.DataFrame:
    """One row per query record: its blocked counts and depth, `kept` and `pairs` as lists of structs."""
    kept = found.kept.group_by("node").agg(pl.struct(*KEPT).alias("kept"))
    pairs = found.pairs.group_by("node").agg(pl.struct("cand", "layers").alias("pairs"))
    return (
        nodes.join(found.blocked.with_columns(pl.lit(True).alias("settled")), on="node", how="left")
        .join(kept, on="node", how="left")
        .join(pairs, on="node", how="left")
    )


def decode(rows: pl.DataFrame) -> Fetched:
    kept = rows.select("node", "kept").explode("kept").drop_nulls("kept").unnest("kept")
    pairs = rows.select("node", "pairs").explode("pairs").drop_nulls("pairs").unnest("pairs")
    blocked = rows.filter(pl.col("settled").fill_null(False)).select("node", "blocked", *LAYERS, "depth")
    return Fetched(kept=kept, blocked=blocked, pairs=pairs)

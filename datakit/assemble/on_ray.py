"""Few-shot retrieval and the leakage guard on a Ray cluster (engine `ray`).

The driver builds the `Searcher` once (the guard over every record, the train pool, its BM25 and FAISS indexes) and
hands it to a pool of Ray Data actors (`RetrievalActor`): Ray puts it in the object store once and each actor
unpickles it in its constructor. The query records go to the actors in Arrow batches (sorted by text, so records
sharing a text are searched together); each actor runs `Searcher.search` on its batch and returns one row per
record with what it kept and what the guard blocked. A record's retrieval depends on the record alone (the dense
ranking is rescored per query, see `retrieve.dense_search`), so the results equal the local engine's; the rerank
and the final check (`assert_no_blocked`) run on the driver.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import pyarrow as pa

from datakit.assemble.retrieve import Fetched, Searcher
from datakit.engine import map_ordered
from datakit.leakage.guard import LAYERS
from datakit.recipe import Engine

KEPT = ("cand", "pool", "rrf")


class RetrievalActor:
    """A Ray Data actor: the driver's `Searcher` (unpickled once), answering batches of query records."""

    def __init__(self, searcher: Searcher, threads: int) -> None:
        self.searcher = searcher
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


def search_on_ray(
    searcher: Searcher, nodes: pl.DataFrame, engine: Engine, on_settled: Callable[[int], None] = lambda n: None
) -> Fetched:
    """`searcher.search(nodes)`, answered by a pool of retrieval actors."""
    todo = nodes.sort("content", "node").to_arrow()
    rows = pl.DataFrame(
        pl.from_arrow(
            map_ordered(todo, RetrievalActor, (searcher, max(1, int(engine.num_cpus))), engine, on_settled, cheap=True)
        )
    )
    return decode(rows)

"""Leakage groups: connected components over every link.

Nodes are integers 0..n-1. The components of the edge list are found on the driver by SciPy's sparse-graph
`connected_components` (a compressed sparse row graph, linear in nodes + edges); a component is named by its
smallest node. The edge list is what the layers (and, under the Ray engine, the cluster's LSH reduce tasks)
return: verified links only, a few per record, not the candidate pairs.

How large an edge list fits: the graph costs about `BYTES_PER_EDGE` bytes per edge and `BYTES_PER_NODE` per
node at its peak (measured on 2 cores, `bench/components.py`: 8M edges over 4M nodes in 2.1 s and +0.35 GB, 40M
edges over 20M nodes in 8.5 s and +1.6 GB; the Polars label propagation it replaced took 114 s and +3.2 GB for 8M
edges). So a 24 GB driver holds the graph of about 400M links. `components_fit` checks that estimate against the
memory available before building the graph; past it the stage stops with a clear error (nodes, edges, what it
needs) instead of being killed for memory.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from datakit.errors import StageError

BYTES_PER_EDGE = 40  # two directions of int32 indices + data, the COO arrays they come from, the Polars columns
BYTES_PER_NODE = 32  # labels, first occurrences, the output frame


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux `MemAvailable`; physical pages elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def components_fit(n: int, edges: int, available: int | None = None) -> None:
    """Stop with a clear error when the graph of `n` nodes and `edges` edges would not fit in memory."""
    need = n * BYTES_PER_NODE + edges * BYTES_PER_EDGE
    have = available_memory() if available is None else available
    if need > have:
        raise StageError(
            f"leakage groups: {edges:,} links over {n:,} records need ~{need / 2**30:.1f} GiB for connected "
            f"components, {have / 2**30:.1f} GiB is available on the driver; run the driver on a machine with more "
            "memory, or raise the layers' thresholds (fewer links)"
        )


def key_links(nodes: pl.DataFrame, column: str, kind: str) -> pl.DataFrame:
    """Links between nodes sharing a non-null key: a star around each key's smallest node (n-1 edges, not n²)."""
    keyed = nodes.select("node", column).drop_nulls(column)
    hubs = keyed.group_by(column).agg(pl.col("node").min().alias("hub"))
    return (
        keyed.join(hubs, on=column)
        .filter(pl.col("node") != pl.col("hub"))
        .select(
            pl.col("hub").cast(pl.UInt32).alias("a"),
            pl.col("node").cast(pl.UInt32).alias("b"),
            pl.lit(kind).alias("kind"),
            pl.lit(1.0, pl.Float32).alias("score"),
        )
    )


def content_edges(
    pairs: pl.DataFrame, reps_a: pl.DataFrame, reps_b: pl.DataFrame, kind: str, score: str
) -> pl.DataFrame:
    """Pairs of distinct texts (a, b, <score>) → edges between nodes: each text's representative node, taken from
    `reps_a` for a and `reps_b` for b (both tables: content, rep)."""
    return (
        pairs.join(reps_a.rename({"content": "a", "rep": "node_a"}), on="a")
        .join(reps_b.rename({"content": "b", "rep": "node_b"}), on="b")
        .select(
            pl.col("node_a").cast(pl.UInt32).alias("a"),
            pl.col("node_b").cast(pl.UInt32).alias("b"),
            pl.lit(kind).alias("kind"),
            pl.col(score).cast(pl.Float32).alias("score"),
        )
    )


def connected_components(n: int, edges: pl.DataFrame) -> pl.DataFrame:
    """(node, component) for nodes 0..n-1; a component is named by its smallest node."""
    nodes = pl.arange(0, n, dtype=pl.UInt32, eager=True)
    if n == 0 or edges.height == 0:
        return pl.DataFrame({"node": nodes, "component": nodes})
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components as scipy_components

    components_fit(n, edges.height)
    a = edges["a"].cast(pl.Int32).to_numpy()
    b = edges["b"].cast(pl.Int32).to_numpy()
    # float weights: duplicate edges are summed, and must not wrap to zero (no edge)
    graph = coo_array((np.ones(len(a), dtype=np.float32), (a, b)), shape=(n, n)).tocsr()
    _, label = scipy_components(graph, directed=False)
    _, first = np.unique(label, return_index=True)  # nodes ascend: a label's first node is its smallest
    return pl.DataFrame({"node": nodes, "component": first[label].astype(np.uint32)})


def group_links(components: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """(component, links): the sorted link kinds that joined each component (empty for singletons)."""
    kinds = (
        edges.join(components, left_on="a", right_on="node")
        .group_by("component")
        .agg(pl.col("kind").unique().sort().alias("links"))
    )
    return (
        components.select("component")
        .unique()
        .join(kinds, on="component", how="left")
        .with_columns(pl.col("links").fill_null(pl.lit([], dtype=pl.List(pl.String))))
    )

"""Leakage groups: connected components over every link, as Polars joins (no in-memory Python index).

Nodes are integers 0..n-1. Components are found by min-label propagation with pointer jumping: each round a
node takes the smallest label among itself and its neighbours, then jumps to its label's label. Each round is
a join and a group-by, so the same code runs out of core (LazyFrame) or on a cluster's dataframe engine; it
needs O(log n) rounds on the chains MinHash and kNN graphs produce.
"""

from __future__ import annotations

import polars as pl


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


def connected_components(n: int, edges: pl.DataFrame, max_rounds: int = 200) -> pl.DataFrame:
    """(node, component) for nodes 0..n-1; a component is named by its smallest node."""
    labels = pl.DataFrame({"node": pl.arange(0, n, dtype=pl.UInt32, eager=True)}).with_columns(
        pl.col("node").alias("label")
    )
    if n == 0 or edges.height == 0:
        return labels.rename({"label": "component"})
    pairs = edges.select(pl.col("a").cast(pl.UInt32), pl.col("b").cast(pl.UInt32)).filter(pl.col("a") != pl.col("b"))
    both = pl.concat([pairs, pairs.select(pl.col("b").alias("a"), pl.col("a").alias("b"))]).unique()
    for _ in range(max_rounds):
        neighbour_min = (
            both.join(labels, left_on="b", right_on="node").group_by("a").agg(pl.col("label").min().alias("nb"))
        )
        stepped = labels.join(neighbour_min, left_on="node", right_on="a", how="left").select(
            "node", pl.min_horizontal("label", "nb").alias("label")
        )
        # pointer jumping: follow the label to its own label
        jumped = stepped.join(stepped.rename({"node": "label", "label": "label2"}), on="label", how="left").select(
            "node", pl.min_horizontal("label", "label2").alias("label")
        )
        jumped = jumped.sort("node")
        if jumped["label"].equals(labels["label"]):
            return jumped.rename({"label": "component"})
        labels = jumped
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")


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

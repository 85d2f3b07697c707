"""Grouping, splitting and repair: connected components over the binding links, whole groups to splits, and
the certificate's repair loop (links the certificate finds are added and the split recomputed, at most
`REPAIR_ROUNDS` times; eval only shrinks, so repair converges).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from datakit.content import sha256_hex
from datakit.leakage.certificate import Certificate, certify
from datakit.leakage.detect import Detection, LayerClock
from datakit.leakage.groups import connected_components
from datakit.leakage.splits import assign_group_splits
from datakit.recipe import Recipe

REPAIR_ROUNDS = 10


def group_and_split(
    det: Detection,
    recipe: Recipe,
    frozen: pl.DataFrame | None,
    extra_edges: pl.DataFrame,
    previous: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """(node, case_id, component, leakage_group, split, split_rule) for every node.

    With `previous` (a repair round), groups keep their earlier split; a group that the new links made straddle
    two splits goes to train (or to its frozen eval split), so eval only shrinks and repair converges."""
    edges = pl.concat([det.edges, extra_edges]) if extra_edges.height else det.edges
    comps = connected_components(det.nodes.height, edges)
    nodes = det.nodes.join(comps, on="node")
    # a group is named by its smallest case id (nodes are numbered in case-id order), so names are stable
    named = nodes.filter(pl.col("node") == pl.col("component")).select("component", "case_id")
    names = named.with_columns(
        ("lg-" + sha256_hex(named["case_id"], prefix="leakage-group:").str.slice(0, 16)).alias("group")
    )
    nodes = nodes.join(names.select("component", "group"), on="component")
    if frozen is not None:
        nodes = nodes.join(frozen, on="case_id", how="left")
    else:
        nodes = nodes.with_columns(pl.lit(None, pl.String).alias("frozen_split"))
    # most frozen members wins; "val" < "test" alphabetically is the wrong way round for a tie, so rank explicitly
    frozen_votes = (
        nodes.drop_nulls("frozen_split")
        .group_by("group", "frozen_split")
        .agg(pl.len().alias("votes"))
        .sort(["group", "votes", "frozen_split"], descending=[False, True, False])
        .group_by("group", maintain_order=True)
        .agg(pl.col("frozen_split").first())
    )
    groups = (
        nodes.group_by("group")
        .agg(pl.col("rows").sum(), pl.col("exam_date").max().alias("last_exam"), pl.len().alias("cases"))
        .join(frozen_votes, on="group", how="left")
    )
    assigned = assign_group_splits(groups, recipe.split, recipe.seed)
    if previous is not None:
        before = (
            nodes.select("node", "group")
            .join(previous.select("node", pl.col("split").alias("before")), on="node")
            .group_by("group")
            .agg(pl.col("before").n_unique().alias("n_before"), pl.col("before").first())
        )
        assigned = assigned.join(before, on="group", how="left").with_columns(
            pl.when(pl.col("frozen_split").is_not_null())
            .then(pl.col("split"))
            .when(pl.col("n_before") > 1)
            .then(pl.lit("train"))
            .otherwise(pl.col("before"))
            .alias("split"),
            pl.when(pl.col("frozen_split").is_null() & (pl.col("n_before") > 1))
            .then(pl.lit("repaired_to_train"))
            .otherwise(pl.col("split_rule"))
            .alias("split_rule"),
        )
    return nodes.join(assigned.select("group", "split", "split_rule", "cases"), on="group").select(
        "node", "case_id", "component", pl.col("group").alias("leakage_group"), "split", "split_rule", "cases"
    )


def split_and_certify(
    det: Detection, recipe: Recipe, frozen: pl.DataFrame | None, clock: LayerClock
) -> tuple[pl.DataFrame, Certificate, pl.DataFrame, list[dict[str, Any]]]:
    """Group, split and certify; links the certificate finds are added and the split repaired, at most
    `REPAIR_ROUNDS` times. Returns (assigned, last certificate, added edges, rounds); `assigned` keeps each
    node's split before repair in `first_split`, and each round its train↔eval links per layer."""
    extra = pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "kind": pl.String, "score": pl.Float32})
    rounds = []
    assigned = pl.DataFrame()
    clock.phase("certificate", None, "rounds")
    first = pl.DataFrame()
    for round_no in range(REPAIR_ROUNDS + 1):
        clock.advance(1)
        assigned = group_and_split(det, recipe, frozen, extra, assigned if round_no else None)
        if round_no == 0:
            first = assigned.select("node", pl.col("split").alias("first_split"))
        with clock.layer(f"certificate_round_{round_no}"):
            cert = certify(det, assigned)
        rounds.append(
            {
                "round": round_no,
                "cross_links": cert.cross_link_total,
                "by_layer": {name: int(v["train_eval_links"]) for name, v in cert.layers.items()},
            }
        )
        if cert.cross_link_total == 0 or round_no == REPAIR_ROUNDS:
            break
        extra = pl.concat([extra, cert.cross_edges])
    assigned = assigned.join(first, on="node", maintain_order="left")
    return assigned, cert, extra, rounds


def repair_moves(assigned: pl.DataFrame, added: pl.DataFrame) -> pl.DataFrame:
    """(case_id, first_split, split, layers): the records repair moved, and the layers whose train↔eval links
    (found by the certificate and added as edges) touched their leakage group."""
    moved = assigned.filter(pl.col("split") != pl.col("first_split"))
    group_of = assigned.select("node", "leakage_group")
    touched = (
        pl.concat([added.select(pl.col("a").alias("node"), "kind"), added.select(pl.col("b").alias("node"), "kind")])
        .join(group_of, on="node")
        .group_by("leakage_group")
        .agg(pl.col("kind").unique().sort().alias("layers"))
    )
    return (
        moved.join(touched, on="leakage_group", how="left")
        .select("case_id", "first_split", "split", pl.col("layers").fill_null([]))
        .sort("case_id")
    )

"""Seeded train/val/test splits by group (patient until leakage groups exist).

Groups are ordered by sha256(seed:group) and cut by cumulative row count, so the ratios hold by rows,
a group never straddles two splits, and a group keeps its split when other groups are added or removed
only as far as the cumulative cut allows (use frozen eval mode, later, for hard guarantees).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from datakit.leakage.content_hash import sha256_hex
from datakit.recipe import Recipe, Split
from datakit.runner import StageContext, StageResult


def assign_splits(cases: pl.DataFrame, ratios: Split, seed: int, group: pl.Expr) -> pl.DataFrame:
    keyed = cases.with_columns(group.alias("split_group"))
    groups = keyed.group_by("split_group").agg(pl.len().alias("rows"))
    groups = groups.with_columns(sha256_hex(groups["split_group"], prefix=f"{seed}:").alias("order"))
    total = max(1, keyed.height)
    groups = groups.sort("order").with_columns(((pl.col("rows").cum_sum() - pl.col("rows")) / total).alias("start"))
    groups = groups.with_columns(
        pl.when(pl.col("start") < ratios.train)
        .then(pl.lit("train"))
        .when(pl.col("start") < ratios.train + ratios.val)
        .then(pl.lit("val"))
        .otherwise(pl.lit("test"))
        .alias("split")
    )
    return keyed.join(groups.select("split_group", "split"), on="split_group", how="left", maintain_order="left")


def split_config(recipe: Recipe) -> dict[str, Any]:
    return {"split": recipe.split.model_dump(mode="json"), "seed": recipe.seed, "group": "patient_id"}


def run_split(ctx: StageContext) -> StageResult:
    cases = ctx.read_input()
    ctx.set_total(cases.height)
    group = pl.coalesce(pl.col("patient_id"), pl.col("case_id"))
    out = assign_splits(cases, ctx.recipe.split, ctx.recipe.seed, group)
    ctx.write(out)
    ctx.advance(cases.height)
    counts = out.group_by("split").agg(pl.len(), pl.col("split_group").n_unique().alias("groups"))
    stats = {
        "rows_per_split": {r["split"]: r["len"] for r in counts.iter_rows(named=True)},
        "groups_per_split": {r["split"]: r["groups"] for r in counts.iter_rows(named=True)},
        "group_key": "patient_id (case_id where patient_id is missing)",
    }
    return StageResult(rows_in=cases.height, rows_out=out.height, stats=stats)

"""Candidate code lists from the retrieved neighbours, and whether each gold code made it into its list.

A neighbour at rank r (0 = best, after the guard and the rerank) votes 1/(r+1) for each of its codes; the `top`
codes by vote (ties by code) form the list. The prompt shows the list in code order, so the position of a code
says nothing about the answer. A specificity-correction example also lists the unspecified code it corrects.
"""

from __future__ import annotations

import polars as pl


def voted_codes(neighbours: pl.DataFrame, codes: pl.DataFrame, column: str, top: int) -> pl.DataFrame:
    """(node, <column>: list of up to `top` codes, code order). `neighbours`: node, rank, cand; `codes`: node,
    `column` (each case's codes)."""
    if top == 0:
        return pl.DataFrame(schema={"node": pl.Int64, column: pl.List(pl.String)})
    votes = (
        neighbours.join(codes.rename({"node": "cand", column: "code"}), on="cand")
        .explode("code")
        .drop_nulls("code")
        .group_by("node", "code")
        .agg((1.0 / (pl.col("rank") + 1)).sum().alias("vote"))
        .sort(["node", "vote", "code"], descending=[False, True, False])
        .group_by("node", maintain_order=True)
        .head(top)
    )
    return votes.group_by("node").agg(pl.col("code").sort().alias(column))


def with_unspecified(candidates: pl.Expr, from_code: pl.Expr) -> pl.Expr:
    """The list plus a specificity pair's unspecified code (null from_code: unchanged), in code order."""
    added = candidates.fill_null(pl.lit([], dtype=pl.List(pl.String))).list.concat(pl.concat_list(from_code))
    return pl.when(from_code.is_not_null()).then(added.list.unique().list.sort()).otherwise(candidates)


def gold_hits(frame: pl.DataFrame, gold: str, candidates: str, out: str) -> pl.DataFrame:
    """Add `out`: for each gold code of the row (in order), whether its candidate list holds it."""
    keyed = frame.select(pl.int_range(pl.len()).alias("_row"), gold, candidates)
    listed = keyed.select("_row", pl.col(candidates).alias("_code")).explode("_code").drop_nulls().unique()
    hits = (
        keyed.select("_row", pl.col(gold).alias("_code"))
        .explode("_code")
        .with_columns(pl.int_range(pl.len()).alias("_order"))
        .join(listed.with_columns(pl.lit(True).alias("_hit")), on=["_row", "_code"], how="left")
        .drop_nulls("_code")
        .sort("_order")
        .group_by("_row", maintain_order=True)
        .agg(pl.col("_hit").fill_null(False).alias(out))
    )
    result = keyed.select("_row").join(hits, on="_row", how="left", maintain_order="left")
    return frame.with_columns(result[out].fill_null(pl.lit([], dtype=pl.List(pl.Boolean))))


def recall(frame: pl.DataFrame, hits: str) -> dict[str, float | int]:
    """Micro recall (gold codes found / gold codes) and the share of rows with every gold code listed."""
    flat = frame[hits].explode().drop_nulls()
    rows = frame.filter(pl.col(hits).list.len() > 0)
    return {
        "gold_codes": flat.len(),
        "found": int(flat.sum()),
        "recall": round(int(flat.sum()) / flat.len(), 4) if flat.len() else 0.0,
        "rows_all_found": round(int(rows[hits].list.all().sum()) / rows.height, 4) if rows.height else 0.0,
    }

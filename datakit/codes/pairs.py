"""Specificity-correction pairs: an unspecified code that a more specific code of the same category replaces.

- from review diffs: `initial_icd10_codes` held an unspecified code that review replaced with a more specific code
  of the same 3-character category and the same 7th character (S82.90XA never pairs with S82.90XB);
- from the hierarchy, for cases without first-pass codes: a final code's nearest unspecified relative.
Joins over frames and the code table; no row loops.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from datakit.codes.icd10 import code_table, pair_kind, unspecified_relatives

PAIR_COLUMNS = ("case_id", "from_code", "to_code", "pair_kind", "pair_source")


def _attributes(prefix: str) -> pl.DataFrame:
    return code_table().select(
        pl.col("code").alias(f"{prefix}_code"),
        pl.col("category").alias(f"{prefix}_category"),
        pl.col("seventh").alias(f"{prefix}_seventh"),
        pl.col("n_unspecified").alias(f"{prefix}_unspecified"),
        pl.col("billable").alias(f"{prefix}_billable"),
        pl.col("description").alias(f"{prefix}_description"),
    )


def _with_kind(pairs: pl.DataFrame) -> pl.DataFrame:
    names = code_table().select("code", "description")
    out = pairs.join(
        names.rename({"code": "from_code", "description": "from_description"}), on="from_code", how="left"
    ).join(names.rename({"code": "to_code", "description": "to_description"}), on="to_code", how="left")
    return out.with_columns(pair_kind(pl.col("from_description"), pl.col("to_description")).alias("pair_kind"))


def review_pairs(cases: pl.DataFrame) -> pl.DataFrame:
    reviewed = cases.filter(pl.col("initial_icd10_codes").is_not_null()).select(
        "case_id",
        pl.col("initial_icd10_codes").list.set_difference("icd10_codes").alias("from_code"),
        pl.col("icd10_codes").list.set_difference("initial_icd10_codes").alias("to_code"),
    )
    removed = reviewed.select("case_id", "from_code").explode("from_code").drop_nulls()
    added = reviewed.select("case_id", "to_code").explode("to_code").drop_nulls()
    # Exploding keeps the final (priority) order, so the running index is each added code's rank.
    added = added.with_columns(pl.int_range(pl.len()).over("case_id").alias("position"))
    joined = (
        removed.join(added, on="case_id")
        .join(_attributes("from"), on="from_code")
        .join(_attributes("to"), on="to_code")
    )
    valid = joined.filter(
        (pl.col("from_category") == pl.col("to_category"))
        & (pl.col("from_seventh") == pl.col("to_seventh"))
        & (pl.col("from_unspecified") > pl.col("to_unspecified"))
        & pl.col("to_billable")
    )
    # One correction per unspecified code: the first specific code of the category in review order.
    best = (
        valid.sort(["case_id", "from_code", "position"]).group_by(["case_id", "from_code"], maintain_order=True).first()
    )
    return (
        _with_kind(best.select("case_id", "from_code", "to_code"))
        .with_columns(pl.lit("review").alias("pair_source"))
        .select(PAIR_COLUMNS)
    )


def hierarchy_pairs(cases: pl.DataFrame) -> pl.DataFrame:
    unreviewed = (
        cases.filter(pl.col("initial_icd10_codes").is_null())
        .select("case_id", pl.col("icd10_codes").alias("to_code"))
        .explode("to_code")
        .drop_nulls()
    )
    relatives = unspecified_relatives(unreviewed["to_code"])
    pairs = unreviewed.join(relatives, on="to_code", how="inner")
    return (
        _with_kind(pairs.select("case_id", "from_code", "to_code"))
        .with_columns(pl.lit("hierarchy").alias("pair_source"))
        .select(PAIR_COLUMNS)
    )


def specificity_pairs(cases: pl.DataFrame, sources: Sequence[str]) -> pl.DataFrame:
    frames = []
    if "review" in sources:
        frames.append(review_pairs(cases))
    if "hierarchy" in sources:
        frames.append(hierarchy_pairs(cases))
    if not frames:
        return pl.DataFrame(schema={c: pl.String for c in PAIR_COLUMNS})
    return (
        pl.concat(frames)
        .unique(["case_id", "from_code", "to_code"], keep="first", maintain_order=True)
        .sort(["case_id", "from_code", "to_code"])
    )

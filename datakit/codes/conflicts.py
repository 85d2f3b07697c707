"""Label conflicts: the same normalised content coded differently. Reported by id only; resolved by policy."""

from __future__ import annotations

import polars as pl

from datakit.content import CONTENT_FIELDS, FIELD_SEPARATOR, normalise_text, sha256_hex


def find_conflicts(cases: pl.DataFrame) -> pl.DataFrame:
    """case_id, conflict_group, answer, updated_at for every case in a group with more than one answer."""
    key = pl.concat_str([normalise_text(pl.col(f)) for f in CONTENT_FIELDS], separator=FIELD_SEPARATOR)
    keyed = cases.select(
        "case_id",
        "updated_at",
        key.alias("_key"),
        pl.concat_str(
            [
                pl.col("cpt_codes").list.join(","),
                pl.col("modifiers").fill_null([]).list.sort().list.join(","),
                pl.col("icd10_codes").list.join(","),
            ],
            separator="|",
        ).alias("answer"),
    )
    keyed = keyed.with_columns(pl.col("answer").n_unique().over("_key").alias("_answers"))
    conflicts = keyed.filter(pl.col("_answers") > 1)
    return (
        conflicts.with_columns(sha256_hex(conflicts["_key"]).str.slice(0, 16).alias("conflict_group"))
        .select("conflict_group", "case_id", "answer", "updated_at")
        .sort(["conflict_group", "updated_at", "case_id"])
    )


def resolve(cases: pl.DataFrame, conflicts: pl.DataFrame, policy: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the cases to keep and the conflict report with a `kept` column."""
    if policy == "keep_all":
        kept_ids = conflicts["case_id"]
    elif policy == "drop_all":
        kept_ids = conflicts["case_id"].clear()
    else:  # keep_latest: the most recent review of the group (ties: largest case_id)
        latest = (
            conflicts.sort(["updated_at", "case_id"], nulls_last=False)
            .group_by("conflict_group", maintain_order=True)
            .last()
        )
        kept_ids = latest["case_id"]
    report = conflicts.with_columns(pl.col("case_id").is_in(kept_ids.implode()).alias("kept"))
    dropped = report.filter(~pl.col("kept"))["case_id"]
    return cases.filter(~pl.col("case_id").is_in(dropped.implode())), report

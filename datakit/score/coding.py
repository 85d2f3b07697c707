"""Coding metrics per example: the published radiology-coding card's metrics, invalid codes, laterality conflicts.

Every metric is a per-example value (0/1 or a fraction) with a validity mask, so the mean, the slices and the
bootstrap treat them alike. Codes compare as sets (order aside) except the primary CPT, which is the first one.
An output that does not parse (or is missing) scores zero on every card metric; the invalid-code and laterality
rates are over the outputs that parse (an unparseable output has no codes to judge) and are counted apart.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from datakit.assemble.formats import parse_answers
from datakit.codes.icd10 import check as icd_check
from datakit.codes.modifiers import known_modifiers
from datakit.score.metrics import Metric, mean_metric

LEFT, RIGHT = r"\bleft\b", r"\bright\b"

CODING_METRICS: tuple[Metric, ...] = (
    mean_metric("cpt_exact", "CPT exact match (set)"),
    mean_metric("primary_cpt", "primary CPT match"),
    mean_metric("modifier_exact", "modifier exact match (set)"),
    mean_metric("icd_exact", "ICD-10 exact match (full set)"),
    mean_metric("icd_any_overlap", "ICD any overlap"),
    mean_metric("icd_root_overlap", "ICD root overlap (3-character category)"),
    mean_metric("icd_recall", "mean ICD recall"),
    mean_metric("icd_precision", "mean ICD precision"),
    mean_metric("all_three_exact", "CPT, modifiers and ICD all exact"),
    mean_metric("picked_specific", "specificity pair: the specific code, not the unspecified one", "pair"),
    mean_metric("invalid_code", "outputs with an invalid code (lower is better)", "parsed", lower_is_better=True),
    mean_metric("laterality_conflict", "outputs whose side contradicts the report (lower is better)", "parsed", True),
)


def _set_equal(a: str, b: str) -> pl.Expr:
    return pl.col(a).list.unique().list.sort() == pl.col(b).list.unique().list.sort()


def _fraction(hits: pl.Expr, total: pl.Expr, when_empty: pl.Expr) -> pl.Expr:
    return pl.when(total == 0).then(when_empty).otherwise(hits / total)


def _report_sides() -> tuple[pl.Expr, pl.Expr]:
    text = pl.concat_str(
        [pl.col("exam_description").fill_null(""), pl.col("report_text").fill_null("")], separator="\n"
    ).str.to_lowercase()
    return text.str.contains(LEFT), text.str.contains(RIGHT)


def code_checks(frame: pl.DataFrame, allow_list: list[str] | None) -> pl.DataFrame:
    """Per row (`_row`): which invalid codes the parsed output holds and which side its codes name."""
    icd = frame.select("_row", pl.col("p_icd").alias("code")).explode("code").drop_nulls("code")
    status = icd_check(icd["code"]).select(
        "code", "valid", "billable", pl.col("description").fill_null("").str.to_lowercase().alias("_d")
    )
    icd = (
        icd.join(status, on="code", how="left")
        .group_by("_row")
        .agg(
            (~pl.col("valid")).sum().alias("icd_unknown"),
            (pl.col("valid") & ~pl.col("billable")).sum().alias("icd_not_billable"),
            pl.col("_d").str.contains(RIGHT).any().alias("_icd_right"),
            pl.col("_d").str.contains(LEFT).any().alias("_icd_left"),
        )
    )
    known = list(known_modifiers())
    cpt_bad = (
        pl.col("p_cpt").list.eval(pl.element().is_in(allow_list).not_()).list.sum()
        if allow_list is not None
        else pl.lit(0)
    )
    rows = frame.select(
        "_row",
        cpt_bad.fill_null(0).alias("cpt_not_allowed"),
        pl.col("p_mod").list.eval(pl.element().is_in(known).not_()).list.sum().fill_null(0).alias("modifier_unknown"),
        pl.col("p_mod").list.contains("RT").fill_null(False).alias("_mod_right"),
        pl.col("p_mod").list.contains("LT").fill_null(False).alias("_mod_left"),
    )
    out = rows.join(icd, on="_row", how="left").with_columns(
        pl.col("icd_unknown", "icd_not_billable").fill_null(0), pl.col("_icd_right", "_icd_left").fill_null(False)
    )
    return out


def coding_rows(frame: pl.DataFrame, output: str, allow_list: list[str] | None) -> pl.DataFrame:
    """The frame with one column per CODING_METRICS name, `parse_error` and the invalid-code counts.

    `output` names the column holding the raw output text (null: no output); gold answers come from the
    completion. The frame needs `completion`, `exam_description`, `report_text`, `from_code`, `to_code`."""
    gold = parse_answers(pl.col("completion").list.first().struct.field("content"))
    parsed = (
        frame.with_row_index("_row")
        .with_columns(gold.alias("_g"), parse_answers(pl.col(output)).alias("_p"))
        .with_columns(
            pl.col("_g").struct.field("cpt_codes").alias("g_cpt"),
            pl.col("_g").struct.field("modifiers").alias("g_mod"),
            pl.col("_g").struct.field("icd10_codes").alias("g_icd"),
            pl.col("_p").struct.field("cpt_codes").alias("p_cpt"),
            pl.col("_p").struct.field("modifiers").alias("p_mod"),
            pl.col("_p").struct.field("icd10_codes").alias("p_icd"),
            pl.when(pl.col(output).is_null())
            .then(pl.lit("missing"))
            .otherwise(pl.col("_p").struct.field("parse_error"))
            .alias("parse_error"),
        )
    )
    if parsed["_g"].struct.field("parse_error").is_not_null().any():
        raise ValueError("a gold completion of the shards does not parse: the shards are not a coding run's")
    checks = code_checks(parsed, allow_list)
    parsed = parsed.join(checks, on="_row", how="left", maintain_order="left")
    hits = pl.col("p_icd").list.set_intersection("g_icd").list.len()
    n_pred, n_gold = pl.col("p_icd").list.len(), pl.col("g_icd").list.len()
    roots = (
        pl.col("p_icd")
        .list.eval(pl.element().str.slice(0, 3))
        .list.set_intersection(pl.col("g_icd").list.eval(pl.element().str.slice(0, 3)))
    )
    said_left, said_right = _report_sides()
    side_right = pl.col("_mod_right") | pl.col("_icd_right")
    side_left = pl.col("_mod_left") | pl.col("_icd_left")
    ok = pl.col("parse_error").is_null()
    values = {
        "cpt_exact": _set_equal("p_cpt", "g_cpt"),
        "primary_cpt": pl.col("p_cpt").list.first() == pl.col("g_cpt").list.first(),
        "modifier_exact": _set_equal("p_mod", "g_mod"),
        "icd_exact": _set_equal("p_icd", "g_icd"),
        "icd_any_overlap": (hits > 0) | ((n_gold == 0) & (n_pred == 0)),
        "icd_root_overlap": (roots.list.len() > 0) | ((n_gold == 0) & (n_pred == 0)),
        "icd_recall": _fraction(hits, n_gold, (n_pred == 0).cast(pl.Float64)),
        "icd_precision": _fraction(hits, n_pred, (n_gold == 0).cast(pl.Float64)),
        "picked_specific": pl.col("p_icd").list.contains(pl.col("to_code"))
        & ~pl.col("p_icd").list.contains(pl.col("from_code")),
        "invalid_code": pl.sum_horizontal("icd_unknown", "icd_not_billable", "cpt_not_allowed", "modifier_unknown") > 0,
        "laterality_conflict": (side_right & said_left & ~said_right) | (side_left & said_right & ~said_left),
    }
    parsed = parsed.with_columns(
        pl.when(ok).then(expr.cast(pl.Float64)).otherwise(0.0).fill_null(0.0).alias(name)
        for name, expr in values.items()
    )
    parsed = parsed.with_columns(
        (pl.col("cpt_exact") * pl.col("modifier_exact") * pl.col("icd_exact")).alias("all_three_exact"),
        ok.alias("parsed"),
        pl.col("pair_of").is_not_null().alias("pair"),
    )
    return parsed.drop("_g", "_p", "_row", "_mod_right", "_mod_left", "_icd_right", "_icd_left")


def invalid_code_counts(rows: pl.DataFrame) -> dict[str, Any]:
    """Codes judged invalid, by kind: how many codes and how many outputs hold one."""
    out: dict[str, Any] = {}
    for kind in ("icd_unknown", "icd_not_billable", "cpt_not_allowed", "modifier_unknown"):
        column = rows[kind].fill_null(0)
        out[kind] = {"codes": int(column.sum()), "outputs": int((column > 0).sum())}
    return out

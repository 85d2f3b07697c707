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
from datakit.codes.modifiers import LEFT, RIGHT, known_modifiers, text_says
from datakit.score.inputs import gold_text
from datakit.score.metrics import Metric, mean_metric

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
    shared = pl.col(a).list.set_intersection(b).list.len()
    return (shared == pl.col(a).list.n_unique()) & (shared == pl.col(b).list.n_unique())


def _fraction(hits: pl.Expr, total: pl.Expr, when_empty: pl.Expr) -> pl.Expr:
    return pl.when(total == 0).then(when_empty).otherwise(hits / total)


def report_sides(examples: pl.DataFrame) -> pl.DataFrame:
    """`said_left`, `said_right`: which sides the exam description and the report name (the codes stage's own
    test; computed once per evaluation, shared by every system scored on these examples)."""
    return examples.with_columns(text_says(LEFT).alias("said_left"), text_says(RIGHT).alias("said_right"))


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
    mods = frame.select("_row", pl.col("p_mod").alias("m")).explode("m").drop_nulls("m")
    mods = mods.group_by("_row").agg(
        (~pl.col("m").is_in(list(known_modifiers()))).sum().alias("modifier_unknown"),
        (pl.col("m") == "RT").any().alias("_mod_right"),
        (pl.col("m") == "LT").any().alias("_mod_left"),
    )
    cpts = frame.select("_row", pl.col("p_cpt").alias("c")).explode("c").drop_nulls("c")
    allowed = pl.col("c").is_in(allow_list) if allow_list is not None else pl.lit(True)
    cpts = cpts.group_by("_row").agg((~allowed).sum().alias("cpt_not_allowed"))
    out = frame.select("_row")
    for part in (icd, mods, cpts):
        out = out.join(part, on="_row", how="left", maintain_order="left")
    counts = ("icd_unknown", "icd_not_billable", "cpt_not_allowed", "modifier_unknown")
    return out.with_columns(pl.col(counts).fill_null(0), pl.col("^_(mod|icd)_(left|right)$").fill_null(False))


def prepare(examples: pl.DataFrame) -> pl.DataFrame:
    """What every system's scoring shares, computed once: the gold answers parsed (`g_cpt`, `g_mod`, `g_icd`)
    and the sides the report names."""
    gold = parse_answers(examples.select(gold_text()).to_series())
    if gold["parse_error"].is_not_null().any():
        raise ValueError("a gold completion of the shards does not parse: the shards are not a coding run's")
    columns = {"cpt_codes": "g_cpt", "modifiers": "g_mod", "icd10_codes": "g_icd"}
    return report_sides(
        pl.concat([examples, gold.select(pl.col(k).alias(v) for k, v in columns.items())], how="horizontal")
    )


def coding_rows(frame: pl.DataFrame, output: str, allow_list: list[str] | None) -> pl.DataFrame:
    """The frame with one column per CODING_METRICS name, `parse_error` and the invalid-code counts.

    `output` names the column holding the raw output text (null: no output); gold answers come from the
    completion. The frame needs `completion`, `exam_description`, `report_text`, `pair_of`, `from_code`,
    `to_code`; pass it through `prepare` once when several systems are scored on the same examples."""
    if "g_cpt" not in frame.columns:
        frame = prepare(frame)
    pred = parse_answers(frame[output])
    parsed = pl.concat(
        [
            frame.with_row_index("_row"),
            pred.select(
                pl.col("cpt_codes").alias("p_cpt"),
                pl.col("modifiers").alias("p_mod"),
                pl.col("icd10_codes").alias("p_icd"),
                pl.when(frame[output].is_null())
                .then(pl.lit("missing"))
                .otherwise(pl.col("parse_error"))
                .alias("parse_error"),
            ),
        ],
        how="horizontal",
    )
    checks = code_checks(parsed, allow_list)
    parsed = parsed.join(checks, on="_row", how="left", maintain_order="left")
    hits = pl.col("p_icd").list.set_intersection("g_icd").list.len()
    n_pred, n_gold = pl.col("p_icd").list.len(), pl.col("g_icd").list.len()
    roots = (
        pl.col("p_icd")
        .list.eval(pl.element().str.slice(0, 3))
        .list.set_intersection(pl.col("g_icd").list.eval(pl.element().str.slice(0, 3)))
    )
    said_left, said_right = pl.col("said_left"), pl.col("said_right")
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
    return parsed.drop("_row", "_mod_right", "_mod_left", "_icd_right", "_icd_left")


def invalid_code_counts(rows: pl.DataFrame) -> dict[str, Any]:
    """Codes judged invalid, by kind: how many codes and how many outputs hold one."""
    out: dict[str, Any] = {}
    for kind in ("icd_unknown", "icd_not_billable", "cpt_not_allowed", "modifier_unknown"):
        column = rows[kind].fill_null(0)
        out[kind] = {"codes": int(column.sum()), "outputs": int((column > 0).sum())}
    return out

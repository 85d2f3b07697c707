"""The slices a score is broken down by: one level per example for each facet, from the shards' own columns.

Exam families are the first two words of the exam description (`CT ABDOMEN`, `XR CHEST`); families with fewer
than `min_family` examples are pooled as `other`, so the report never names a rare description.
"""

from __future__ import annotations

import polars as pl

MIN_FAMILY = 10


def _tag(prefix: str) -> pl.Expr:
    """The tags of an example that start with `prefix:`, without the prefix, sorted and joined by '+'."""
    chosen = pl.col("tags").list.eval(pl.element().filter(pl.element().str.starts_with(f"{prefix}:")))
    return chosen.list.eval(pl.element().str.slice(len(prefix) + 1)).list.sort().list.join("+")


def exam_family(min_family: int = MIN_FAMILY) -> pl.Expr:
    words = (
        pl.col("exam_description")
        .fill_null("")
        .str.to_uppercase()
        .str.extract_all(r"[A-Z0-9+/-]+")
        .list.head(2)
        .list.join(" ")
    )
    family = pl.when(words == "").then(pl.lit("(none)")).otherwise(words)
    return pl.when(family.count().over(family) >= min_family).then(family).otherwise(pl.lit("other"))


def gold_in_candidates() -> pl.Expr:
    """all / some / none of the gold codes in the prompt's candidate lists; `no list` without candidates."""
    hits = pl.col("cpt_gold_in_candidates").list.concat(pl.col("icd_gold_in_candidates"))
    return (
        pl.when(pl.col("cpt_candidates").is_null() & pl.col("icd_candidates").is_null())
        .then(pl.lit("no list"))
        .when(hits.list.all())
        .then(pl.lit("all"))
        .when(hits.list.any())
        .then(pl.lit("some"))
        .otherwise(pl.lit("none"))
    )


def facets(examples: pl.DataFrame, task: str, min_family: int = MIN_FAMILY) -> dict[str, pl.Series]:
    """Facet name -> one level per example (row order kept)."""
    exprs = {
        "modality": _tag("modality"),
        "exam_family": exam_family(min_family),
        "prompt_format": pl.col("prompt_format").fill_null("(none)"),
        "n_shots": pl.col("n_shots").cast(pl.String),
    }
    if task == "coding":
        hard = _tag("hard_case")
        exprs["hard_case"] = pl.when(hard == "").then(pl.lit("none")).otherwise(hard)
        exprs["specificity_pair"] = (
            pl.when(pl.col("pair_of").is_null())
            .then(pl.lit("base"))
            .otherwise(pl.concat_str([pl.lit("pair:"), pl.col("pair_kind").fill_null("?")]))
        )
        exprs["gold_in_candidates"] = gold_in_candidates()
    frame = examples.select(expr.alias(name) for name, expr in exprs.items())
    return {name: frame[name] for name in exprs}

"""The `assemble` stage: one training example per case (few-shot retrieval arrives with the assembly issue)."""

from __future__ import annotations

from typing import Any

import polars as pl

from datakit.assemble.prompt import system_message, with_messages
from datakit.leakage.content_hash import content_hash, sha256_hex
from datakit.recipe import Recipe
from datakit.runner import StageContext, StageResult

EXAMPLE_COLUMNS = (
    "example_id",
    "case_id",
    "split",
    "prompt",
    "completion",
    "sample_weight",
    "n_prompt_tokens",
    "n_completion_tokens",
    "tags",
    "case_content_hash",
    "pair_of",
    "from_code",
    "to_code",
    "pair_kind",
)
PAIR_COLUMNS = ("pair_of", "from_code", "to_code", "pair_kind")

# Leading words of exam descriptions -> modality tag.
MODALITY_WORDS = {
    "XR": "XR",
    "CT": "CT",
    "CTA": "CT",
    "MRI": "MR",
    "MR": "MR",
    "US": "US",
    "MAMMO": "MG",
    "MG": "MG",
    "NM": "NM",
    "PET": "NM",
}


def assemble_config(recipe: Recipe) -> dict[str, Any]:
    return {"task": recipe.task, "system": system_message(recipe.prompt)}


def modality_tag() -> pl.Expr:
    first = pl.col("exam_description").fill_null("").str.to_uppercase().str.extract(r"^\s*([A-Z]+)", 1)
    return pl.concat_str([pl.lit("modality:"), first.replace_strict(MODALITY_WORDS, default="other")])


def build_examples(cases: pl.DataFrame, recipe: Recipe) -> pl.DataFrame:
    """One example per row. Rows from the codes stage carry example_key, sample_weight, code_tags and pair
    columns; rows of tasks without a codes stage get the defaults (one base example of weight 1)."""
    defaults: dict[str, pl.Expr] = {
        "example_key": pl.lit("base"),
        "sample_weight": pl.lit(1.0),
        "code_tags": pl.lit([], dtype=pl.List(pl.String)),
        **{c: pl.lit(None, dtype=pl.String) for c in PAIR_COLUMNS},
    }
    cases = cases.with_columns(expr.alias(name) for name, expr in defaults.items() if name not in cases.columns)
    if "case_content_hash" not in cases.columns:
        cases = cases.with_columns(content_hash(cases).alias("case_content_hash"))
    frame = with_messages(cases, recipe.task, recipe.prompt)
    keys = frame.select(pl.concat_str([pl.col("example_key"), pl.lit(":"), pl.col("case_id")])).to_series()
    frame = frame.with_columns(
        sha256_hex(keys, prefix="example:").str.slice(0, 24).alias("example_id"),
        pl.col("sample_weight").cast(pl.Float64),
        pl.concat_list([pl.lit(f"task:{recipe.task}"), modality_tag()]).list.concat("code_tags").alias("tags"),
    )
    return frame.select(EXAMPLE_COLUMNS).sort("example_id")


def run_assemble(ctx: StageContext) -> StageResult:
    cases = ctx.read_input()
    ctx.set_total(cases.height)
    examples = build_examples(cases, ctx.recipe)
    ctx.write(examples)
    ctx.advance(cases.height)
    stats = {"examples_per_split": dict(examples.group_by("split").len().sort("split").iter_rows())}
    return StageResult(rows_in=cases.height, rows_out=examples.height, stats=stats)

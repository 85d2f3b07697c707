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
)

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
    frame = with_messages(cases, recipe.task, recipe.prompt)
    frame = frame.with_columns(
        sha256_hex(frame["case_id"], prefix="example:base:").str.slice(0, 24).alias("example_id"),
        content_hash(frame).alias("case_content_hash"),
        pl.lit(1.0).alias("sample_weight"),
        pl.concat_list([pl.lit(f"task:{recipe.task}"), modality_tag()]).alias("tags"),
    )
    return frame.select(EXAMPLE_COLUMNS).sort("example_id")


def run_assemble(ctx: StageContext) -> StageResult:
    cases = ctx.read("split")
    ctx.set_total(cases.height)
    examples = build_examples(cases, ctx.recipe)
    ctx.write(examples)
    ctx.advance(cases.height)
    stats = {"examples_per_split": dict(examples.group_by("split").len().sort("split").iter_rows())}
    return StageResult(rows_in=cases.height, rows_out=examples.height, stats=stats)

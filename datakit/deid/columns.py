"""Which columns the deid stage changes: every free-text column is de-identified and every identifier keyed,
unless the recipe keeps it by name (`deid.keep_columns`).

A text column of the cases is free text unless it is keyed (`deid.id_columns`), kept, or a category datakit reads
as a value (`review_status`, the `split.source_column`). When `deid.text_columns` is given, a free-text column it
leaves out is an error (it would pass through as written), not a silent omission.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from datakit.errors import RecipeError
from datakit.recipe import Recipe

CATEGORIES = ("review_status",)  # text datakit reads as a value: never free text


@dataclass(frozen=True)
class Columns:
    text: tuple[str, ...]  # de-identified
    ids: tuple[str, ...]  # keyed
    kept: tuple[str, ...]  # left as they are, by the recipe's choice


def deid_columns(recipe: Recipe, schema: pl.Schema) -> Columns:
    cfg = recipe.deid
    present = [c for c in schema.names() if not c.startswith("_")]
    kept = tuple(c for c in cfg.keep_columns if c in present)
    ids = tuple(c for c in cfg.id_columns if c in present and c not in kept)
    categories = {*CATEGORIES, *([recipe.split.source_column] if recipe.split.source_column else [])}
    free = [c for c in present if schema[c] == pl.String and c not in ids and c not in kept and c not in categories]
    if cfg.text_columns is None:
        return Columns(tuple(free), ids, kept)
    text = tuple(c for c in cfg.text_columns if c in present and c not in kept)
    left = [c for c in free if c not in text]
    if left:
        raise RecipeError(
            f"deid: the text column(s) {', '.join(left)} are in neither deid.text_columns nor deid.keep_columns: "
            "de-identify them (add them to deid.text_columns, or leave deid.text_columns unset for every text column) "
            "or name them in deid.keep_columns to keep them as they are"
        )
    return Columns(text, ids, kept)

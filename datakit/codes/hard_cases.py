"""Hard cases: multi-code and modifier-heavy cases, tagged (and optionally up-weighted)."""

from __future__ import annotations

import polars as pl

HARD_MODIFIERS = ("59", "XS", "XU", "76", "77")


def hard_case_tags() -> list[pl.Expr]:
    mods = pl.col("modifiers").fill_null([])
    multi = (pl.col("cpt_codes").list.len() >= 2) | (pl.col("icd10_codes").list.len() >= 3)
    heavy = (mods.list.len() >= 2) | mods.list.eval(pl.element().is_in(list(HARD_MODIFIERS))).list.any()
    return [
        pl.when(multi).then(pl.lit("hard_case:multi_code")),
        pl.when(heavy).then(pl.lit("hard_case:modifier_heavy")),
    ]

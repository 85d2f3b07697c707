"""Modifiers: a known set with meanings, and consistency flags (laterality, bilateral, component billing)."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources

import polars as pl


@functools.lru_cache(maxsize=1)
def known_modifiers() -> dict[str, str]:
    text = resources.files("datakit.codes").joinpath("data/modifiers.toml").read_text(encoding="utf-8")
    return dict(tomllib.loads(text)["modifiers"])


def _has(code: str) -> pl.Expr:
    return pl.col("modifiers").fill_null([]).list.contains(code)


LEFT, RIGHT = r"\bleft\b", r"\bright\b"


def text_says(pattern: str) -> pl.Expr:
    """Whether a case's exam description or report matches `pattern`, ignoring case."""
    text = pl.concat_str(
        [pl.col("exam_description").fill_null(""), pl.col("report_text").fill_null("")], separator="\n"
    )
    return text.str.contains(f"(?i){pattern}")


def modifier_flags() -> list[pl.Expr]:
    """One nullable string expression per flag; null when the flag does not apply."""
    left, right = text_says(LEFT), text_says(RIGHT)
    unknown = pl.col("modifiers").fill_null([]).list.eval(pl.element().is_in(list(known_modifiers())).not_()).list.any()
    return [
        pl.when(_has("RT") & left & ~right).then(pl.lit("flag:rt_but_text_says_left")),
        pl.when(_has("LT") & right & ~left).then(pl.lit("flag:lt_but_text_says_right")),
        pl.when(_has("50") & (_has("LT") | _has("RT"))).then(pl.lit("flag:bilateral_with_side")),
        pl.when(_has("26") & _has("TC")).then(pl.lit("flag:26_with_tc")),
        pl.when(unknown).then(pl.lit("flag:unknown_modifier")),
    ]

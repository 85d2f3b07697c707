"""ICD-10-CM through `simple-icd-10-cm` (the current CDC code set; no hand-written tables).

Everything works on the unique codes of a frame joined against one table of the code set, never per row.
"""

from __future__ import annotations

import functools

import polars as pl
import simple_icd_10_cm as icd

UNSPECIFIED = r"(?i)\bunspecified\b"


@functools.lru_cache(maxsize=1)
def code_table() -> pl.DataFrame:
    """Every code of the set (chapters and blocks excluded): dotted code, billable, description, category."""
    codes = [
        c
        for c in icd.get_all_codes(with_dots=True)
        if icd.is_category_or_subcategory(c) or icd.is_extended_subcategory(c)
    ]
    table = pl.DataFrame(
        {
            "code": codes,
            "billable": [icd.is_leaf(c) for c in codes],
            "description": [icd.get_description(c) for c in codes],
        }
    )
    return table.with_columns(
        pl.col("code").str.slice(0, 3).alias("category"),
        pl.col("code").str.replace(".", "", literal=True).alias("dotless"),
        pl.col("description").str.count_matches(UNSPECIFIED).alias("n_unspecified"),
    ).with_columns(
        pl.when(pl.col("dotless").str.len_chars() == 7)
        .then(pl.col("dotless").str.slice(6, 1))
        .otherwise(pl.lit(""))
        .alias("seventh")
    )


def normalise(expr: pl.Expr) -> pl.Expr:
    """Upper case, no spaces, dot after the category: ' m25511 ' -> 'M25.511', 'J90' -> 'J90'."""
    dotless = expr.str.to_uppercase().str.replace_all(r"[\s.]", "")
    return (
        pl.when(dotless.str.len_chars() > 3)
        .then(pl.concat_str([dotless.str.slice(0, 3), pl.lit("."), dotless.str.slice(3)]))
        .otherwise(dotless)
    )


def normalise_lists(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).list.eval(normalise(pl.element())).alias(c) for c in columns if c in frame.columns
    )


def check(codes: pl.Series) -> pl.DataFrame:
    """Status of each unique code: `valid` (exists), `billable` (leaf), description."""
    unique = pl.DataFrame({"code": codes.drop_nulls().unique()})
    table = code_table().select("code", "billable", "description")
    out = unique.join(table, on="code", how="left")
    return out.with_columns(pl.col("billable").is_not_null().alias("valid"), pl.col("billable").fill_null(False))


def unspecified_relatives(codes: pl.Series) -> pl.DataFrame:
    """For each code, its nearest less specific billable relative: same category, same 7th character, more
    'unspecified' in its description, in the same subcategory or a direct child of the category, longest shared
    prefix first (ties: smallest code). Codes without one are absent.
    """
    table = code_table().filter(pl.col("billable"))
    targets = pl.DataFrame({"code": codes.drop_nulls().unique()}).join(table, on="code", how="inner")
    candidates = table.filter(pl.col("n_unspecified") > 0).select(
        pl.col("code").alias("from_code"),
        "category",
        "seventh",
        pl.col("dotless").alias("from_dotless"),
        pl.col("n_unspecified").alias("from_unspecified"),
    )
    pairs = targets.join(candidates, on=["category", "seventh"], how="inner").filter(
        (pl.col("from_unspecified") > pl.col("n_unspecified")) & (pl.col("from_code") != pl.col("code"))
    )
    # "with unspecified angina" is not an unspecified form of "without angina": a different statement.
    descriptions = table.select(pl.col("code").alias("from_code"), pl.col("description").alias("from_description"))
    pairs = pairs.join(descriptions, on="from_code").filter(
        ~(
            pl.col("from_description").str.contains(r"(?i)\bwith unspecified\b")
            & pl.col("description").str.contains(r"(?i)\bwithout\b")
        )
    )
    shared = pl.sum_horizontal(
        (pl.col("dotless").str.slice(0, k) == pl.col("from_dotless").str.slice(0, k)).cast(pl.Int8) for k in range(4, 8)
    )
    # A relative in the same subcategory, or the category's own direct child (R07.9 for R07.89, Z12.9 for
    # Z12.31); never a cousin in another subcategory (Z12.10, intestinal tract, is no form of Z12.31).
    pairs = pairs.with_columns(shared.alias("shared")).filter(
        (pl.col("shared") >= 1) | (pl.col("from_dotless").str.len_chars() == 4)
    )
    best = (
        pairs.sort(["code", "shared", "from_code"], descending=[False, True, False])
        .group_by("code", maintain_order=True)
        .first()
    )
    return best.select(pl.col("code").alias("to_code"), "from_code")


def pair_kind(from_description: pl.Expr, to_description: pl.Expr) -> pl.Expr:
    """What the correction adds: laterality, site, episode and/or type, joined by '+'."""
    to_lower, from_lower = to_description.str.to_lowercase(), from_description.str.to_lowercase()
    side = r"\b(right|left|bilateral)\b"
    site = r"unspecified (site|part|joint|region|bronchus|lobe|organ|bone|quadrant)|part unspecified|site unspecified"
    episode = r"\b(acute|chronic|subacute|recurrent|intractable)\b"
    kinds = [
        pl.when(to_lower.str.contains(side) & ~from_lower.str.contains(side)).then(pl.lit("laterality")),
        pl.when(from_lower.str.contains(site)).then(pl.lit("site")),
        pl.when(to_lower.str.contains(episode) & ~from_lower.str.contains(episode)).then(pl.lit("episode")),
    ]
    joined = pl.concat_str(kinds, separator="+", ignore_nulls=True)
    return pl.when(joined == "").then(pl.lit("type")).otherwise(joined)


def ancestors(code: str) -> list[str]:
    """Parents up to the chapter, nearest first (code-set navigation for reports and tools)."""
    return list(icd.get_ancestors(code))


def children(code: str) -> list[str]:
    return list(icd.get_children(code))

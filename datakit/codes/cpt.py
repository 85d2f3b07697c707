"""CPT / HCPCS Level II: format checks and an optional allow-list (CPT descriptors are licensed: none ship)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from datakit.errors import RecipeError

CPT_FORMAT = r"^(\d{5}|\d{4}[FTU])$"  # Category I (5 digits); Category II (F), III (T), PLA (U)
HCPCS_FORMAT = r"^[A-V]\d{4}$"  # HCPCS Level II


def load_allow_list(path: str | None) -> list[str] | None:
    if not path:
        return None
    file = Path(path)
    if not file.is_file():
        raise RecipeError(f"codes.cpt_allow_list: file not found: {path}")
    codes = [line.split("#")[0].strip().upper() for line in file.read_text().splitlines()]
    return sorted({c for c in codes if c})


def check(codes: pl.Series, allow_list: list[str] | None) -> pl.DataFrame:
    """Status of each unique code: `well_formed` and `allowed` (True when there is no allow-list)."""
    unique = pl.DataFrame({"code": codes.drop_nulls().unique().str.to_uppercase().str.strip_chars()})
    return unique.with_columns(
        (pl.col("code").str.contains(CPT_FORMAT) | pl.col("code").str.contains(HCPCS_FORMAT)).alias("well_formed"),
        (pl.col("code").is_in(allow_list) if allow_list is not None else pl.lit(True)).alias("allowed"),
    )

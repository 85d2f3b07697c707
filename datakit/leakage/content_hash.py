"""Content hashes over the coding-relevant input of a case (exam description, reason, report text)."""

from __future__ import annotations

import hashlib

import polars as pl

CONTENT_FIELDS = ("exam_description", "reason_for_exam", "report_text")
FIELD_SEPARATOR = "\x1f"


def sha256_hex(values: pl.Series, prefix: str = "") -> pl.Series:
    """sha256 hex digest of each string (nulls hash as empty). Stable across Polars versions, unlike .hash()."""
    digests = [hashlib.sha256(f"{prefix}{v or ''}".encode()).hexdigest() for v in values.to_list()]
    return pl.Series(values.name, digests, dtype=pl.String)


def content_key(fields: tuple[str, ...] = CONTENT_FIELDS) -> pl.Expr:
    """The text that is hashed: the fields joined by a unit separator, nulls as empty strings."""
    return pl.concat_str([pl.col(f).fill_null("") for f in fields], separator=FIELD_SEPARATOR)


def content_hash(frame: pl.DataFrame, fields: tuple[str, ...] = CONTENT_FIELDS) -> pl.Series:
    return sha256_hex(frame.select(content_key(fields).alias("case_content_hash")).to_series())

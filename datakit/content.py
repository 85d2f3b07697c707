"""Normalisation and content hashing: what deid, codes, leakage and shards call "the same text".

Content hashes cover the coding-relevant input of a case (exam description, reason, report text).

Normalisation (Polars expressions, no row loops). What is folded: Unicode (NFKC), case, runs of whitespace,
spaces before punctuation, repeated punctuation, the space between a number and its unit ("5mm" = "5 mm"), and
de-identification placeholders of every common style (`[NAME]`, `<PERSON>`, `[**Name**]`, `{{DATE}}`, `XXXX`)
which all become `[phi]`.

What is kept, because the codes depend on it: digits and decimals ("5 mm" != "12 mm"), laterality words
("left" != "right"), negation ("no effusion" != "effusion"), vertebral levels and ranges ("L4-5", "C5-C6"),
and word order.
"""

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


PHI_PLACEHOLDER = "[phi]"

# De-identification placeholders as different tools write them: [NAME], [DATE_1], <PERSON>, [**Last Name**],
# {{PATIENT}}, and runs of X as in the Indiana University reports ("XXXX").
_PLACEHOLDERS = (
    r"\[\*\*[^\]]{0,60}\*\*\]",
    r"\{\{[a-z0-9_ -]{1,40}\}\}",
    r"\[[a-z][a-z0-9_ -]{0,38}\]",
    r"<[a-z][a-z0-9_ -]{0,38}>",
    r"\bx{3,}\b",
)
PLACEHOLDER_PATTERN = "|".join(f"(?:{p})" for p in _PLACEHOLDERS)
_UNITS = r"mm|cm|m|ml|cc|mg|kg|g|mci|mbq|msv|mgy|kvp|kv|mas|hu|t"


def description_key(expr: pl.Expr) -> pl.Expr:
    """An exam description as a grouping key: upper case, whitespace runs as one space, stripped (nulls stay)."""
    return expr.str.to_uppercase().str.replace_all(r"\s+", " ").str.strip_chars()


def normalise_text(expr: pl.Expr) -> pl.Expr:
    """The normalised form of a text column (nulls become empty strings)."""
    text = expr.fill_null("").str.normalize("NFKC").str.to_lowercase()
    text = text.str.replace_all(PLACEHOLDER_PATTERN, PHI_PLACEHOLDER)
    # "[phi] [phi]" and "[phi][phi]" are one redaction written twice by some tools
    text = text.str.replace_all(r"\[phi\](?:[\s,]*\[phi\])+", PHI_PLACEHOLDER)
    text = text.str.replace_all(r"\s+", " ")
    # a number glued to its unit gets one space: 5mm -> 5 mm, 1.5T -> 1.5 t (the digits stay)
    text = text.str.replace_all(rf"(\d)\s?({_UNITS})\b", "$1 $2")
    text = text.str.replace_all(r"(\d)\s+%", "$1%")
    # no space before closing punctuation; one punctuation mark where a run was typed
    text = text.str.replace_all(r"\s+([.,;:!?)\]])", "$1")
    text = text.str.replace_all(r"([(\[])\s+", "$1")
    text = text.str.replace_all(r"([.,;:!?])[.,;:!?]+", "$1")
    return text.str.strip_chars()

"""Text normalisation for hashing: Unicode NFKC, case and whitespace folding.

Numbers, units, laterality and negation are kept as they are ("5 mm" != "12 mm", "left" != "right",
"no effusion" != "effusion"); digits are never folded.
"""

from __future__ import annotations

import polars as pl


def normalise_text(expr: pl.Expr) -> pl.Expr:
    return expr.fill_null("").str.normalize("NFKC").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()

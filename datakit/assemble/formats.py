"""The coding answer line: `CPT[, CPT2], MOD, ICD1, ICD2, ...`.

CPT/HCPCS codes come first, then exactly one modifier slot (modifiers separated by spaces; empty when
there are none, e.g. `74176, , R10.84`), then ICD-10-CM codes in priority order.

A model's output is read tolerantly of spacing and case (`  answer: 73562 ,26  rt, m17.11 ` reads as
`73562, 26 RT, M17.11`) and strictly about structure: one line, codes in this order, every token well formed.
`parse_answer` reads one line (and says what is wrong); `parse_answers` reads a whole column the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

CPT_PATTERN = re.compile(r"^(\d{5}|\d{4}[FTU]|[A-V]\d{4})$")
MODIFIER_PATTERN = re.compile(r"^[0-9A-Z]{2}$")
ICD10_PATTERN = re.compile(r"^[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$")


@dataclass(frozen=True)
class Answer:
    cpt_codes: tuple[str, ...]
    modifiers: tuple[str, ...]
    icd10_codes: tuple[str, ...]


def answer_line_expr() -> pl.Expr:
    """Vectorised: the answer line of every row of a case frame."""
    return pl.concat_str(
        [
            pl.col("cpt_codes").list.join(", "),
            pl.col("modifiers").fill_null([]).list.join(" "),
            pl.col("icd10_codes").list.join(", "),
        ],
        separator=", ",
    )


def format_answer(answer: Answer) -> str:
    return ", ".join([", ".join(answer.cpt_codes), " ".join(answer.modifiers), ", ".join(answer.icd10_codes)])


ANSWER_PREFIX = r"(?i)^ANSWER\s*:\s*"
# Why an output does not parse, in the order they are checked (the first that applies is reported).
PARSE_ERRORS = ("empty", "more_than_one_line", "no_cpt", "no_modifier_slot", "bad_modifier", "bad_icd")


def _normalised(line: str) -> str:
    return re.sub(ANSWER_PREFIX, "", line.strip()).upper()


def parse_answer(line: str) -> Answer:
    """Parse a model's (or a shard's) answer line. Raises ValueError naming the first bad token."""
    line = _normalised(line)
    if "\n" in line:
        raise ValueError("the answer has more than one line")
    tokens = [t.strip() for t in line.split(",")]
    cpt: list[str] = []
    while tokens and CPT_PATTERN.match(tokens[0]):
        cpt.append(tokens.pop(0))
    if not cpt:
        raise ValueError("answer line must start with a CPT or HCPCS code")
    if not tokens:
        raise ValueError("answer line has no modifier slot")
    mods = tokens.pop(0).split()
    for m in mods:
        if not MODIFIER_PATTERN.match(m):
            raise ValueError(f"'{m}' is not a modifier")
    if tokens == [""]:  # no ICD codes: the line ends with the modifier slot
        tokens = []
    for code in tokens:
        if not ICD10_PATTERN.match(code):
            raise ValueError(f"'{code}' is not an ICD-10-CM code")
    return Answer(tuple(cpt), tuple(mods), tuple(tokens))


def parse_answers(outputs: pl.Series) -> pl.DataFrame:
    """Vectorised `parse_answer` over a column of outputs: one row per output, in order, with `cpt_codes`,
    `modifiers`, `icd10_codes` (lists; null when the output does not parse) and `parse_error` (one of
    PARSE_ERRORS, null when it parses). Same rules as `parse_answer` (checked by a property test); tokens are
    exploded into one long frame and aggregated back, so 100,000 outputs take a fraction of a second."""
    line = outputs.fill_null("").str.strip_chars().str.replace(ANSWER_PREFIX, "").str.to_uppercase()
    rows = pl.DataFrame({"line": line}).with_row_index("_r")
    tokens = (
        rows.select("_r", pl.col("line").str.split(",").alias("tok"))
        .explode("tok")
        .with_columns(pl.col("tok").str.strip_chars(), pl.int_range(pl.len()).over("_r").alias("_pos"))
        .with_columns(pl.col("tok").str.contains(CPT_PATTERN.pattern).alias("_cpt"))
    )
    first_other = pl.col("_pos").filter(~pl.col("_cpt")).min()
    n_cpt = tokens.group_by("_r").agg(first_other.fill_null(pl.len()).cast(pl.Int64).alias("n_cpt"))
    tokens = tokens.join(n_cpt, on="_r")
    icd_tokens = tokens.filter(pl.col("_pos") > pl.col("n_cpt"))
    per_row = (
        tokens.group_by("_r")
        .agg(
            pl.col("tok").filter(pl.col("_pos") < pl.col("n_cpt")).alias("cpt_codes"),
            pl.col("tok").filter(pl.col("_pos") == pl.col("n_cpt")).first().alias("_slot"),
            pl.col("n_cpt").first(),
        )
        .join(
            icd_tokens.group_by("_r").agg(pl.col("tok").alias("icd10_codes")),
            on="_r",
            how="left",
        )
    )
    icds = pl.col("icd10_codes").fill_null(pl.lit([], pl.List(pl.String)))
    only_empty = (icds.list.len() == 1) & (icds.list.first() == "")  # the line ends with the modifier slot
    per_row = per_row.with_columns(
        pl.when(only_empty).then(icds.list.head(0)).otherwise(icds).alias("icd10_codes"),
        pl.col("_slot")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .str.split(" ")
        .list.filter(pl.element() != "")
        .alias("modifiers"),
    )
    parsed = rows.join(per_row, on="_r", how="left").sort("_r")
    flat_mods = parsed.select("_r", "modifiers").explode("modifiers").drop_nulls("modifiers")
    flat_icds = parsed.select("_r", "icd10_codes").explode("icd10_codes").drop_nulls("icd10_codes")
    bad_mod = flat_mods.filter(~pl.col("modifiers").str.contains(MODIFIER_PATTERN.pattern))["_r"].unique()
    bad_icd = flat_icds.filter(~pl.col("icd10_codes").str.contains(ICD10_PATTERN.pattern))["_r"].unique()
    error = (
        pl.when(pl.col("line") == "")
        .then(pl.lit("empty"))
        .when(pl.col("line").str.contains("\n", literal=True))
        .then(pl.lit("more_than_one_line"))
        .when(pl.col("n_cpt") == 0)
        .then(pl.lit("no_cpt"))
        .when(pl.col("_slot").is_null())
        .then(pl.lit("no_modifier_slot"))
        .when(pl.col("_r").is_in(bad_mod.implode()))
        .then(pl.lit("bad_modifier"))
        .when(pl.col("_r").is_in(bad_icd.implode()))
        .then(pl.lit("bad_icd"))
    )
    parsed = parsed.with_columns(error.alias("parse_error"))
    ok = pl.col("parse_error").is_null()
    return parsed.select(
        *(pl.when(ok).then(pl.col(c)).alias(c) for c in ("cpt_codes", "modifiers", "icd10_codes")), "parse_error"
    )

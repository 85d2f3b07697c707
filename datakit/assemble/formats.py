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


def parse_answers(outputs: pl.Expr) -> pl.Expr:
    """Vectorised `parse_answer` over a column of outputs: a struct of `cpt_codes`, `modifiers`, `icd10_codes`
    (lists; null when the output does not parse) and `parse_error` (one of PARSE_ERRORS, null when it parses).
    Same rules as `parse_answer`, checked against it by a property test."""
    line = outputs.fill_null("").str.strip_chars().str.replace(ANSWER_PREFIX, "").str.to_uppercase()
    tokens = line.str.split(",").list.eval(pl.element().str.strip_chars())
    n_cpt = tokens.list.eval(
        pl.element().str.contains(CPT_PATTERN.pattern).cast(pl.Int32).cum_prod().sum()
    ).list.first()
    slot = tokens.list.get(n_cpt, null_on_oob=True)
    mods = (
        slot.str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .str.split(" ")
        .list.eval(pl.element().filter(pl.element() != ""))
    )
    rest = tokens.list.slice(n_cpt + 1)
    icds = pl.when((rest.list.len() == 1) & (rest.list.first() == "")).then(rest.list.head(0)).otherwise(rest)
    bad_mod = mods.list.eval(pl.element().str.contains(MODIFIER_PATTERN.pattern).not_()).list.any()
    bad_icd = icds.list.eval(pl.element().str.contains(ICD10_PATTERN.pattern).not_()).list.any()
    error = (
        pl.when(line == "")
        .then(pl.lit("empty"))
        .when(line.str.contains("\n", literal=True))
        .then(pl.lit("more_than_one_line"))
        .when(n_cpt == 0)
        .then(pl.lit("no_cpt"))
        .when(slot.is_null())
        .then(pl.lit("no_modifier_slot"))
        .when(bad_mod)
        .then(pl.lit("bad_modifier"))
        .when(bad_icd)
        .then(pl.lit("bad_icd"))
    )
    ok = error.is_null()
    return pl.struct(
        pl.when(ok).then(tokens.list.head(n_cpt)).alias("cpt_codes"),
        pl.when(ok).then(mods).alias("modifiers"),
        pl.when(ok).then(icds).alias("icd10_codes"),
        error.alias("parse_error"),
    )

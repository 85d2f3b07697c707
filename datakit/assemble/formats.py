"""The coding answer line: `CPT[, CPT2], MOD, ICD1, ICD2, ...`.

CPT/HCPCS codes come first, then exactly one modifier slot (modifiers separated by spaces; empty when
there are none, e.g. `74176, , R10.84`), then ICD-10-CM codes in priority order.
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


def parse_answer(line: str) -> Answer:
    """Parse a model's (or a shard's) answer line. Raises ValueError naming the first bad token."""
    tokens = [t.strip() for t in line.strip().split(",")]
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

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datakit.assemble.formats import Answer, answer_line_expr, format_answer, parse_answer

cpt = st.from_regex(r"\A(\d{5}|\d{4}[FTU]|[A-V]\d{4})\Z")
modifier = st.from_regex(r"\A[0-9A-Z]{2}\Z")
icd = st.from_regex(r"\A[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?\Z")


@given(st.lists(cpt, min_size=1, max_size=3), st.lists(modifier, max_size=3), st.lists(icd, max_size=5))
def test_answer_lines_round_trip(cpts: list[str], mods: list[str], icds: list[str]) -> None:
    answer = Answer(tuple(cpts), tuple(mods), tuple(icds))
    assert parse_answer(format_answer(answer)) == answer


def test_published_layout() -> None:
    assert format_answer(Answer(("74176",), (), ("R10.84",))) == "74176, , R10.84"
    assert format_answer(Answer(("71260", "74177"), ("26",), ("C34.11", "N28.1"))) == "71260, 74177, 26, C34.11, N28.1"
    assert parse_answer("73562, 26 RT, M17.11") == Answer(("73562",), ("26", "RT"), ("M17.11",))


def test_vectorised_line_matches_the_scalar_one() -> None:
    frame = pl.DataFrame(
        {
            "cpt_codes": [["74176"], ["73562"]],
            "modifiers": [[], ["26", "RT"]],
            "icd10_codes": [["R10.84"], ["M17.11", "M25.561"]],
        }
    )
    lines = frame.select(answer_line_expr()).to_series().to_list()
    assert lines == ["74176, , R10.84", "73562, 26 RT, M17.11, M25.561"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "must start with a CPT"),
        ("R10.84, 74176", "must start with a CPT"),
        ("74176", "no modifier slot"),
        ("74176, 2, R10.84", "'2' is not a modifier"),
        ("74176, , 12345", "'12345' is not an ICD-10-CM code"),
    ],
)
def test_malformed_lines_are_rejected(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_answer(line)

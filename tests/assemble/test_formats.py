from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datakit.assemble.formats import (
    PARSE_ERRORS,
    Answer,
    answer_line_expr,
    format_answer,
    parse_answer,
    parse_answers,
)

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


token = st.one_of(
    cpt,
    modifier,
    icd,
    st.sampled_from(["", " ", "26 RT", "rt", "m17.11", "7417", "Z99", "12345", "R10", "\n", "Answer:", "x"]),
)


@given(st.lists(token, max_size=7), st.sampled_from([", ", ",", " , ", ",  "]), st.sampled_from(["", "  ", "answer: "]))
def test_the_column_parser_reads_every_output_as_the_line_parser_does(parts: list[str], sep: str, lead: str) -> None:
    """`parse_answers` (vectorised, used by `datakit score`) agrees with `parse_answer` on any output, well
    formed or not: same codes, and an error exactly where the line parser raises."""
    line = lead + sep.join(parts)
    got = parse_answers(pl.Series([line])).row(0, named=True)
    try:
        want = parse_answer(line)
    except ValueError:
        assert got["parse_error"] in PARSE_ERRORS and got["cpt_codes"] is None
    else:
        assert got["parse_error"] is None
        assert Answer(tuple(got["cpt_codes"]), tuple(got["modifiers"]), tuple(got["icd10_codes"])) == want


def test_outputs_are_read_tolerantly_of_spacing_and_case_strictly_of_structure() -> None:
    outputs = ["  answer: 73562 ,26  rt, m17.11 ", "73562, 26 RT, M17.11\nThe patient...", None, "73562 26 RT M17.11"]
    got = parse_answers(pl.Series(outputs, dtype=pl.String))
    assert got.row(0) == (["73562"], ["26", "RT"], ["M17.11"], None)
    assert got["parse_error"].to_list()[1:] == ["more_than_one_line", "empty", "no_cpt"]

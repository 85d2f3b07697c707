"""No record content in any message: planted PHI fed through every error path a user can reach, and what the CLI
prints (stdout, stderr) and writes to run.json searched for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import datakit.deid.batch as batch_mod
from datakit.cli import app
from tests.conftest import CODING_RECIPE

runner = CliRunner()
PHI = ("Zebulon Okafor", "MRN 83920011", "317-555-0199", "zebulon.okafor@example.org")
ROW = {
    "case_id": "c1",
    "patient_id": "MRN 83920011",
    "exam_date": "2024-01-05",
    "exam_description": "XR CHEST 2 VIEWS",
    "report_text": "Lungs are clear. Discussed with Zebulon Okafor at 317-555-0199, zebulon.okafor@example.org.",
    "cpt_codes": "71046",
    "icd10_codes": "R05.9",
    "review_status": "reviewed",
}


def _rows(n: int, **change: str) -> list[dict[str, str]]:
    return [{**ROW, "case_id": f"c{i}", **change} for i in range(n)]


def _csv(rows: list[dict[str, str]], header: bool = True) -> bytes:
    return pl.DataFrame(rows).write_csv(include_header=header).encode()


def _jsonl_truncated() -> bytes:
    lines = [json.dumps(r) for r in _rows(3)]
    lines[1] = lines[1][:120]  # cut inside the report text
    return ("\n".join(lines) + "\n").encode()


def _unbalanced_quotes() -> bytes:
    return _csv(_rows(3)) + b'c9,"MRN 83920011,2024-01-05,"Zebulon Okafor said\n'


# (file name, its bytes, extra --set overrides)
FILES: list[tuple[str, Callable[[], bytes], list[str]]] = [
    ("no_header.csv", lambda: _csv(_rows(4), header=False), []),
    ("unbalanced.csv", _unbalanced_quotes, []),
    ("truncated.jsonl", _jsonl_truncated, []),
    ("phi_in_dates.csv", lambda: _csv(_rows(3, exam_date="Zebulon Okafor 317-555-0199")), []),
    ("phi_in_codes.csv", lambda: _csv(_rows(3, cpt_codes="Zebulon Okafor", icd10_codes="MRN 83920011")), []),
    ("strict.csv", lambda: _csv(_rows(3, exam_date="Zebulon Okafor")), ["--strict"]),
    ("no_header_mapped.csv", lambda: _csv(_rows(3), header=False), ["--set", "source.columns.report_text=body"]),
]


def _leaks(*texts: str) -> list[str]:
    blob = "\n".join(texts).lower()
    return [p for p in PHI if p.lower() in blob]


def _run(tmp_path: Path, source: Path, *extra: str) -> tuple[int, str, str]:
    out = tmp_path / "run"
    args = ["run", str(CODING_RECIPE), "--out", str(out), "--set", "source.kind=files"]
    args += ["--set", f"source.path={source}"]
    result = runner.invoke(app, [*args, "--set", "deid.n_jobs=1", "--allow-demo-key", *extra])
    run_json = (out / "run.json").read_text() if (out / "run.json").exists() else ""
    return result.exit_code, result.output + result.stderr, run_json


@pytest.mark.parametrize(("name", "content", "extra"), FILES, ids=[f[0] for f in FILES])
def test_a_bad_input_file_fails_without_quoting_a_record(
    tmp_path: Path, name: str, content: Callable[[], bytes], extra: list[str]
) -> None:
    source = tmp_path / name
    source.write_bytes(content())
    code, printed, run_json = _run(tmp_path, source, *extra)
    assert code != 0, printed
    assert "error" in printed and "Traceback" not in printed
    assert not _leaks(printed, run_json), printed


def test_a_header_less_file_is_named_as_such_without_its_first_row(tmp_path: Path) -> None:
    source = tmp_path / "no_header.csv"
    source.write_bytes(_csv(_rows(4), header=False))
    code, printed, _ = _run(tmp_path, source)
    assert code == 2 and "may have no header row" in printed and "c0" not in printed


def test_an_unexpected_error_inside_a_stage_shows_its_class_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, records: list) -> list:
        raise KeyError(f"record {records[0][2][0]}")  # a library error quoting the record it failed on

    monkeypatch.setattr(batch_mod.Deidentifier, "run", broken)
    source = tmp_path / "cases.csv"
    source.write_bytes(_csv(_rows(6)))
    code, printed, run_json = _run(tmp_path, source)
    assert code == 1 and "internal error: KeyError" in printed and "withheld" in printed
    assert json.loads(run_json)["status"] == "failed" and json.loads(run_json)["error"] == "KeyError"
    assert not _leaks(printed, run_json), printed


def test_a_record_the_analyzer_fails_on_is_quarantined_by_error_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch_mod.Analyzer.analyze

    def flaky(self: batch_mod.Analyzer, texts: list[str]) -> list:
        if any("c3-marker" in t for t in texts):
            raise ValueError(f"cannot analyze {texts[0]}")
        return real(self, texts)

    monkeypatch.setattr(batch_mod.Analyzer, "analyze", flaky)
    rows = _rows(30)
    rows[3]["report_text"] += " c3-marker"
    source = tmp_path / "cases.csv"
    source.write_bytes(_csv(rows))
    _, printed, run_json = _run(tmp_path, source)
    reports = [p.read_text() for p in (tmp_path / "run" / "reports").glob("*") if p.is_file()]
    assert "deid_error:ValueError" in (tmp_path / "run" / "reports" / "deid.json").read_text()
    assert not _leaks(printed, run_json, *reports), printed


def test_a_failed_residual_scan_reports_counts_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = batch_mod.Analyzer.analyze

    def leaky(self: batch_mod.Analyzer, texts: list[str]) -> list:
        return [[s for s in spans if s.entity != "PERSON"] for spans in real(self, texts)]

    monkeypatch.setattr(batch_mod.Analyzer, "analyze", leaky)
    source = tmp_path / "cases.csv"
    source.write_bytes(_csv(_rows(40)))
    code, printed, run_json = _run(tmp_path, source)
    assert code == 2 and "independent residual scan found suspected PHI" in printed
    audit = (tmp_path / "run" / "reports" / "deid.json").read_text()
    assert not _leaks(printed, run_json, audit), printed


def test_a_predictions_file_without_its_columns_is_not_quoted(tmp_path: Path, sample_run: Path) -> None:
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("Zebulon Okafor,317-555-0199\nx,y\n")  # header-less: the first row is model output
    result = runner.invoke(app, ["score", str(sample_run), str(predictions)])
    assert result.exit_code == 2
    assert not _leaks(result.output + result.stderr)

"""The report-generation task on real Indiana University chest X-ray reports (skips without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from datakit.recipe import load_recipe
from datakit.shards.verify import verify
from tests.conftest import IMPRESSION_RECIPE, ROOT, run_recipe


def test_findings_to_impression_end_to_end(real_data: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(ROOT)  # recipe paths are relative to the working directory
    recipe = load_recipe(IMPRESSION_RECIPE, ["keys.allow_demo_for_real_data=true"])  # public IU reports
    run_recipe(recipe, tmp_path)
    source = pl.read_csv(real_data / "indiana_iu_cxr" / "indiana_reports.csv", infer_schema=False)
    empty_findings = source["findings"].fill_null("").str.strip_chars() == ""
    empty_impression = source["impression"].fill_null("").str.strip_chars() == ""
    expected_bad = int((empty_findings | empty_impression).sum())

    pull = json.loads((tmp_path / "stages" / "pull" / "_stage.json").read_text())
    assert pull["rows_in"] == source.height
    assert pull["rows_quarantined"] == expected_bad > 0
    assert pull["stats"]["quarantine_reasons"]["empty:report_text"] == int(empty_findings.sum())
    assert pull["stats"]["quarantine_reasons"]["empty:impression"] == int(empty_impression.sum())
    quarantine = pl.read_parquet(tmp_path / "quarantine" / "pull.parquet")
    assert quarantine.height == expected_bad and quarantine["reason"].null_count() == 0

    summary = verify(tmp_path)
    assert summary["rows"] == source.height - expected_bad
    shards = pl.read_parquet(tmp_path / "shards" / "train-*.parquet")
    # the completion is the case's impression as the deid stage left it; IU reports are already de-identified
    # ("XXXX"), so deid changes almost none of them
    deid = pl.read_parquet(tmp_path / "stages" / "deid" / "part-*.parquet").select("case_id", "impression")
    raw = source.select(pl.col("uid").alias("case_id"), pl.col("impression").str.strip_chars().alias("raw"))
    changed = deid.join(raw, on="case_id").filter(pl.col("impression").str.strip_chars() != pl.col("raw")).height
    assert changed <= 0.01 * deid.height
    by_uid = dict(zip(deid["case_id"], deid["impression"], strict=True))
    for row in shards.head(100).iter_rows(named=True):
        assert row["completion"][0]["content"] == by_uid[row["case_id"]].strip()
        assert "Findings:" in row["prompt"][1]["content"] and row["tags"][0] == "task:impression"

"""Edited copies of real IU reports through the impression recipe: the words layer groups them, the guard keeps
twins out of each other's prompts, different reports stay apart (skips without ../shared)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from datakit.evaluation.paraphrase_leaks import iu_impression_cases, plant, score_run
from datakit.recipe import load_recipe
from tests.conftest import IMPRESSION_RECIPE, ROOT, run_recipe


def test_edited_copies_are_grouped_and_never_shown_as_shots(real_data: Path, tmp_path: Path) -> None:
    base, family = iu_impression_cases(real_data / "indiana_iu_cxr" / "indiana_reports.csv")
    cases, truth = plant(base, family, per_class=8, negatives=150, seed=41)
    data = tmp_path / "cases.parquet"
    cases.write_parquet(data)
    mapping = [
        f"source.columns.{c}={c}"
        for c in ("case_id", "exam_description", "reason_for_exam", "report_text", "impression")
    ]
    recipe = load_recipe(
        IMPRESSION_RECIPE,
        [f"source.path={data}", "source.format=parquet", "keys.allow_demo_for_real_data=true", *mapping],
    )
    run_recipe(recipe, tmp_path / "run", only=["pull", "deid", "leakage", "assemble"])
    table = {r["kind"]: r for r in score_run(tmp_path / "run", truth).iter_rows(named=True)}
    copies = [r for k, r in table.items() if k != "negative"]
    specific = sum(r["specific"] for r in copies)
    assert specific > 30
    # copies of reports that carry something of their own are grouped with their original
    assert sum(r["grouped_specific"] for r in copies) >= 0.95 * specific, table
    assert sum(r["twin_as_shot"] for r in copies) <= 2, table
    assert sum(r["straddling_specific"] for r in copies) <= 1, table
    negative = table["negative"]
    assert negative["linked"] <= 0.01 * negative["pairs"] and negative["grouped"] <= 0.02 * negative["pairs"]
    rows = pl.read_parquet(tmp_path / "run" / "stages" / "leakage" / "part-*.parquet")
    assert "look_alike" in rows.columns and 0 < rows["look_alike"].sum() < rows.height


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)

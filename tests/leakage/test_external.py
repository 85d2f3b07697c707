"""Benchmark decontamination (`leakage.external_eval`): PubMedQA test items pasted into training records (whole,
edited, or as a fragment) are quarantined, untouched records are not (skips without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datakit.evaluation.contamination import plant, pubmedqa_test
from datakit.evaluation.paraphrase_leaks import iu_impression_cases
from datakit.leakage.external import ngram_hashes
from datakit.recipe import load_recipe
from tests.conftest import IMPRESSION_RECIPE, ROOT, run_recipe


def _run(
    real_data: Path, tmp_path: Path, n_records: int, n_planted: int, *overrides: str
) -> tuple[Path, dict, pl.DataFrame]:
    """A recipe run up to the leakage stage over IU reports with PubMedQA test items planted: (run, planted
    case id -> kind, the items)."""
    bench = pubmedqa_test(real_data)
    bench.write_ndjson(tmp_path / "pubmedqa_test.jsonl")
    base, _ = iu_impression_cases(real_data / "indiana_iu_cxr" / "indiana_reports.csv")
    base, truth = plant(base.head(n_records), bench, n_planted)
    planted = dict(zip(truth["case_id"], truth["kind"], strict=True))
    data = tmp_path / "cases.parquet"
    base.write_parquet(data)
    mapping = [
        f"source.columns.{c}={c}"
        for c in ("case_id", "exam_description", "reason_for_exam", "report_text", "impression")
    ]
    external = (
        "leakage.external_eval=[{name='pubmedqa-test', path='"
        + str(tmp_path / "pubmedqa_test.jsonl")
        + "', text_columns=['question','context'], id_column='pmid'}]"
    )
    recipe = load_recipe(
        IMPRESSION_RECIPE,
        [
            f"source.path={data}",
            "source.format=parquet",
            "keys.allow_demo_for_real_data=true",
            external,
            *mapping,
            *overrides,
        ],
    )
    run = tmp_path / "run"
    run_recipe(recipe, run, only=["pull", "deid", "leakage"])
    return run, planted, bench


def test_pasted_benchmark_items_are_quarantined_and_nothing_else(real_data: Path, tmp_path: Path) -> None:
    run, planted, bench = _run(real_data, tmp_path, 600, 30)
    quarantined = pl.read_parquet(run / "quarantine" / "leakage.parquet")
    assert set(quarantined["reason"]) == {"external_eval:pubmedqa-test"}
    # every planted record is removed, and no untouched one
    assert set(quarantined["case_id"]) == set(planted), (
        sorted(set(planted) - set(quarantined["case_id"])),
        sorted(set(quarantined["case_id"]) - set(planted)),
    )
    kept = pl.read_parquet(run / "stages" / "leakage" / "part-*.parquet")
    assert kept.height == 600 - 30 and not set(kept["case_id"]) & set(planted)
    cert = json.loads((run / "stages" / "leakage" / "certificate.json").read_text())
    entry = cert["external_eval"]
    assert entry["contaminated_cases"] == 30 and sorted(entry["case_ids"]) == sorted(planted)
    assert entry["sets"][0]["items"] == 500 and "ngram13" in entry["cases_by_layer"]
    # the reports list ids and counts, never the item or report text
    html = (run / "reports" / "leakage.html").read_text()
    assert "Benchmark decontamination" in html and sorted(planted)[0] in html
    for blob in (json.dumps(cert), html, (run / "reports" / "leakage.json").read_text()):
        assert not [q for q in bench["question"].to_list() if q in blob]


def test_ngrams_are_ordered_and_stay_inside_one_text() -> None:
    words = " ".join(f"w{i}" for i in range(20))
    grams = ngram_hashes(pl.Series([words, " ".join(reversed(words.split())), "w0 w1 w2", words]), 13)
    per_doc = grams.group_by("doc").agg(pl.col("gram").sort())
    by = {d: set(g) for d, g in per_doc.iter_rows()}
    assert len(by[0]) == 8 and by[0] == by[3]  # 20 words: 8 ordered 13-grams; equal texts, equal grams
    assert not by[0] & by[1]  # the same words reversed share no ordered n-gram
    assert 2 not in by  # a text shorter than n has none, and no n-gram spans two texts


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_the_eval_policy_pins_contaminated_records_to_test(real_data: Path, tmp_path: Path) -> None:
    run, planted, _ = _run(real_data, tmp_path, 300, 12, "leakage.external_policy=eval")
    assert not (run / "quarantine" / "leakage.parquet").exists()
    rows = pl.read_parquet(run / "stages" / "leakage" / "part-*.parquet")
    placed = rows.filter(pl.col("case_id").is_in(list(planted)))
    assert placed.height == 12 and set(placed["split"]) == {"test"} and set(placed["split_rule"]) == {"external_eval"}
    cert = json.loads((run / "stages" / "leakage" / "certificate.json").read_text())
    assert cert["passed"] and cert["external_eval"]["policy"].startswith("eval")
    assert sorted(cert["external_eval"]["case_ids"]) == sorted(planted)

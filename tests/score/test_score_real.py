"""`datakit score` on the impression recipe's run over the real IU reports (skips without ../shared)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import sacrebleu

from datakit.score.inputs import gold_text
from datakit.score.scoring import score_predictions

NORMAL = "No acute cardiopulmonary abnormality."


def test_impressions_score_against_their_floors_on_real_reports(iu_impression_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(iu_impression_run, run, ignore=shutil.ignore_patterns("cache"))
    test = pl.read_parquet(run / "shards" / "test-*.parquet").sort("example_id")
    gold = test.select("example_id", gold_text().alias("prediction"))
    gold.write_ndjson(tmp_path / "gold.jsonl")
    # a model that always writes the normal impression
    gold.with_columns(pl.lit(NORMAL).alias("prediction")).write_ndjson(tmp_path / "normal.jsonl")
    summary = score_predictions(run, tmp_path / "normal.jsonl", baseline=tmp_path / "gold.jsonl", n_boot=200)
    overall = summary["overall"]
    assert overall["systems"]["baseline"]["rouge_l"]["value"] == 1.0
    assert overall["systems"]["baseline"]["bleu"]["value"] == 1.0
    refs = gold["prediction"].to_list()
    want = sacrebleu.corpus_bleu([NORMAL] * len(refs), [refs]).score / 100
    assert abs(overall["systems"]["model"]["bleu"]["value"] - want) < 1e-3
    # the gold beats the constant, surely; the floors are real text and score between 0 and 1
    assert overall["deltas"]["model-baseline"]["rouge_l"]["ci"][1] < 0
    for floor in ("retrieval_vote", "majority"):
        assert 0.1 < overall["systems"][floor]["rouge_l"]["value"] < 0.9
    assert summary["parse_errors"]["retrieval_vote"].get("empty", 0) < 0.1 * test.height
    assert {"modality", "exam_family", "prompt_format", "n_shots"} <= set(summary["slices"])

"""Planted leaks in real Indiana University reports: what each layer finds (skips without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from datakit.evaluation.planted_leaks import iu_cases, layer_recall, planted_leaks, template_links
from datakit.keys import DEMO_KEY, SecretKey
from datakit.leakage.detect import LayerClock, detect
from datakit.recipe import Leakage


def test_every_planted_leak_is_found_and_exact_layers_are_exact(real_data: Path, tmp_path: Path) -> None:
    base = iu_cases(real_data / "indiana_iu_cxr" / "indiana_reports.csv")
    cases, truth = planted_leaks(base, per_kind=60, seed=11)
    cfg = Leakage()
    det = detect(cases, cfg, SecretKey(DEMO_KEY, "demo"), tmp_path / "cache", LayerClock())
    recall = {
        r["kind"]: r
        for r in layer_recall(det, truth, cfg.minhash.threshold, cfg.cosine_threshold).iter_rows(named=True)
    }
    assert all(r["any_layer"] == 1.0 for r in recall.values()), recall
    assert recall["exact_copy"]["exact"] == recall["whitespace_case"]["exact"] == 1.0
    for kind in ("numbers_changed", "reordered"):
        assert recall[kind]["exact"] == 0.0 and recall[kind]["near"] >= 0.95
    assert recall["same_accession_new_text"]["accession"] == 1.0
    assert recall["same_patient_new_exam"]["patient"] == 1.0
    # text copies under a new patient are never found by the metadata layers (they do not fire by accident)
    assert recall["reordered"]["patient"] == recall["reordered"]["accession"] == 0.0
    links = template_links(det, truth["case_id"], cfg.minhash.threshold, cfg.cosine_threshold)
    assert links["records"] == base.height and 0 < links["exact_records"] < base.height


def test_impression_recipe_on_real_reports_certifies(iu_impression_run: Path) -> None:
    tmp_path = iu_impression_run
    rows = pl.read_parquet(tmp_path / "stages" / "leakage" / "part-*.parquet")
    assert (rows.group_by("leakage_group").agg(pl.col("split").n_unique())["split"] == 1).all()
    assert rows.filter(pl.col("split") != "train").height > 0.05 * rows.height
    cert = json.loads((tmp_path / "reports" / "certificate.json").read_text())
    assert cert["passed"] and cert["layers"]["near"]["candidate_pairs_checked"] > 0
    # assemble: few-shot findings → impression examples from train, behind the guard
    examples = pl.read_parquet(tmp_path / "stages" / "assemble" / "part-*.parquet")
    split_of = dict(rows.unique("case_id").select("case_id", "split").iter_rows())
    assert examples["n_shots"].mean() > 2.5  # type: ignore[operator]
    assert {split_of[c] for c in examples["shot_case_ids"].explode().drop_nulls()} == {"train"}
    first = examples.filter(pl.col("n_shots") > 0).row(0, named=True)
    assert "with their impressions" in first["prompt"][1]["content"] and first["cpt_candidates"] is None

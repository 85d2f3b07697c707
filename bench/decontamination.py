"""Benchmark decontamination on real text: PubMedQA test items pasted into real IU reports, found by each layer.

The real IU reports (de-identified by the recipe's own deid stage) get `--planted` PubMedQA test items pasted in
(whole, edited: reordered + typing errors, or a 40-word fragment of the abstract appended; see
`datakit.evaluation.contamination`); the leakage stage's decontamination scan (`datakit.leakage.external`) then
runs against the 500 official test items. Printed per kind: the share found by each text layer, by the layers
together, by the 13-gram overlap alone (the convention of LLM contamination reports, the baseline here) and by
both; and the untouched records flagged (false positives). Needs ../shared.

`--carrier medquad` pastes them into real MedQuAD answers instead (the QA training set of
`recipes/medical-qa-medquad.toml`, de-identified by that recipe's deid stage).

    python bench/decontamination.py --planted 300
    python bench/decontamination.py --planted 300 --carrier medquad
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import polars as pl

from datakit.evaluation.contamination import plant, pubmedqa_test
from datakit.evaluation.paraphrase_leaks import iu_impression_cases
from datakit.keys import load_key
from datakit.leakage.external import contamination, read_items
from datakit.leakage.layers import LayerClock
from datakit.pipeline import run_pipeline
from datakit.recipe import FilesSource, load_recipe, recipe_from_dict
from datakit.rundir import RunDir
from datakit.sources.files import read_files

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--planted", type=int, default=300)
    parser.add_argument(
        "--carrier",
        choices=("iu", "medquad"),
        default="iu",
        help="the training records items are pasted into: IU reports (impression recipe) or MedQuAD answers "
        "(medical-qa-medquad recipe, a QA training set)",
    )
    args = parser.parse_args()
    if not (REAL / "pubmedqa" / "ori_pqal.json").is_file():
        sys.exit(f"needs {REAL} (../shared is absent)")
    bench = pubmedqa_test(REAL)
    os.chdir(ROOT)  # recipe paths are relative to the repository root
    if args.carrier == "iu":
        base, _ = iu_impression_cases(REAL / "indiana_iu_cxr" / "indiana_reports.csv")
        column, columns = "report_text", ("case_id", "exam_description", "reason_for_exam", "report_text", "impression")
        recipe_file = ROOT / "recipes" / "radiology-impression.toml"
    else:
        medquad = load_recipe(ROOT / "recipes" / "medical-qa-medquad.toml")
        assert isinstance(medquad.source, FilesSource)
        base = read_files(medquad.source, medquad.extra_columns()).select("case_id", "patient_id", "question", "answer")
        column, columns = "answer", ("case_id", "patient_id", "question", "answer")
        recipe_file = ROOT / "recipes" / "medical-qa-medquad.toml"
    cases, truth = plant(base, bench, args.planted, column=column)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        bench.write_ndjson(tmp / "pubmedqa_test.jsonl")
        cases.write_parquet(tmp / "cases.parquet")
        raw = load_recipe(recipe_file, ["keys.allow_demo_for_real_data=true"]).model_dump(mode="json")
        raw["source"] = {
            "kind": "files",
            "path": str(tmp / "cases.parquet"),
            "format": "parquet",
            "columns": {c: c for c in columns},
            "defaults": raw["source"].get("defaults", {}),
        }
        raw["leakage"]["external_eval"] = [
            {
                "name": "pubmedqa-test",
                "path": str(tmp / "pubmedqa_test.jsonl"),
                "text_columns": ["question", "context"],
                "id_column": "pmid",
            }
        ]
        recipe = recipe_from_dict(raw)
        from rich.console import Console

        run_pipeline(recipe, tmp / "run", Console(file=open(os.devnull, "w")), only=["pull", "deid"])  # noqa: SIM115
        rows = RunDir(tmp / "run").read_stage("deid")
        cfg = recipe.leakage
        t0 = time.perf_counter()
        clock = LayerClock()
        found = contamination(rows, read_items(cfg.external_eval), cfg, load_key(recipe), tmp / "cache", clock)
        seconds = time.perf_counter() - t0
    hits = found.links.group_by("case_id").agg(pl.col("layer").unique().alias("layers"))
    lost = truth.join(rows.select("case_id").unique(), on="case_id", how="anti")
    if lost.height:
        print(f"{lost.height} planted records did not reach the leakage stage (quarantined earlier): not counted")
    truth = truth.join(lost, on="case_id", how="anti")
    ngram = f"ngram{cfg.external_ngram}"
    table = (
        truth.join(hits, on="case_id", how="left")
        .with_columns(pl.col("layers").fill_null([]))
        .with_columns(
            *[pl.col("layers").list.contains(k).alias(k) for k in ("exact", "near", "cosine", "words")],
            pl.col("layers").list.set_difference([ngram]).list.len().gt(0).alias("any layer"),
            pl.col("layers").list.contains(ngram).alias(f"{ngram} (baseline)"),
            pl.col("layers").list.len().gt(0).alias("both"),
        )
        .group_by("kind")
        .agg(
            pl.len().alias("planted"),
            *[
                pl.col(c).mean().round(3)
                for c in ("exact", "near", "cosine", "words", "any layer", f"{ngram} (baseline)", "both")
            ],
        )
        .sort("kind")
    )
    missed = truth.join(hits, on="case_id", how="anti")
    if "phi_spans" in rows.columns and missed.height:
        spans = rows.join(missed, on="case_id").select("case_id", "kind", pl.col("phi_spans").list.len().alias("phi"))
        which = dict(spans.select("case_id", "kind").iter_rows())
        print(f"missed: {which}; de-id replacements in them: {spans['phi'].to_list()}")
    untouched = rows.height - truth.height
    false = hits.join(truth, on="case_id", how="anti")
    flagged = dict(false.explode("layers").group_by("layers").len().iter_rows())
    with pl.Config(tbl_rows=10, tbl_cols=12, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(f"{rows.height} {args.carrier} records, {truth.height} with a pasted PubMedQA test item")
        print(f"500 test items scanned in {seconds:.1f} s (2 cores)")
        print(table)
    print(f"untouched records flagged: {false.height} of {untouched} (by layer: {flagged})")
    print(f"layer timings: { {k: v['seconds'] for k, v in clock.layers.items()} }")


if __name__ == "__main__":
    main()

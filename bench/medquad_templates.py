"""Benchmark template handling outside radiology: MedQuAD's templated questions vs answers copied between documents.

Runs `recipes/medical-qa-medquad.toml` on the real MedQuAD NIDDK and CDC documents and scores the run
(`datakit.evaluation.qa_templates`): pairs of items of different documents that share only a question template
("What are the symptoms of X ?") must stay apart; pairs whose answers are the same text must be linked and
grouped. Printed: pairs, linked, grouped, and pairs straddling train and eval, per kind. Needs ../shared.

    python bench/medquad_templates.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import polars as pl
from rich.console import Console

from datakit.evaluation.qa_templates import score
from datakit.pipeline import run_pipeline
from datakit.recipe import FilesSource, load_recipe
from datakit.sources.files import read_files

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="score this run directory instead of running")
    args = parser.parse_args()
    if not (REAL / "medquad").is_dir():
        sys.exit("needs ../shared/real_data/medquad")
    os.chdir(ROOT)
    recipe = load_recipe(ROOT / "recipes" / "medical-qa-medquad.toml", ["keys.allow_demo_for_real_data=true"])
    source = recipe.source
    assert isinstance(source, FilesSource)
    raw = read_files(source, (*recipe.extra_columns(), "focus"))
    items = raw.select("case_id", "question", "answer", "focus", pl.col("patient_id").alias("document"))
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or Path(tmp) / "run"
        t0 = time.perf_counter()
        if args.run is None:
            run_pipeline(recipe, run, Console(file=open(os.devnull, "w")), only=["pull", "deid", "leakage"])  # noqa: SIM115
        seconds = time.perf_counter() - t0
        result = score(items, run)
    print(f"MedQuAD: {result['items']} items after pull/deid, leakage run {seconds:.1f} s")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

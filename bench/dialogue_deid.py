"""Benchmark de-identification of real conversations: ACI-Bench's names, said aloud, after the deid stage.

Runs the `visit-note-aci` recipe's pull and deid stages on the 207 real ACI-Bench encounters (conversation and
visit note) and scores them against the benchmark's own per-encounter metadata (patient first and family name,
doctor's name; `datakit.evaluation.dialogue_names`): occurrences before and left after, per kind of name and
column, and speaker tags kept. The independent residual scan reads every record (`residual_scan_share = 1`) and
its verdict is printed, never the text. Needs ../shared.

    python bench/dialogue_deid.py
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

from datakit.evaluation.dialogue_names import aci_names, score
from datakit.pipeline import run_pipeline
from datakit.recipe import load_recipe
from datakit.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="run directory to keep (default: a temporary one)")
    args = parser.parse_args()
    if not (REAL / "aci_bench").is_dir():
        sys.exit("needs ../shared/real_data/aci_bench")
    os.chdir(ROOT)
    recipe = load_recipe(
        ROOT / "recipes" / "visit-note-aci.toml",
        [
            "keys.allow_demo_for_real_data=true",
            "deid.residual_scan_share=1",
            "deid.max_residual_per_1k_records=1000",  # measured here, not enforced
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        t0 = time.perf_counter()
        run_pipeline(recipe, run_dir, Console(file=open(os.devnull, "w")), only=["pull", "deid"])  # noqa: SIM115
        seconds = time.perf_counter() - t0
        rd = RunDir(run_dir)
        original = pl.read_parquet(rd.stage_dir("pull") / "part-*.parquet")
        deidentified = pl.read_parquet(rd.stage_dir("deid") / "part-*.parquet")
        report = json.loads((rd.stage_dir("deid") / "deid.json").read_text())
    names = aci_names(REAL / "aci_bench")
    result = score(original, deidentified, names, ["dialogue", "note"])
    print(f"ACI-Bench: {original.height} encounters, {deidentified.height} kept by deid, pull+deid {seconds:.1f} s")
    print(f"{'kind':<20} {'column':<9} {'before':>7} {'left':>5} {'removed':>8}")
    for row in result["by_kind"]:
        if row["before"]:
            print(f"{row['kind']:<20} {row['column']:<9} {row['before']:>7} {row['after']:>5} {row['removed']:>8.3f}")
    said, left = result["occurrences_before"], result["occurrences_left"]
    print(f"all names: {said} said, {left} left, removed {result['removed']}")
    print(f"speaker tags: {result['speaker_tags']}")
    scan = report["independent_scan"]
    print(
        f"residual scan: {scan['records_flagged']} of {scan['records_scanned']} flagged "
        f"({scan['flagged_per_1k_records']}/1k), hits {scan['hits_by_kind']}"
    )
    print(
        f"quarantined by deid: {report['quarantined']['by_reason']}; entities: "
        f"{ {k: sum(v.values()) for k, v in report['entities'].items()} }"
    )


if __name__ == "__main__":
    main()

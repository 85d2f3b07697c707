"""Leakage-defence strength: planted paraphrase copies and negative pairs, run through a real recipe.

For each data set, real (or sample) reports get one rewritten copy each under a new patient and accession, per
edit class (`datakit.evaluation.paraphrase_leaks`), plus negative pairs (different patients' different reports
of the same exam and findings family). The recipe runs end to end up to the assemble stage (pull, deid, codes,
leakage, assemble), and the table says per class: pairs, grouped with the original, straddling train/eval, twin
shown as a few-shot example, directly linked by a content layer; and for the negatives the false-link rates.

    python bench/leakage_quality.py                      # IU reports (radiology-impression) and the sample
    python bench/leakage_quality.py --data iu --per-class 50 --negatives 300
    python bench/leakage_quality.py --set leakage.words.threshold=0.6   # what-if on a recipe setting

The IU set needs ../shared (skipped without it). The baseline named in the issue is the same table measured at
the commit before paraphrase-robust detection; the script prints the targets next to the figures.
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

from datakit.evaluation.paraphrase_leaks import iu_impression_cases, plant, score_run
from datakit.pipeline import pipeline_for, run_pipeline
from datakit.recipe import load_recipe
from datakit.sources.sample import generate_cases

ROOT = Path(__file__).resolve().parents[1]
IU = ROOT.parent / "shared" / "real_data" / "indiana_iu_cxr" / "indiana_reports.csv"
TARGETS = "targets: grouped >= 98% per class, 0 straddling, 0 twins as shots; negatives linked <= 1%"


def sample_frame(n: int) -> tuple[pl.DataFrame, pl.Series]:
    cases = generate_cases(n).cases
    family = cases["exam_description"] + "|" + cases["icd10_codes"].list.first().fill_null("").str.slice(0, 3)
    return cases, family


def run_one(
    name: str, per_class: int, negatives: int, sets: list[str], n_sample: int, keep: Path | None, seed: int = 23
) -> pl.DataFrame:
    if name == "iu":
        base, family = iu_impression_cases(IU)
        recipe_path = ROOT / "recipes" / "radiology-impression.toml"
        mapping = [
            f"source.columns.{c}={c}"
            for c in ("case_id", "exam_description", "reason_for_exam", "report_text", "impression")
        ]
    else:
        base, family = sample_frame(n_sample)
        recipe_path = ROOT / "recipes" / "radiology-coding.toml"
        mapping = []
    cases, truth = plant(base, family, per_class=per_class, negatives=negatives, seed=seed)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = keep / name if keep else Path(tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        truth.write_parquet(Path(tmp) / "truth.parquet")
        data = Path(tmp) / "cases.parquet"
        cases.write_parquet(data)
        overrides = [
            "source.kind=files",
            f"source.path={data}",
            "source.format=parquet",
            "keys.allow_demo_for_real_data=true",
            *mapping,
            *sets,
        ]
        recipe = load_recipe(recipe_path, overrides)
        names = [s.name for s in pipeline_for(recipe.task)]
        upto = names[: names.index("assemble") + 1]
        from rich.console import Console

        t0 = time.perf_counter()
        run_pipeline(recipe, Path(tmp) / "run", Console(file=open(os.devnull, "w")), only=upto)  # noqa: SIM115
        seconds = time.perf_counter() - t0
        table = score_run(Path(tmp) / "run", truth)
        leak = json.loads((Path(tmp) / "run" / "stages" / "leakage" / "_stage.json").read_text())["stats"]
        asm = json.loads((Path(tmp) / "run" / "stages" / "assemble" / "_stage.json").read_text())["stats"]
        print(f"\n== {name}: {cases.height} cases ({truth.height} pairs), run {seconds:.0f} s")
        print(f"   certificate passed: {leak.get('certificate_passed')}; links: {leak.get('links')}")
        print(f"   {cost(leak, asm)}")
    return table.with_columns(pl.lit(name).alias("data"))


def cost(leak: dict, asm: dict) -> str:
    """What the defences cost the data: the largest group, the eval share, the shots and candidate lists."""
    rows = leak.get("rows_per_split", {})
    total = max(1, sum(rows.values()))
    eval_share = (rows.get("val", 0) + rows.get("test", 0)) / total
    shots = asm.get("shots", {})
    cand = asm.get("candidates", {})
    recall = {k: cand[k]["recall"] for k in ("cpt", "icd10") if k in cand}
    blocked = asm.get("blocked_retrievals", {}).get("by_layer", {})
    return (
        f"cost: largest group {leak.get('largest_group_cases')} of {leak.get('cases')} cases; eval share "
        f"{eval_share:.3f}; shots kept {shots.get('mean_kept')} (short: {shots.get('examples_short')}); "
        f"candidate recall {recall or 'n/a'}; blocked by words {blocked.get('words', 0)}, "
        f"by group {blocked.get('leakage_group', 0)}"
    )


def show(table: pl.DataFrame) -> None:
    """All pairs, then the pairs that are not look-alikes (see `score_run`)."""
    view = table.select(
        "data",
        "kind",
        "pairs",
        "grouped",
        (100 * pl.col("grouped") / pl.col("pairs")).round(1).alias("grouped_%"),
        "straddling",
        "twin_as_shot",
        (100 * pl.col("linked") / pl.col("pairs")).round(1).alias("linked_%"),
        pl.col("look_alike").alias("look_alikes"),
        pl.format("{}/{}", "grouped_specific", "specific").alias("specific: grouped"),
        pl.col("straddling_specific").alias("specific: straddling"),
        pl.col("twin_as_shot_specific").alias("specific: twin_as_shot"),
    )
    with pl.Config(tbl_rows=40, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(view)


def write_strength(table: pl.DataFrame, args: argparse.Namespace) -> None:
    """The certificate's `tested_strength`: per data set and class, the harness's counts, with the settings."""
    if args.sets or args.seed != 23:
        sys.exit("--write-strength records datakit's defaults on the recorded draw: run it without --set or --seed")
    from datakit import __version__
    from datakit.leakage.certificate import STRENGTH_FILE, strength_settings
    from datakit.recipe import Leakage

    sets: dict[str, dict[str, object]] = {}
    for row in table.iter_rows(named=True):
        entry = {k: v for k, v in row.items() if k not in ("data", "kind")}
        sets.setdefault(row["data"], {})[row["kind"]] = entry
    out = {
        "datakit_version": __version__,
        "command": f"python bench/leakage_quality.py --data {args.data} --per-class {args.per_class} "
        f"--negatives {args.negatives} --write-strength",
        "settings": strength_settings(Leakage()),
        "sets": sets,
    }
    path = ROOT / "datakit" / "leakage" / "data" / STRENGTH_FILE
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["iu", "sample", "both"], default="both")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--negatives", type=int, default=300)
    parser.add_argument("--sample-n", type=int, default=5000)
    parser.add_argument(
        "--seed", type=int, default=23, help="draw of planted copies and negatives (23: the recorded figures)"
    )
    parser.add_argument("--set", action="append", default=[], dest="sets", help="recipe override (what-if)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument("--keep", type=Path, help="keep the run directories (and truth.parquet) under this folder")
    parser.add_argument(
        "--write-strength",
        action="store_true",
        help="store the figures in datakit/leakage/data/strength.json (quoted by certificates; defaults only)",
    )
    args = parser.parse_args()
    wanted = ["iu", "sample"] if args.data == "both" else [args.data]
    if "iu" in wanted and not IU.is_file():
        print(f"skipping the IU set: {IU} not found (../shared is absent)")
        wanted.remove("iu")
    tables = [
        run_one(n, args.per_class, args.negatives, args.sets, args.sample_n, args.keep, args.seed) for n in wanted
    ]
    if not tables:
        sys.exit("nothing to measure")
    table = pl.concat(tables)
    if args.json:
        args.json.write_text(json.dumps(table.to_dicts(), indent=2) + "\n")
    if args.write_strength:
        write_strength(table, args)
    print()
    show(table)
    print(TARGETS)


if __name__ == "__main__":
    main()

"""`datakit score` benchmark: N predictions scored, with the baseline a team writes by hand measured in the same run.

The eval examples are a real run's test examples (the sample recipe, built here unless --run names a run),
repeated under new example ids up to N. Predictions: 60% the gold answer, the rest a wrong modifier, a dropped
secondary ICD code, a hallucinated ICD code, an unparseable line or no prediction (a keyed draw per example).

- datakit: `evaluate` (parsing, the card's metrics, invalid codes, laterality, both floors, 7 facets, 1,000
  bootstrap draws, paired deltas), for the model alone and with a baseline file;
- baseline: a hand-written per-row Python scorer (`parse_answer` per row, the card's nine metrics as set
  operations, overall means only: no slices, no floors, no intervals), on the same predictions.

    python bench/score.py --n 100000
    python bench/score.py --n 100000 --run runs/radiology-coding   # score an existing run's test examples
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import polars as pl
from rich.console import Console

from datakit.assemble.formats import parse_answer
from datakit.content import sha256_hex
from datakit.pipeline import run_pipeline
from datakit.recipe import load_recipe
from datakit.score.coding import coding_rows, prepare
from datakit.score.inputs import gold_text, load_run, match_predictions
from datakit.score.scoring import evaluate

ROOT = Path(__file__).resolve().parents[1]
EDITS = (
    (0.60, "gold"),
    (0.70, "wrong_modifier"),
    (0.80, "dropped_icd"),
    (0.87, "hallucinated"),
    (0.94, "unparseable"),
    (1.00, "missing"),
)


def sample_run(out: Path, n_cases: int) -> Path:
    recipe = load_recipe(ROOT / "recipes" / "radiology-coding.toml", [f"source.n={n_cases}"])
    run_pipeline(recipe, out, Console(quiet=True))
    return out


def widen(test: pl.DataFrame, n: int) -> pl.DataFrame:
    reps = -(-n // test.height)
    copies = [test.with_columns(pl.concat_str([pl.col("example_id"), pl.lit(f":{k}")])) for k in range(reps)]
    return pl.concat(copies).head(n)


def predictions(examples: pl.DataFrame, seed: str) -> pl.DataFrame:
    draw = sha256_hex(examples["example_id"], prefix=f"bench:{seed}:").str.slice(0, 8).str.to_integer(base=16) / 2**32
    gold = gold_text()
    kind = pl.lit("missing")
    for bound, name in reversed(EDITS):
        kind = pl.when(pl.col("_draw") < bound).then(pl.lit(name)).otherwise(kind)
    edited = {
        "gold": gold,
        "wrong_modifier": gold.str.replace(r"^([^,]+), ([^,]*)", "$1, 59"),
        "dropped_icd": gold.str.replace(r", [A-Z][0-9][0-9A-Z.]+$", ""),
        "hallucinated": pl.concat_str([gold, pl.lit(", Z99.999")]),
        "unparseable": gold.str.replace_all(",", ""),
    }
    out = examples.with_columns(draw.alias("_draw")).with_columns(kind.alias("_kind"))
    text = pl.lit(None, pl.String)
    for name, expr in edited.items():
        text = pl.when(pl.col("_kind") == name).then(expr).otherwise(text)
    return out.select("example_id", text.alias("prediction")).filter(pl.col("prediction").is_not_null())


def hand_written(examples: pl.DataFrame, preds: pl.DataFrame) -> dict[str, float]:
    """What a team writes without datakit: a loop over rows, one parse per row, sets per metric."""
    by_id = dict(preds.iter_rows())
    totals = dict.fromkeys(("cpt", "primary", "mod", "icd", "any", "root", "recall", "precision", "all"), 0.0)
    golds = examples.select("example_id", gold_text().alias("g")).iter_rows()
    n = 0
    for example_id, gold_line in golds:
        n += 1
        gold = parse_answer(gold_line)
        try:
            pred = parse_answer(by_id.get(example_id) or "")
        except ValueError:
            continue
        gi, pi = set(gold.icd10_codes), set(pred.icd10_codes)
        hits = len(gi & pi)
        cpt = set(gold.cpt_codes) == set(pred.cpt_codes)
        mod = set(gold.modifiers) == set(pred.modifiers)
        icd = gi == pi
        totals["cpt"] += cpt
        totals["primary"] += gold.cpt_codes[0] == pred.cpt_codes[0]
        totals["mod"] += mod
        totals["icd"] += icd
        totals["any"] += hits > 0
        totals["root"] += bool({c[:3] for c in gi} & {c[:3] for c in pi})
        totals["recall"] += hits / len(gi) if gi else float(not pi)
        totals["precision"] += hits / len(pi) if pi else float(not gi)
        totals["all"] += cpt and mod and icd
    return {k: v / n for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--run", type=Path, default=None, help="an existing coding run (default: build one here)")
    parser.add_argument("--cases", type=int, default=3000, help="sample cases of the run built here")
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or sample_run(Path(tmp) / "run", args.cases)
        run = load_run(run_dir, "test")
        test, train = run.examples.sort("example_id"), run.train
        examples = widen(test, args.n)
        model, baseline = predictions(examples, "model"), predictions(examples, "baseline")
        print(f"eval examples: {examples.height:,} ({test.height:,} test examples of the run, repeated)")

        start = time.perf_counter()
        one = evaluate(examples, train, "coding", {"model": model}, None, args.draws, 0)
        t_one = time.perf_counter() - start
        start = time.perf_counter()
        evaluate(examples, train, "coding", {"model": model, "baseline": baseline}, None, args.draws, 0)
        t_two = time.perf_counter() - start
        start = time.perf_counter()
        matched, _ = match_predictions(examples, model)
        rows = coding_rows(prepare(examples.with_columns(matched["prediction"].alias("_p"))), "_p", None)
        t_rows = time.perf_counter() - start
        start = time.perf_counter()
        hand = hand_written(examples, model)
        t_hand = time.perf_counter() - start
    overall = one["overall"]["systems"]["model"]
    agree = all(
        abs(overall[m]["value"] - hand[k]) < 1e-3 and abs(float(rows[m].mean()) - hand[k]) < 1e-3  # type: ignore[arg-type]
        for m, k in (
            ("cpt_exact", "cpt"),
            ("icd_recall", "recall"),
            ("all_three_exact", "all"),
            ("icd_root_overlap", "root"),
        )
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = examples.height

    def line(label: str, seconds: float) -> None:
        print(f"{label:<62}: {seconds:8.2f} s  {n / seconds:>10,.0f} predictions/s")

    line(f"datakit score, model + 2 floors, {args.draws} draws, 7 facets", t_one)
    line("datakit score, model + baseline + 2 floors, paired deltas", t_two)
    line("datakit, the model's per-example metrics only (like for like)", t_rows)
    line("baseline: per-row Python scorer, card metrics only", t_hand)
    print(f"{'ratio, like for like (baseline time / datakit time)':<62}: {t_hand / t_rows:8.2f}x")
    print(f"{'card metrics agree with the per-row scorer':<62}: {agree}")
    print(f"{f'target: {n:,} predictions <= 10 s (model + 2 floors)':<62}: {'met' if t_one <= 10 else 'NOT met'}")
    print(f"{'peak RSS':<62}: {peak:8,.0f} MB")


if __name__ == "__main__":
    main()

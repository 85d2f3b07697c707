"""`datakit score`: a model's predictions on a run's eval split, against floors and an optional baseline.

Writes reports/score.json and reports/score.html (IDs, counts and scores only: no report or output text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from datakit import __version__
from datakit.codes.cpt import load_allow_list
from datakit.rundir import RunDir, atomic_write_json
from datakit.score.bootstrap import ALL, System, estimate
from datakit.score.coding import CODING_METRICS, coding_rows, invalid_code_counts, prepare
from datakit.score.floors import FLOORS, majority, retrieval_vote
from datakit.score.inputs import (
    ScoreError,
    certification,
    gold_text,
    load_run,
    match_predictions,
    read_predictions,
)
from datakit.score.metrics import Metric
from datakit.score.slices import facets
from datakit.shards.layout import SPLITS

N_BOOT = 1000
OUTPUT = "_output"
# the columns the metrics read (slices and floors read the examples themselves)
SCORED_COLUMNS = ("example_id", "completion", "exam_description", "report_text", "pair_of", "from_code", "to_code")


def task_metrics(task: str) -> tuple[Metric, ...]:
    if task == "coding":
        return CODING_METRICS
    if task == "impression":
        from datakit.score.impression import IMPRESSION_METRICS  # rouge-score imports nltk: only when needed

        return IMPRESSION_METRICS
    raise ScoreError(f"task '{task}' declares no metric: `datakit score` scores coding and impression runs")


def score_rows(examples: pl.DataFrame, outputs: pl.Series, task: str, allow_list: list[str] | None) -> pl.DataFrame:
    frame = examples.with_columns(outputs.alias(OUTPUT))
    if task == "coding":
        return coding_rows(frame, OUTPUT, allow_list)
    from datakit.score.impression import impression_rows

    return impression_rows(frame, OUTPUT)


def _parse_errors(rows: pl.DataFrame) -> dict[str, int]:
    counts = rows.group_by("parse_error").agg(pl.len()).drop_nulls("parse_error").sort("parse_error")
    return {r["parse_error"]: int(r["len"]) for r in counts.iter_rows(named=True)}


def _allow_list(recipe: dict[str, Any]) -> tuple[list[str] | None, str]:
    """The run's CPT allow-list and what was checked: a configured list that cannot be found is said, not
    silently skipped."""
    path = (recipe.get("codes") or {}).get("cpt_allow_list")
    if not path:
        return None, "no allow-list in the recipe: CPT/HCPCS checked for format only"
    if not Path(path).is_file():
        return None, f"the recipe's allow-list {Path(path).name} is not found here: CPT/HCPCS checked for format only"
    return load_allow_list(path), f"CPT/HCPCS checked against the recipe's allow-list {Path(path).name}"


def evaluate(
    examples: pl.DataFrame,
    train: pl.DataFrame,
    task: str,
    predictions: dict[str, pl.DataFrame],
    allow_list: list[str] | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """The scoring itself, on frames: `examples` (one split's shard rows with the case fields), `train` (for the
    majority floor), `predictions` ("model" and optionally "baseline": example_id, prediction). Returns the
    per-system inputs, parse errors, overall and per-slice estimates, and the checks' rates on the gold answers."""
    metrics = task_metrics(task)
    outputs: dict[str, pl.Series] = {}
    inputs: dict[str, dict[str, int]] = {}
    for name, frame in predictions.items():
        matched, inputs[name] = match_predictions(examples, frame)
        outputs[name] = matched["prediction"]
    outputs["retrieval_vote"] = retrieval_vote(examples, task)
    outputs["majority"] = majority(examples, train)
    gold = examples.select(gold_text()).to_series()

    needed = [c for c in SCORED_COLUMNS if c in examples.columns]
    prepared = prepare(examples.select(needed)) if task == "coding" else examples.select(needed)
    systems = [System(name, score_rows(prepared, out, task, allow_list)) for name, out in outputs.items()]
    reference = score_rows(prepared, gold, task, allow_list)
    deltas = [("model", other) for other in ("baseline", *FLOORS) if other in outputs]
    slices = estimate(systems, metrics, facets(examples, task), n_boot, seed, deltas)
    overall = slices.pop(ALL)[ALL]
    result: dict[str, Any] = {
        "inputs": inputs,
        "systems": list(outputs),
        "metrics": [{"name": m.name, "label": m.label, "lower_is_better": m.lower_is_better} for m in metrics],
        "parse_errors": {s.name: _parse_errors(s.rows) for s in systems},
        "overall": overall,
        "slices": slices,
        "gold_reference": {m.name: _mean(reference, m.name) for m in metrics if m.lower_is_better},
    }
    if task == "coding":
        result["invalid_codes"] = {s.name: invalid_code_counts(s.rows) for s in systems}
    return result


def score_predictions(
    run_path: Path,
    predictions: Path,
    split: str = "test",
    baseline: Path | None = None,
    allow_uncertified: bool = False,
    id_column: str = "example_id",
    prediction_column: str = "prediction",
    n_boot: int = N_BOOT,
    seed: int | None = None,
) -> dict[str, Any]:
    """Score, write reports/score.json and score.html, return the JSON summary."""
    if split not in SPLITS:
        raise ScoreError(f"--split must be one of {', '.join(SPLITS)}, not '{split}'")
    if n_boot < 0:
        raise ScoreError("--bootstrap must be 0 (no intervals) or more draws")
    run = load_run(run_path, split)
    cert = certification(run, allow_uncertified)
    task_metrics(run.task)  # a task without metrics stops before any file is read
    if run.examples.is_empty():
        raise ScoreError(f"the run has no '{split}' examples to score")
    examples = run.examples.sort("example_id")
    train = run.train
    allow_list, allow_note = _allow_list(run.recipe)
    files = {"model": Path(predictions)} | ({"baseline": Path(baseline)} if baseline is not None else {})
    frames = {name: read_predictions(path, id_column, prediction_column) for name, path in files.items()}
    seed = int(run.recipe.get("seed", 0)) if seed is None else seed
    result = evaluate(examples, train, run.task, frames, allow_list, n_boot, seed)
    for name, path in files.items():
        result["inputs"][name] = {"file": path.name, **result["inputs"][name]}
    summary: dict[str, Any] = {
        "score_version": 1,
        "datakit_version": __version__,
        "run": run.root.name,
        "recipe": run.recipe.get("name"),
        "task": run.task,
        "split": split,
        "certificate": cert,
        "floors": {
            "retrieval_vote": "what the prompt shows: as many top CPT and ICD candidates as the first few-shot "
            "example has codes, with its modifiers (impressions: the first few-shot example's impression)",
            "majority": "the most frequent train answer for the same exam description (else overall)",
        },
        "bootstrap": {
            "draws": n_boot,
            "seed": seed,
            "interval": "95% percentile interval; deltas are paired (same resampled examples)",
        },
        **result,
    }
    if run.task == "coding":
        summary["cpt_allow_list"] = allow_note
    write_score_reports(run.root, summary)
    return summary


def _mean(rows: pl.DataFrame, name: str) -> float | None:
    parsed = rows.filter(pl.col("parsed"))
    return round(float(parsed[name].mean()), 4) if parsed.height else None  # type: ignore[arg-type]


def write_score_reports(root: Path, summary: dict[str, Any]) -> dict[str, Path]:
    from datakit.score.report import render_html

    run = RunDir(root)
    json_path, html_path = run.report("score.json"), run.report("score.html")
    atomic_write_json(json_path, summary)
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(render_html(summary))
    tmp.replace(html_path)
    return {"json": json_path, "html": html_path}

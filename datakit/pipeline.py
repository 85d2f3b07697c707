"""The stage registry and the orchestration of a run (resume, --from, progress, summaries)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from datakit.assemble.examples import assemble_config, run_assemble
from datakit.codes.stage import codes_config, run_codes
from datakit.deid.stage import deid_config, publish_deid, run_deid
from datakit.errors import StageError
from datakit.leakage.stage import leakage_config, run_leakage
from datakit.recipe import Recipe
from datakit.report.build import write_reports
from datakit.runner import Outcome, RunDir, Stage, is_current, read_record, run_stage
from datakit.shards.writer import run_shard, shard_config
from datakit.sources.pull import pull_config, pull_is_volatile, run_pull


def publish_guard(run_dir: Path) -> None:
    """After assemble: the leakage report gains the retrieval guard's counts (when the leakage report exists)."""
    if (run_dir / "stages" / "leakage" / "leakage.json").is_file():
        write_reports(run_dir)


STAGES: tuple[Stage, ...] = (
    Stage(
        "pull",
        pull_config,
        run_pull,
        "read the source, map and validate the case schema, quarantine",
        volatile=pull_is_volatile,
    ),
    Stage(
        "deid",
        deid_config,
        run_deid,
        "PHI out of the text (presidio + radiology recognizers), keyed ids, per-patient date shift",
        publish=publish_deid,
    ),
    Stage("codes", codes_config, run_codes, "validate codes, specificity pairs, hard cases, prior-run exclusion"),
    Stage(
        "leakage",
        leakage_config,
        run_leakage,
        "three-layer leakage links, leakage groups, grouped split, train/eval certificate",
        publish=write_reports,
    ),
    Stage(
        "assemble",
        assemble_config,
        run_assemble,
        "few-shot retrieval (train only) behind the leakage guard, candidate codes, prompt/completion messages",
        publish=publish_guard,
    ),
    Stage("shard", shard_config, run_shard, "Parquet shards, manifest, dataset card", output="shards"),
)


STAGE_NAMES = tuple(s.name for s in STAGES)
# Each stage reads the output of the one before it in its task's pipeline.
PIPELINES: dict[str, tuple[str, ...]] = {
    "coding": ("pull", "deid", "codes", "leakage", "assemble", "shard"),
    "impression": ("pull", "deid", "leakage", "assemble", "shard"),
}


def stage_by_name(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise StageError(f"unknown stage '{name}' (stages: {', '.join(STAGE_NAMES)})")


def pipeline_for(task: str) -> tuple[Stage, ...]:
    return tuple(stage_by_name(n) for n in PIPELINES[task])


def _input_fingerprints(stage: Stage, task: str, run_dir: Path) -> dict[str, str]:
    names = PIPELINES[task]
    position = names.index(stage.name)
    if position == 0:
        return {}
    previous = names[position - 1]
    record = read_record(stage_by_name(previous).record_path(run_dir))
    if record is None:
        raise StageError(
            f"stage '{stage.name}' needs the output of '{previous}', which {run_dir} does not have: "
            f"run `datakit {previous}` first (or `datakit run`)"
        )
    return {previous: record["output_fingerprint"]}


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=console.quiet,
    )


def _run_or_skip(
    stage: Stage, recipe: Recipe, run_dir: Path, progress: Progress, must_run: bool, strict: bool
) -> Outcome:
    inputs = _input_fingerprints(stage, recipe.task, run_dir)
    config = stage.config(recipe)
    if not must_run and not stage.volatile(recipe) and is_current(stage, config, run_dir, inputs):
        if stage.publish is not None:
            stage.publish(run_dir)
        return Outcome(stage.name, "skipped", read_record(stage.record_path(run_dir)) or {})
    task = progress.add_task(stage.name, total=None, rate="")

    def advance(n: int) -> None:
        progress.advance(task, n)
        speed = next(t.speed for t in progress.tasks if t.id == task)
        progress.update(task, rate=f"{speed:,.0f} rows/s" if speed else "")

    def set_total(n: int) -> None:
        progress.update(task, total=n)

    try:
        record = run_stage(stage, recipe, run_dir, inputs, strict, advance, set_total, config)
    finally:
        progress.remove_task(task)
    if stage.publish is not None:
        stage.publish(run_dir)
    return Outcome(stage.name, "ran", record)


def run_pipeline(
    recipe: Recipe,
    run_dir: Path,
    console: Console,
    *,
    only: list[str] | None = None,
    from_stage: str | None = None,
    force: bool = False,
    strict: bool = False,
    on_stage: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the recipe's stages in order; skip the ones whose inputs and config did not change."""
    stages = pipeline_for(recipe.task)
    names = [s.name for s in stages]
    for name in [*(only or []), *([from_stage] if from_stage else [])]:
        if name not in names:
            raise StageError(f"stage '{name}' is not part of the {recipe.task} pipeline ({', '.join(names)})")
    wanted = list(only or names)
    forced_from = names.index(from_stage) if from_stage else None
    run_dir.mkdir(parents=True, exist_ok=True)
    rd = RunDir(run_dir)
    rd.clean_temporaries()
    rd.write_run_json(recipe, {"status": "running"})
    outcomes: list[Outcome] = []
    try:
        with _progress(console) as progress:
            for position, stage in enumerate(stages):
                if stage.name not in wanted:
                    continue
                must_run = force or (forced_from is not None and position >= forced_from)
                outcome = _run_or_skip(stage, recipe, run_dir, progress, must_run, strict or recipe.validation.strict)
                outcomes.append(outcome)
                if on_stage:
                    on_stage(outcome)
    except BaseException as exc:
        # The class only: messages of errors raised inside stages are not guaranteed free of record content.
        rd.write_run_json(
            recipe, {"status": "failed", "error": type(exc).__name__, "stages": [o.stage for o in outcomes]}
        )
        raise
    watermark = next((o.record.get("stats", {}).get("source_watermark") for o in outcomes if o.stage == "pull"), None)
    rd.write_run_json(
        recipe,
        {
            "status": "complete" if wanted == names else "partial",
            "stages": [o.stage for o in outcomes],
            "source_watermark": watermark,
        },
    )
    return outcomes

"""The stage registry and the orchestration of a run (resume, --from, provenance, progress, summaries).

Light to import: each stage's code is imported when the stage runs, so `datakit --help` and `recipe check`
never load presidio, spaCy, torch or FAISS.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console

from datakit.errors import StageError
from datakit.progress import RunDisplay, quiet_libraries
from datakit.rundir import RunDir
from datakit.runner import Outcome, Stage, is_current, run_stage

if TYPE_CHECKING:
    from datakit.recipe import Recipe


def lazy(target: str) -> Callable[..., Any]:
    """`module:function`, imported on the first call."""
    module, _, name = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = target
    return call


KEYS = ("keys", "source.kind")  # the key's settings: its id is hashed (derived), the settings themselves not

STAGES: tuple[Stage, ...] = (
    Stage(
        "pull",
        ("task", "text", "split.source_column", "split.source_splits", "source", "validation"),
        lazy("datakit.sources.pull:run_pull"),
        "read the source, map and validate the case schema, quarantine",
        derived=lazy("datakit.sources.pull:pull_derived"),
        volatile=lazy("datakit.sources.pull:pull_is_volatile"),
    ),
    Stage(
        "deid",
        # the split column is a category, kept as it is; deid.json names the recipe
        ("deid", "split.source_column", "name"),
        lazy("datakit.deid.stage:run_deid"),
        "PHI out of the text (presidio + radiology recognizers), keyed ids, per-patient date shift",
        unhashed=("deid.n_jobs", "deid.batch_size", *KEYS),
        derived=lazy("datakit.deid.stage:deid_derived"),
        publish=lazy("datakit.deid.stage:publish_deid"),
    ),
    Stage(
        "codes",
        ("codes",),
        lazy("datakit.codes.stage:run_codes"),
        "validate codes, specificity pairs, hard cases, prior-run exclusion",
        derived=lazy("datakit.codes.stage:codes_derived"),
    ),
    Stage(
        "leakage",
        # the certificate names the recipe and says which columns de-id kept and whether its residual scan ran
        ("leakage", "split", "seed", "name", "deid.keep_columns", "deid.residual_scan_share"),
        lazy("datakit.leakage.stage:run_leakage"),
        "three-layer leakage links, leakage groups, grouped split, train/eval certificate",
        unhashed=KEYS,
        derived=lazy("datakit.leakage.stage:leakage_derived"),
        publish=lazy("datakit.report.build:write_reports"),
    ),
    Stage(
        "assemble",
        ("task", "text", "prompt", "assemble", "leakage", "seed"),
        lazy("datakit.assemble.examples:run_assemble"),
        "few-shot retrieval (train only) behind the leakage guard, candidate codes, prompt/completion messages",
        unhashed=KEYS,
        derived=lazy("datakit.assemble.examples:assemble_derived"),
        publish=lazy("datakit.report.build:publish_guard"),
    ),
    Stage(
        "shard",
        ("*",),  # the manifest and the dataset card record the whole recipe
        lazy("datakit.shards.writer:run_shard"),
        "Parquet shards, manifest, dataset card",
        output="shards",
    ),
)


STAGE_NAMES = tuple(s.name for s in STAGES)
# Each stage reads the output of the one before it in its task's pipeline.
PIPELINES: dict[str, tuple[str, ...]] = {
    "coding": ("pull", "deid", "codes", "leakage", "assemble", "shard"),
    "impression": ("pull", "deid", "leakage", "assemble", "shard"),
    "text": ("pull", "deid", "leakage", "assemble", "shard"),
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
    record = RunDir(run_dir).record(previous)
    if record is None:
        raise StageError(
            f"stage '{stage.name}' needs the output of '{previous}', which {run_dir} does not have: "
            f"run `datakit {previous}` first (or `datakit run`)"
        )
    return {previous: record["output_fingerprint"]}


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def recipe_differences(made_with: dict[str, Any], recipe: Recipe) -> list[str]:
    """Dotted recipe keys whose values differ between a recorded recipe and this one (keys only, no values)."""
    a, b = _flatten(made_with), _flatten(recipe.canonical())
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def check_provenance(stages: tuple[Stage, ...], upto: int, recipe: Recipe, run_dir: Path) -> None:
    """Refuse to build on stage outputs that this recipe would not make.

    Every stage before position `upto` that this invocation does not run must be current under this recipe
    (same config hash, same inputs, untouched output); otherwise the differing recipe keys are named.
    """
    for stage in stages[:upto]:
        record = RunDir(run_dir).record(stage.name)
        if record is None:
            continue  # the missing-input error names it
        inputs = _input_fingerprints(stage, recipe.task, run_dir)
        if is_current(stage, stage.config(recipe), run_dir, inputs):
            continue
        if "recipe" in record:
            keys = recipe_differences(record["recipe"], recipe) or ["(same recipe; the stage's inputs changed)"]
            why = f"differs in {', '.join(keys)}"
        else:
            why = "was made by an older datakit that did not record its recipe"
        raise StageError(
            f"the '{stage.name}' output in {run_dir} was made with another recipe: it {why}. Re-run from "
            f"'{stage.name}' with this recipe (`datakit run ... --from {stage.name}`), or pass --force to build on "
            "it anyway (the stage records say which recipe made what)"
        )


def _run_or_skip(
    stage: Stage, recipe: Recipe, run_dir: Path, display: RunDisplay, must_run: bool, strict: bool
) -> Outcome:
    inputs = _input_fingerprints(stage, recipe.task, run_dir)
    config = stage.config(recipe)
    if not must_run and not stage.volatile(recipe) and is_current(stage, config, run_dir, inputs):
        if stage.publish is not None:
            stage.publish(run_dir)
        return Outcome(stage.name, "skipped", RunDir(run_dir).record(stage.name) or {})
    sp = display.start(stage.name)
    status = "failed"
    record: dict[str, Any] = {}
    try:
        record = run_stage(stage, recipe, run_dir, inputs, strict, sp.advance, sp.set_total, config, sp.phase)
        status = "done"
    finally:
        display.end(sp, status, record.get("rows_out"))
    if stage.publish is not None:
        stage.publish(run_dir)
    return Outcome(stage.name, "ran", record)


class Interrupted(BaseException):
    """SIGTERM (or SIGHUP) arrived: the run stops like on Ctrl-C and marks itself interrupted."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    def raise_interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    saved = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with suppress(ValueError):  # not the main thread: leave signals alone
            saved[sig] = signal.signal(sig, raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def previous_status(run_dir: Path) -> str | None:
    """The status run.json holds; a 'running' run whose process is gone was killed: 'interrupted'."""
    record = RunDir(run_dir).run_record()
    if record is None:
        return None
    status = record.get("status")
    pid = record.get("pid")
    if status == "running" and isinstance(pid, int) and not _alive(pid):
        return "interrupted"
    return str(status) if status else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_json(recipe: Recipe, rd: RunDir, extra: dict[str, Any]) -> None:
    from datakit import __version__

    stage_recipes = {name: record.get("recipe_hash") for name in STAGE_NAMES if (record := rd.record(name)) is not None}
    rd.write_run_json(
        {
            "recipe": recipe.canonical(),
            "recipe_hash": recipe.hash(),
            "seed": recipe.seed,
            "datakit_version": __version__,
            "stage_recipe_hashes": stage_recipes,
            **extra,
        }
    )


def run_pipeline(
    recipe: Recipe,
    run_dir: Path,
    console: Console,
    *,
    only: list[str] | None = None,
    from_stage: str | None = None,
    force: bool = False,
    strict: bool = False,
    debug: bool = False,
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
    rd = RunDir(run_dir)
    command = " ".join(["datakit", *sys.argv[1:]]) if sys.argv and "datakit" in sys.argv[0] else recipe.name
    with rd.lock(command):  # one writer per run directory (a second one is told who holds it)
        if not force:
            check_provenance(stages, names.index(wanted[0]), recipe, run_dir)
        earlier = previous_status(run_dir)
        rd.clean_temporaries()
        started = {"pid": os.getpid(), "previous_status": earlier}
        _run_json(recipe, rd, {"status": "running", **started})
        display = RunDisplay(console)
        outcomes: list[Outcome] = []
        try:
            with _terminate_as_interrupt(), quiet_libraries(debug), display:
                for position, stage in enumerate(stages):
                    if stage.name not in wanted:
                        continue
                    must_run = force or (forced_from is not None and position >= forced_from)
                    outcome = _run_or_skip(
                        stage, recipe, run_dir, display, must_run, strict or recipe.validation.strict
                    )
                    outcomes.append(outcome)
                    if on_stage:
                        on_stage(outcome)
        except (KeyboardInterrupt, Interrupted) as exc:
            _run_json(
                recipe,
                rd,
                {"status": "interrupted", "signal": str(exc) or "SIGINT", "stages": _names(outcomes), **started},
            )
            raise
        except BaseException as exc:
            # The class only: messages of errors raised inside stages are not guaranteed free of record content.
            # Best effort: on a full disk or a read-only folder run.json itself may not be writable.
            with suppress(OSError):
                _run_json(
                    recipe, rd, {"status": "failed", "error": type(exc).__name__, "stages": _names(outcomes), **started}
                )
            rd.clean_temporaries()
            raise
        watermark = next(
            (o.record.get("stats", {}).get("source_watermark") for o in outcomes if o.stage == "pull"), None
        )
        _run_json(
            recipe,
            rd,
            {
                "status": "complete" if wanted == names else "partial",
                "stages": _names(outcomes),
                "source_watermark": watermark,
                **started,
            },
        )
        return outcomes


def _names(outcomes: list[Outcome]) -> list[str]:
    return [o.stage for o in outcomes]

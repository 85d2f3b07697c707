"""Running one stage: config hash, resume, atomic commit, `_stage.json` (the run directory is `datakit.rundir`).

A stage writes into `stages/.<stage>.tmp-<pid>/` and is renamed into place only when complete; `_stage.json`
is the completion marker. A stage whose config hash, input fingerprints and output fingerprint all match its
`_stage.json` is skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datakit import __version__
from datakit.errors import SchemaError, StageError
from datakit.memory import release, tune_allocator
from datakit.rundir import (
    STAGE_FILE,
    PartWriter,
    RunDir,
    atomic_write_json,
    fingerprint,
    iter_parts,
    read_record,
    replace_dir,
    write_parts,
)

if TYPE_CHECKING:
    import polars as pl

    from datakit.executor import Executor
    from datakit.keys import SecretKey
    from datakit.recipe import Recipe


@dataclass
class StageResult:
    rows_in: int
    rows_out: int
    quarantine: pl.DataFrame | None = None
    stats: dict[str, Any] = field(default_factory=dict)


Advance = Callable[[int], None]


@dataclass
class StageContext:
    recipe: Recipe
    run_dir: Path
    out_dir: Path
    input_stage: str | None = None
    advance: Advance = lambda n: None
    set_total: Callable[[int], None] = lambda n: None
    # start a step of the stage in its own units: phase("embedding", n_texts, "texts"); advance() moves it
    phase: Callable[[str, int | None, str], None] = lambda step, total, unit: None

    _executor: Executor | None = field(default=None, repr=False)

    @property
    def rundir(self) -> RunDir:
        return RunDir(self.run_dir)

    @property
    def executor(self) -> Executor:
        """Where this stage's batches run (`datakit.executor`, from the recipe's `[engine]`); one per stage."""
        if self._executor is None:
            from datakit.executor import executor_for

            self._executor = executor_for(self.recipe.engine)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    @property
    def key(self) -> SecretKey:
        """The run's secret key, read once per process (environment or key file) and shared by every stage."""
        from datakit.keys import load_key

        return load_key(self.recipe)

    def read_input(self) -> pl.DataFrame:
        """The output of the stage before this one in the recipe's pipeline."""
        if self.input_stage is None:
            raise StageError("this stage has no input stage")
        return self.rundir.read_stage(self.input_stage)

    def iter_input(self, batch_rows: int, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """The input stage's rows in order, `batch_rows` at a time (a streaming stage's reader)."""
        if self.input_stage is None:
            raise StageError("this stage has no input stage")
        if not self.rundir.has_stage(self.input_stage):
            self.read_input()  # raises the missing-stage message
        return iter_parts(self.rundir.stage_dir(self.input_stage), batch_rows, columns)

    def input_rows(self) -> int:
        """How many rows the input stage wrote (from the parts' metadata, nothing read)."""
        import pyarrow.parquet as pq

        assert self.input_stage is not None
        parts = sorted(self.rundir.stage_dir(self.input_stage).glob("part-*.parquet"))
        return sum(pq.ParquetFile(p).metadata.num_rows for p in parts)

    def writer(self) -> PartWriter:
        """Writes this stage's output part by part (the same files `write` writes for the whole frame)."""
        return PartWriter(self.out_dir)

    def write(self, frame: pl.DataFrame) -> None:
        write_parts(frame, self.out_dir)


def _nothing_derived(recipe: Recipe) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Stage:
    """A stage: what it reads of the recipe, what it runs, where it writes.

    `hashed`: the recipe keys its output depends on (dotted, `*` for every key but `engine`), which its config hash
    covers; `unhashed`: keys it may read that cannot change its output (worker counts, the key settings whose key
    is hashed by id). It sees the recipe through a view (`datakit.slices`) that refuses every other key. `derived`:
    what the hash covers besides the slice (input file digests, code-set and model versions, the key's id)."""

    name: str
    hashed: tuple[str, ...]
    run: Callable[[StageContext], StageResult]
    summary: str
    unhashed: tuple[str, ...] = ()
    derived: Callable[[Recipe], dict[str, Any]] = _nothing_derived
    output: str = "stages"  # "stages" -> stages/<name>/; "shards" -> shards/
    publish: Callable[[Path], Any] | None = None  # renders files outside the stage folder (reports/) from it
    volatile: Callable[[Recipe], bool] = lambda recipe: False  # True: its input can change behind its config

    def recipe_view(self, recipe: Recipe) -> Recipe:
        """The recipe as this stage may read it (its hashed and unhashed keys, and `engine`)."""
        from datakit.slices import view

        return view(recipe, self.name, self.hashed, self.unhashed)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        """What the config hash covers: the recipe's hashed slice and what the stage derives from it."""
        from datakit.slices import recipe_slice

        derived = self.derived(self.recipe_view(recipe))
        return {"recipe": recipe_slice(recipe, self.hashed, self.unhashed), **derived}

    def output_dir(self, run_dir: Path) -> Path:
        rd = RunDir(run_dir)
        return rd.shards if self.output == "shards" else rd.stage_dir(self.name)

    def record_path(self, run_dir: Path) -> Path:
        return RunDir(run_dir).stage_record(self.name)


@dataclass
class Outcome:
    stage: str
    status: str  # ran | skipped
    record: dict[str, Any]


class PeakRss:
    """Samples this process's resident memory while a stage runs (the stage's own peak, not the process's)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.start = self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def _hint(reason: str) -> str:
    kind, _, column = reason.partition(":")
    if kind == "empty":
        return f"is {column} mapped? see source.columns.{column}"
    if kind == "unparseable":
        return f"set source.date_format to the format of {column}" if column == "exam_date" else "check the format"
    if kind == "residual_phi":
        return "the residual PHI check flagged them: see reports/deid.json"
    if kind in ("invalid_code", "no_valid_codes_left"):
        return "codes the tables do not know; several codes in one cell? set source.list_separator"
    if kind == "deid_error":
        return "the de-identifier failed on them: rerun with --debug for the traceback (it may quote the record)"
    if kind == "too_long":
        return "a text longer than deid.max_text_chars, not read"
    return "see the reason column of the quarantine file"


def why_empty(stage: str, result: StageResult, quarantine: Path) -> str:
    """One line: why a stage left no rows, and what to do (reason codes and counts only, never content)."""
    stats = result.stats
    if result.rows_in == 0:
        where = "the source holds no rows (a header only?)" if stage == "pull" else "its input holds no rows"
        return f"{stage}: {where}; nothing to build a dataset from"
    parts = []
    reasons = stats.get("quarantine_reasons") or {}
    if reasons:
        parts.append(f"quarantined: {_top_reasons(reasons)}; the rows are in {quarantine}")
    filtered = stats.get("filtered_review_status") or 0
    if filtered:
        parts.append(
            f"{filtered:,} filtered out by validation.review_status (set validation.review_status=[] to keep all)"
        )
    dropped = stats.get("rows_dropped") or {}
    if dropped:
        parts.append("dropped: " + ", ".join(f"{k} ({v:,})" for k, v in sorted(dropped.items())))
    detail = "; ".join(parts) if parts else "see the stage's _stage.json stats"
    return f"{stage}: all {result.rows_in:,} rows were removed, none is left: {detail}"


def _top_reasons(reasons: dict[str, int]) -> str:
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return "; ".join(f"{reason} ({n:,}) — {_hint(reason)}" for reason, n in top)


def why_mostly_quarantined(
    stage: str, result: StageResult, n: int, considered: int, limit: float, run_dir: Path
) -> str:
    """One line: a stage quarantined most of its rows (a mapping or format problem), reasons and the knob."""
    reasons = _top_reasons(result.stats.get("quarantine_reasons") or {}) or "see the reason column"
    return (
        f"{stage}: {n:,} of {considered:,} rows quarantined (over validation.max_quarantined_share = {limit:g}), "
        f"so the run stops instead of building a dataset from the rest: {reasons}; the rows are in "
        f"{RunDir(run_dir).quarantine(stage)}; once the causes are fixed or accepted, "
        "--set validation.max_quarantined_share=1 continues past them"
    )


def stage_config_hash(stage: Stage, config: dict[str, Any]) -> str:
    """Hash of a stage's config (computed once per run: a files source's config hashes its input files)."""
    from datakit.recipe import config_hash

    return config_hash({"stage": stage.name, "datakit": __version__, "config": config})


def is_current(stage: Stage, config: dict[str, Any], run_dir: Path, inputs: dict[str, str]) -> bool:
    record = read_record(stage.record_path(run_dir))
    if record is None or record.get("config_hash") != stage_config_hash(stage, config):
        return False
    if record.get("inputs") != inputs:
        return False
    out = stage.output_dir(run_dir)
    return out.is_dir() and record.get("output_fingerprint") == fingerprint(out)


@contextmanager
def _temporary(folder: Path) -> Iterator[Path]:
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)


def run_stage(
    stage: Stage,
    recipe: Recipe,
    run_dir: Path,
    inputs: dict[str, str],
    strict: bool,
    advance: Advance,
    set_total: Callable[[int], None],
    config: dict[str, Any],
    phase: Callable[[str, int | None, str], None] | None = None,
) -> dict[str, Any]:
    final = stage.output_dir(run_dir)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    tune_allocator()
    release()  # the stage's peak starts from what the earlier stages still hold, not from what they freed
    with _temporary(tmp), PeakRss() as rss:
        ctx = StageContext(
            recipe=stage.recipe_view(recipe),
            run_dir=run_dir,
            out_dir=tmp,
            input_stage=next(iter(inputs), None),
            advance=advance,
            set_total=set_total,
        )
        if phase is not None:
            ctx.phase = phase
        try:
            result = stage.run(ctx)
        finally:
            ctx.close()
        n_quarantined = 0 if result.quarantine is None else result.quarantine.height
        if result.quarantine is not None:
            RunDir(run_dir).write_quarantine(stage.name, result.quarantine)
        if strict and n_quarantined:
            reasons = result.stats.get("quarantine_reasons", {})
            listed = ", ".join(f"{k}: {v}" for k, v in reasons.items())
            raise SchemaError(
                f"{stage.name}: {n_quarantined} rows quarantined ({listed}); see "
                f"{run_dir / 'quarantine' / (stage.name + '.parquet')}; run without --strict to "
                "continue past them"
            )
        if result.rows_out == 0:
            raise StageError(why_empty(stage.name, result, RunDir(run_dir).quarantine(stage.name)))
        considered = result.rows_in - int(result.stats.get("filtered_review_status") or 0)
        limit = recipe.validation.max_quarantined_share
        if limit < 1 and n_quarantined > limit * considered:
            raise StageError(why_mostly_quarantined(stage.name, result, n_quarantined, considered, limit, run_dir))
        wall = time.perf_counter() - t0
        record = {
            "stage": stage.name,
            "datakit_version": __version__,
            "config_hash": stage_config_hash(stage, config),
            "config": config,
            "recipe_hash": recipe.hash(),
            "recipe": recipe.canonical(),
            "inputs": inputs,
            "output_fingerprint": fingerprint(tmp),
            "rows_in": result.rows_in,
            "rows_out": result.rows_out,
            "rows_quarantined": n_quarantined,
            "stats": result.stats,
            "wall_seconds": round(wall, 3),
            "rows_per_second": round(result.rows_in / wall, 1) if wall > 0 else None,
            "peak_rss_mb": round(rss.peak / 2**20, 1),
            # what the process held when the stage began (earlier stages' leftovers, libraries, models)
            "start_rss_mb": round(rss.start / 2**20, 1),
            "started_at": started.isoformat(timespec="seconds"),
        }
        if stage.output == "stages":
            (tmp / STAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
            final.parent.mkdir(parents=True, exist_ok=True)
            replace_dir(tmp, final)
        else:
            # Outputs outside stages/: drop the old marker first, so a kill between the two renames re-runs.
            stage.record_path(run_dir).unlink(missing_ok=True)
            replace_dir(tmp, final)
            atomic_write_json(stage.record_path(run_dir), record)
    return record

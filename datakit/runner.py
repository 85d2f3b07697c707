"""Stage registry, run directory, atomic commits, resume.

Run directory (the contract between stages, and with users)::

    runs/<name>/
      run.json                      resolved recipe, recipe hash, seed, datakit version, source watermark
      stages/<stage>/part-*.parquet, _stage.json
      quarantine/<stage>.parquet    rejected rows + reason (may hold raw PHI: never copied anywhere else)
      shards/                       written by the shard stage (its _stage.json stays in stages/shard/)

A stage writes into `stages/.<stage>.tmp-<pid>/` and is renamed into place only when complete; `_stage.json`
is the completion marker. A stage whose config hash, input fingerprints and output fingerprint all match its
`_stage.json` is skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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
from typing import Any

import polars as pl

from datakit import __version__
from datakit.errors import SchemaError, StageError
from datakit.recipe import Recipe, config_hash

PART_ROWS = 100_000
STAGE_FILE = "_stage.json"


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

    def read_input(self) -> pl.DataFrame:
        """The output of the stage before this one in the recipe's pipeline."""
        if self.input_stage is None:
            raise StageError("this stage has no input stage")
        return read_stage(self.run_dir, self.input_stage)

    def write(self, frame: pl.DataFrame) -> None:
        write_parts(frame, self.out_dir)


@dataclass(frozen=True)
class Stage:
    name: str
    config: Callable[[Recipe], dict[str, Any]]
    run: Callable[[StageContext], StageResult]
    summary: str
    output: str = "stages"  # "stages" -> stages/<name>/; "shards" -> shards/
    publish: Callable[[Path], Any] | None = None  # renders files outside the stage folder (reports/) from it
    volatile: Callable[[Recipe], bool] = lambda recipe: False  # True: its input can change behind its config

    def output_dir(self, run_dir: Path) -> Path:
        return run_dir / "shards" if self.output == "shards" else run_dir / "stages" / self.name

    def record_path(self, run_dir: Path) -> Path:
        return run_dir / "stages" / self.name / STAGE_FILE


@dataclass
class Outcome:
    stage: str
    status: str  # ran | skipped
    record: dict[str, Any]


def write_parts(frame: pl.DataFrame, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    n_parts = max(1, -(-frame.height // PART_ROWS))
    for p in range(n_parts):
        part = frame.slice(p * PART_ROWS, PART_ROWS)
        part.write_parquet(out_dir / f"part-{p:05d}.parquet", compression="zstd", statistics=True)


def read_stage(run_dir: Path, stage: str) -> pl.DataFrame:
    folder = run_dir / "stages" / stage
    if not (folder / STAGE_FILE).is_file():
        raise StageError(
            f"the output of stage '{stage}' is missing in {run_dir}: run `datakit {stage}` first (or `datakit run`)"
        )
    return pl.read_parquet(sorted(folder.glob("part-*.parquet")))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(folder: Path) -> str:
    """sha256 over (relative name, content sha256) of every data file in a folder, in name order."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STAGE_FILE):
        h.update(f"{path.relative_to(folder)}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


class PeakRss:
    """Samples this process's resident memory while a stage runs (the stage's own peak, not the process's)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
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
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; the old one (if any) goes away only after."""
    trash = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, trash)
    os.replace(tmp, final)
    shutil.rmtree(trash, ignore_errors=True)


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


class RunDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    def clean_temporaries(self) -> None:
        """Remove what a killed run left behind (temporary stage folders are never read)."""
        for pattern in (
            "stages/.*.tmp-*",
            "stages/.*.old-*",
            ".shards.tmp-*",
            ".shards.old-*",
            "quarantine/.*",
        ):
            for path in self.root.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    def write_run_json(self, recipe: Recipe, extra: dict[str, Any]) -> None:
        atomic_write_json(
            self.root / "run.json",
            {
                "recipe": recipe.canonical(),
                "recipe_hash": recipe.hash(),
                "seed": recipe.seed,
                "datakit_version": __version__,
                **extra,
            },
        )


def stage_config_hash(stage: Stage, config: dict[str, Any]) -> str:
    """Hash of a stage's config (computed once per run: a files source's config hashes its input files)."""
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
) -> dict[str, Any]:
    final = stage.output_dir(run_dir)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    with _temporary(tmp), PeakRss() as rss:
        ctx = StageContext(
            recipe=recipe,
            run_dir=run_dir,
            out_dir=tmp,
            input_stage=next(iter(inputs), None),
            advance=advance,
            set_total=set_total,
        )
        result = stage.run(ctx)
        n_quarantined = 0 if result.quarantine is None else result.quarantine.height
        if result.quarantine is not None:
            q = run_dir / "quarantine" / f"{stage.name}.parquet"
            q.parent.mkdir(parents=True, exist_ok=True)
            q_tmp = q.with_name(f".{q.name}.tmp-{os.getpid()}")
            result.quarantine.write_parquet(q_tmp, compression="zstd")
            os.replace(q_tmp, q)
        if strict and n_quarantined:
            reasons = result.stats.get("quarantine_reasons", {})
            listed = ", ".join(f"{k}: {v}" for k, v in reasons.items())
            raise SchemaError(
                f"{stage.name}: {n_quarantined} rows quarantined ({listed}); see "
                f"{run_dir / 'quarantine' / (stage.name + '.parquet')}; run without --strict to "
                "continue past them"
            )
        wall = time.perf_counter() - t0
        record = {
            "stage": stage.name,
            "datakit_version": __version__,
            "config_hash": stage_config_hash(stage, config),
            "config": config,
            "inputs": inputs,
            "output_fingerprint": fingerprint(tmp),
            "rows_in": result.rows_in,
            "rows_out": result.rows_out,
            "rows_quarantined": n_quarantined,
            "stats": result.stats,
            "wall_seconds": round(wall, 3),
            "rows_per_second": round(result.rows_in / wall, 1) if wall > 0 else None,
            "peak_rss_mb": round(rss.peak / 2**20, 1),
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

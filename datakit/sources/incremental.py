"""Keyset pulls from a database, committed batch by batch: resumable, incremental, with a completeness check.

A database source (supabase, postgres) supplies a `Reader`: pages of rows in `(updated_at, id)` order after a
key, and exact counts. This module owns everything else, for both:

- **Keyset pagination**: each page starts after the last row actually returned (servers cap pages), never at an
  offset; the pull ends on an empty page.
- **Batches are committed** to `<run>/pull_state/inflight/` (file, then `progress.json`, each atomically), so a
  killed pull resumes from its last committed batch.
- **Incremental**: the watermark `(updated_at, id)` of the last complete pull is kept in
  `<run>/pull_state/state.json` with the pulled rows (`snapshot/`); the next pull re-reads from
  `watermark - overlap` and keeps the newest version of each id. Rows of the window are read without the
  recipe's filters and filtered here, so a row that stops matching them (a case sent back for review) leaves the
  dataset instead of lingering in its old version.
- **Completeness**: the distinct ids pulled are compared with the source's exact count of the same window; a
  shortfall triggers one re-read of the window and then an error, never a silent gap.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from datakit.errors import SourceError
from datakit.recipe import Database, RowFilter, config_hash
from datakit.rundir import RunDir, atomic_write_json, read_record, replace_dir

KEY_UPDATED = "_key_updated"  # Datetime(us, UTC) of the row's updated column
KEY_ID = "_key_id"  # the row's id as text
_SEQ = "_seq"


@dataclass(frozen=True)
class Key:
    """A keyset position: rows strictly after (updated_at, id); with id None, rows with updated_at >= it."""

    updated_at: str  # ISO 8601 with offset and microseconds
    id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"updated_at": self.updated_at, "id": self.id}

    @staticmethod
    def from_json(data: dict[str, Any] | None) -> Key | None:
        return None if data is None else Key(str(data["updated_at"]), data.get("id"))


def iso(value: dt.datetime) -> str:
    """A timestamp as the exact ISO text both PostgREST and PostgreSQL parse back to the same microsecond."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


class Reader(Protocol):
    """One database: the rows of the recipe's table, in keyset order."""

    source_id: str  # identifies the table and its host/database (no secret); a change discards stored state
    stats: dict[str, int]  # retries, statement timeouts, ... (filled by the reader)

    def page(self, after: Key | None, limit: int, filtered: bool) -> pl.DataFrame:
        """Up to `limit` rows after `after` in (updated_at, id) order, with KEY_UPDATED and KEY_ID columns."""
        ...

    def count(self, since: str | None, until: str, filtered: bool) -> int:
        """Exact number of rows with since <= updated_at <= until (no lower bound when since is None)."""
        ...

    def close(self) -> None: ...


def key_columns(frame: pl.DataFrame, updated: str, ident: str) -> pl.DataFrame:
    """Add KEY_UPDATED (UTC microseconds) and KEY_ID (text) from the source's own columns."""
    dtype = frame.schema[updated]
    col = pl.col(updated)
    if dtype == pl.String:
        parsed = col.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    elif isinstance(dtype, pl.Datetime):
        parsed = (
            col.dt.convert_time_zone("UTC") if dtype.time_zone else col.dt.replace_time_zone("UTC")
        ).dt.cast_time_unit("us")
    else:
        raise SourceError(f"the updated_at column '{updated}' must be a timestamp, not {dtype}")
    out = frame.with_columns(parsed.alias(KEY_UPDATED), pl.col(ident).cast(pl.String).alias(KEY_ID))
    if out[KEY_UPDATED].null_count() or out[KEY_ID].null_count():
        raise SourceError(
            f"the source has rows whose '{updated}' or '{ident}' is null or not a timestamp: keyset pulls need both "
            "on every row (make them NOT NULL)"
        )
    return out


def last_key(page: pl.DataFrame) -> Key:
    row = page.select(KEY_UPDATED, KEY_ID).row(-1)
    return Key(iso(row[0]), str(row[1]))


def missing_column(cfg: Database, column: str | None, where: str) -> SourceError:
    """A needed column the table lacks, named by the recipe key that asked for it when there is one."""
    mapped = [k for k, v in cfg.columns.items() if v == column]
    which = f"source.columns.{mapped[0]} names column '{column}'" if mapped else f"column '{column}' is needed"
    return SourceError(f"{which}, which {where} does not have")


def filter_expr(filters: list[RowFilter], schema: pl.Schema) -> pl.Expr:
    """The recipe's filters as one Polars predicate (for rows read without them)."""
    expr = pl.lit(True)
    for f in filters:
        col = pl.col(f.column)
        dtype = schema.get(f.column, pl.String())
        if f.op == "is":
            cond = {
                "null": col.is_null(),
                "not_null": col.is_not_null(),
                "true": col.cast(pl.Boolean) == True,  # noqa: E712  (Polars expression, not a Python comparison)
                "false": col.cast(pl.Boolean) == False,  # noqa: E712
            }[str(f.value)]
        elif f.op == "in":
            cond = col.cast(pl.String).is_in([str(v) for v in f.value])
        else:
            value = pl.Series([f.value]).cast(dtype, strict=False)[0] if dtype != pl.String else f.value
            if value is None:
                raise SourceError(f"filter on '{f.column}': '{f.value}' is not a value of that column's type {dtype}")
            lit = pl.lit(value, dtype=dtype)
            cond = {
                "eq": col == lit,
                "neq": col != lit,
                "gt": col > lit,
                "gte": col >= lit,
                "lt": col < lit,
                "lte": col <= lit,
            }[f.op]
        expr = expr & cond.fill_null(False)
    return expr


@dataclass
class PullResult:
    rows: pl.DataFrame  # the whole dataset after this pull: source columns, newest version per id
    stats: dict[str, Any] = field(default_factory=dict)


class PullState:
    """`<run>/pull_state/`: the last complete pull (state.json + snapshot/) and the pull in flight (inflight/)."""

    def __init__(self, run_dir: Path) -> None:
        self.root = RunDir(run_dir).pull_state
        self.inflight = self.root / "inflight"
        self.snapshot = self.root / "snapshot"

    def state(self) -> dict[str, Any] | None:
        return read_record(self.root / "state.json")

    def progress(self) -> dict[str, Any] | None:
        return read_record(self.inflight / "progress.json")

    def snapshot_rows(self) -> pl.DataFrame | None:
        parts = sorted(self.snapshot.glob("part-*.parquet"))
        return pl.read_parquet(parts) if parts else None

    def start_inflight(self, progress: dict[str, Any]) -> None:
        shutil.rmtree(self.inflight, ignore_errors=True)
        self.inflight.mkdir(parents=True)
        atomic_write_json(self.inflight / "progress.json", progress)

    def commit_batch(self, progress: dict[str, Any], page: pl.DataFrame) -> None:
        """The batch file first, then the progress that names it: a kill between the two re-reads the batch."""
        index = int(progress["batches"]) + 1
        path = self.inflight / f"batch-{index:06d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        page.write_parquet(tmp, compression="zstd")
        os.replace(tmp, path)
        progress["batches"] = index
        progress["rows"] = int(progress["rows"]) + page.height
        progress["after"] = last_key(page).to_json()
        atomic_write_json(self.inflight / "progress.json", progress)

    def inflight_rows(self, progress: dict[str, Any]) -> pl.DataFrame | None:
        paths = [self.inflight / f"batch-{i:06d}.parquet" for i in range(1, int(progress["batches"]) + 1)]
        return pl.concat([pl.read_parquet(p) for p in paths], how="diagonal_relaxed") if paths else None

    def complete(self, rows: pl.DataFrame, state: dict[str, Any]) -> None:
        """Snapshot, then state.json, then drop the in-flight batches (each step survives a kill after it)."""
        for leftover in self.root.glob(".snapshot.*"):  # from a pull killed while it replaced the snapshot
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = self.root / ".snapshot.tmp"
        tmp.mkdir(parents=True)
        rows.write_parquet(tmp / "part-00000.parquet", compression="zstd")
        replace_dir(tmp, self.snapshot)
        atomic_write_json(self.root / "state.json", state)
        shutil.rmtree(self.inflight, ignore_errors=True)


def newest_per_id(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per id: the greatest updated_at, and among equals the one read last; ordered by (updated_at, id)."""
    return (
        rows.with_row_index(_SEQ)
        .sort([KEY_UPDATED, _SEQ])
        .unique(subset=KEY_ID, keep="last", maintain_order=True)
        .sort([KEY_UPDATED, KEY_ID])
        .drop(_SEQ)
    )


Progress = Callable[[int], None]


def pull(
    reader: Reader,
    cfg: Database,
    run_dir: Path,
    now: dt.datetime | None = None,
    on_rows: Progress = lambda n: None,
) -> PullResult:
    """Run one pull (full, incremental, or the resumption of a killed one) and return the whole dataset."""
    store = PullState(run_dir)
    store.root.mkdir(parents=True, exist_ok=True)
    source_id = config_hash({"source": reader.source_id, "filters": [f.model_dump() for f in cfg.filters]})
    state = store.state()
    if state is not None and state.get("source_id") != source_id:
        state = None  # another table, database or filter: start over
    base = Key.from_json(state["watermark"]) if (state and cfg.incremental) else None
    progress = store.progress()
    resumed = bool(progress and progress.get("source_id") == source_id and progress.get("base") == _json(base))
    if not resumed:
        start = None
        if base is not None:
            start_at = dt.datetime.fromisoformat(base.updated_at) - dt.timedelta(minutes=cfg.overlap_minutes)
            start = Key(iso(start_at))
        progress = {
            "source_id": source_id,
            "base": _json(base),
            "start": _json(start),
            "after": _json(start),
            # A full pull pushes the filters down; an incremental window is read whole and filtered here.
            "filtered": base is None,
            "batches": 0,
            "rows": 0,
            "repair_passes": 0,
        }
        store.start_inflight(progress)
    assert progress is not None
    batches_reused = int(progress["batches"]) if resumed else 0
    filtered = bool(progress["filtered"])
    pages = 0
    while True:
        after = Key.from_json(progress["after"])
        page = reader.page(after, cfg.page_size, filtered)
        pages += 1
        if page.height == 0:
            start = Key.from_json(progress["start"])
            window = store.inflight_rows(progress)
            pulled_ids = 0 if window is None else window[KEY_ID].n_unique()
            until = progress["after"]["updated_at"] if progress["after"] else None
            expected = 0 if until is None else reader.count(start.updated_at if start else None, until, filtered)
            if pulled_ids < expected:
                if int(progress["repair_passes"]) >= 1:
                    raise SourceError(
                        f"the pull saw {pulled_ids} distinct ids but the source counts {expected} rows up to the "
                        "watermark: rows changed behind the pull's position twice in a row; run the pull again"
                    )
                # Rows committed late (updated_at behind the pull's position): read the window once more.
                progress["repair_passes"] = int(progress["repair_passes"]) + 1
                progress["after"] = progress["start"]
                atomic_write_json(store.inflight / "progress.json", progress)
                continue
            break
        store.commit_batch(progress, page)
        on_rows(page.height)

    # `window` (every batch of this pull) and `pulled_ids` come from the completeness check that ended the loop.
    previous = store.snapshot_rows() if base is not None else None
    removed = skipped = 0
    frames = [f for f in (previous, window) if f is not None]
    merged = newest_per_id(pl.concat(frames, how="diagonal_relaxed")) if frames else None
    if merged is not None and not filtered and cfg.filters and window is not None:
        in_window = pl.col(KEY_ID).is_in(window[KEY_ID].unique().implode())
        keep = ~in_window | filter_expr(cfg.filters, merged.schema)
        failing = merged.filter(~keep)
        skipped = failing.height
        if previous is not None:
            # Rows that were in the dataset and no longer match the filters (e.g. sent back for review).
            removed = failing.filter(pl.col(KEY_ID).is_in(previous[KEY_ID].implode())).height
        merged = merged.filter(keep)
    new_mark = Key.from_json(progress["after"]) if window is not None else base
    if merged is None:
        merged = pl.DataFrame()
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    store.complete(
        merged,
        {
            "source_id": source_id,
            "watermark": _json(new_mark),
            "rows": merged.height,
            "completed_at": stamp,
            "pulls": int(state.get("pulls", 0)) + 1 if state else 1,
        },
    )
    window_rows = 0 if window is None else window.height
    stats: dict[str, Any] = {
        "mode": "incremental" if base is not None else "full",
        "resumed_batches": batches_reused,
        "window_start": progress["start"]["updated_at"] if progress["start"] else None,
        "watermark": _json(new_mark),
        "pages_this_run": pages,
        "rows_read": window_rows,
        "distinct_ids_read": pulled_ids,
        "rows_read_again": window_rows - pulled_ids,
        "source_count": expected,
        "repair_passes": int(progress["repair_passes"]),
        "removed_by_filter": removed,
        "window_rows_not_matching_filters": skipped,
        "rows_in_dataset": merged.height,
        **reader.stats,
    }
    return PullResult(rows=merged, stats=stats)


def _json(key: Key | None) -> dict[str, Any] | None:
    return None if key is None else key.to_json()

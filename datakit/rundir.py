"""The run directory: where every file of a run lives, and how it is written (atomically) and read.

Layout (the contract between stages, and with users)::

    runs/<name>/
      run.json                      effective recipe, recipe hash, seed, datakit version, status, source watermark
      stages/<stage>/part-*.parquet, _stage.json, side files (deid.json, leakage.json, certificate.json, ...)
      cache/                        content-addressed embeddings and MinHash signatures
      pull_state/                   a database source's committed batches and watermark
      quarantine/<stage>.parquet    rejected rows + reason (may hold raw PHI: never copied anywhere else)
      shards/                       written by the shard stage (its _stage.json stays in stages/shard/)
      reports/                      deid.json, leakage.json/.html/.csv, certificate.json, removed.json/.html
      .datakit.lock                 held (flock) by the one process writing the run; who it is, for the message

Code outside this module asks a `RunDir` for a named file instead of spelling paths. Light to import: no
Polars until a frame is read or written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

PART_ROWS = 100_000
STAGE_FILE = "_stage.json"
LOCK_FILE = ".datakit.lock"

# Side files of stages (in stages/<stage>/) and reports (in reports/): each name is spelled here once.
DEID_AUDIT = "deid.json"  # deid; published to reports/
LABEL_CONFLICTS = "label_conflicts.parquet"  # codes
REMOVED = "removed.parquet"  # pull, deid, codes: what each left out (keyed ids, reasons)
LEAKAGE_SUMMARY = "leakage.json"  # leakage; reports/ holds it with the other stages' sections added
CERTIFICATE = "certificate.json"  # leakage; published to reports/
LINKS = "links.parquet"  # leakage
SIMILARITIES = "similarities.parquet"  # leakage
GROUPS = "groups.parquet"  # leakage
REPAIR_MOVES = "repair_moves.parquet"  # leakage
BLOCKED_RETRIEVALS = "blocked_retrievals.parquet"  # assemble
LEAKAGE_HTML = "leakage.html"  # reports/
LEAKAGE_IDS = "leakage_ids.csv"  # reports/
REMOVED_JSON = "removed.json"  # reports/
REMOVED_HTML = "removed.html"  # reports/


@contextmanager
def _written(tmp: Path) -> Iterator[Path]:
    """A temporary file that is gone again if writing it fails (a full disk leaves nothing behind)."""
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """The one JSON writer of the run directory: sorted keys, indented, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _written(path.with_name(f".{path.name}.tmp-{os.getpid()}")) as tmp:
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


def write_parts(frame: pl.DataFrame, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    n_parts = max(1, -(-frame.height // PART_ROWS))
    for p in range(n_parts):
        part = frame.slice(p * PART_ROWS, PART_ROWS)
        part.write_parquet(out_dir / f"part-{p:05d}.parquet", compression="zstd", statistics=True)


class PartWriter:
    """A stage's output written part by part as its batches arrive: the same files `write_parts` writes for their
    concatenation (parts of `PART_ROWS` rows, byte for byte), holding at most one part's rows in memory."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.rows = 0  # rows written or waiting
        self.parts = 0
        self._waiting: list[pl.DataFrame] = []
        self._waiting_rows = 0
        self._schema: pl.Schema | None = None

    def add(self, frame: pl.DataFrame) -> None:
        if self._schema is None:
            self._schema = frame.schema
        elif frame.schema != self._schema:
            raise ValueError(f"part schema changed: {dict(self._schema)} then {dict(frame.schema)}")
        self.rows += frame.height
        if frame.height:
            self._waiting.append(frame)
            self._waiting_rows += frame.height
        while self._waiting_rows >= PART_ROWS:
            self._flush(PART_ROWS)

    def _flush(self, n: int) -> None:
        import polars as pl

        waiting = pl.concat(self._waiting, rechunk=False) if self._waiting else None
        part = waiting.slice(0, n).rechunk() if waiting is not None else None  # rechunked: the bytes of one frame
        rest = waiting.slice(n) if waiting is not None else None
        self._waiting = [rest] if rest is not None and rest.height else []
        self._waiting_rows = 0 if rest is None else rest.height
        if part is None:
            assert self._schema is not None
            part = pl.DataFrame(schema=self._schema)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        part.write_parquet(self.out_dir / f"part-{self.parts:05d}.parquet", compression="zstd", statistics=True)
        self.parts += 1

    def close(self) -> int:
        """Write what is waiting (one empty part when nothing came, like `write_parts`); the rows written."""
        if self._waiting_rows or self.parts == 0:
            if self._schema is None:
                raise ValueError("no frame was added: the parts' columns are unknown")
            self._flush(self._waiting_rows)
        return self.rows


def write_parquet_chunks(path: Path, chunks: Iterator[pl.DataFrame], schema: pl.Schema) -> int:
    """One Parquet file written a chunk at a time (one row group per chunk; zstd, statistics, as `write_parts`):
    memory holds one chunk, not the table. Every chunk must have `schema`; no chunk writes an empty table. Gone
    again if writing fails. Returns the rows written."""
    import polars as pl
    import pyarrow.parquet as pq

    rows = 0
    with _written(path.with_name(f".{path.name}.tmp-{os.getpid()}")) as tmp:
        writer = None
        try:
            for chunk in chunks:
                if chunk.schema != schema:
                    raise ValueError(f"chunk schema {dict(chunk.schema)} is not {dict(schema)}")
                if chunk.height == 0:
                    continue
                table = chunk.to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", write_statistics=True)
                writer.write_table(table, row_group_size=chunk.height)
                rows += chunk.height
            if writer is None:
                pl.DataFrame(schema=schema).write_parquet(tmp, compression="zstd", statistics=True)
        finally:
            if writer is not None:
                writer.close()
        os.replace(tmp, path)
    return rows


def read_parts(folder: Path, columns: list[str] | None = None) -> pl.DataFrame:
    import polars as pl

    return pl.read_parquet(sorted(folder.glob("part-*.parquet")), columns=columns)


def iter_parts(folder: Path, batch_rows: int, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
    """The rows of a stage's parts in order, `batch_rows` at a time (the last batch of each part may be shorter):
    memory holds one part, not the stage's output."""
    import polars as pl

    for path in sorted(folder.glob("part-*.parquet")):
        part = pl.read_parquet(path, columns=columns)
        for start in range(0, max(part.height, 1), batch_rows):
            yield part.slice(start, batch_rows)


class RunDir:
    """One run directory. Every artifact has a named method; nothing else spells these paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- folders -------------------------------------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        return self.root / "stages" / stage

    def stage_record(self, stage: str) -> Path:
        return self.stage_dir(stage) / STAGE_FILE

    def has_stage(self, stage: str) -> bool:
        return self.stage_record(stage).is_file()

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def pull_state(self) -> Path:
        return self.root / "pull_state"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    def quarantine(self, stage: str) -> Path:
        return self.root / "quarantine" / f"{stage}.parquet"

    # --- side files of stages (written in the stage's folder, published to reports/) --------------------------
    def deid_audit(self) -> Path:
        return self.stage_dir("deid") / DEID_AUDIT

    def leakage_summary(self) -> Path:
        return self.stage_dir("leakage") / LEAKAGE_SUMMARY

    def blocked_retrievals(self) -> Path:
        return self.stage_dir("assemble") / BLOCKED_RETRIEVALS

    def label_conflicts(self) -> Path:
        return self.stage_dir("codes") / LABEL_CONFLICTS

    def report(self, name: str) -> Path:
        """reports/<name>: deid.json, leakage.json, leakage.html, leakage_ids.csv, certificate.json."""
        return self.reports / name

    # --- reading ---------------------------------------------------------------------------------------------
    def read_stage(self, stage: str, columns: list[str] | None = None) -> pl.DataFrame:
        from datakit.errors import StageError

        if not self.has_stage(stage):
            raise StageError(
                f"the output of stage '{stage}' is missing in {self.root}: run `datakit {stage}` first "
                "(or `datakit run`)"
            )
        return read_parts(self.stage_dir(stage), columns)

    def record(self, stage: str) -> dict[str, Any] | None:
        return read_record(self.stage_record(stage))

    def run_record(self) -> dict[str, Any] | None:
        return read_record(self.run_json)

    # --- writing ---------------------------------------------------------------------------------------------
    def publish(self, src: Path, name: str) -> Path:
        """Copy a stage's side file into reports/ under `name`."""
        dest = self.report(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _written(dest.with_name(f".{name}.tmp-{os.getpid()}")) as tmp:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        return dest

    def write_quarantine(self, stage: str, frame: pl.DataFrame) -> Path:
        path = self.quarantine(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _written(path.with_name(f".{path.name}.tmp-{os.getpid()}")) as tmp:
            frame.write_parquet(tmp, compression="zstd")
            os.replace(tmp, path)
        return path

    def write_run_json(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.run_json, data)

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the run directory for this process: one writer at a time. The lock is an flock on
        `.datakit.lock`, which the kernel releases when the process ends however it ends (kill -9 included), so
        a stale lock never needs clearing; the file says who holds it, for the second writer's message."""
        import fcntl
        import socket

        from datakit.errors import RunLockedError

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_record(path) or {}
            os.close(fd)
            raise RunLockedError(
                f"{self.root} is being written by another datakit process (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, `{holder.get('command', '?')}`, since {holder.get('since', '?')}): one "
                "writer per run directory; wait for it to end, or give this run another --out"
            ) from None
        try:
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def clean_temporaries(self) -> None:
        """Remove what a killed run left behind (temporary stage folders are never read)."""
        for pattern in (
            "stages/.*.tmp-*",
            "stages/.*.old-*",
            ".shards.tmp-*",
            ".shards.old-*",
            "quarantine/.*",
            "reports/.*.tmp-*",
        ):
            for path in self.root.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

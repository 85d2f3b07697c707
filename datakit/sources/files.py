"""The `files` source: Parquet, CSV and JSONL files mapped onto the case schema by the recipe."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import polars as pl

from datakit.errors import SourceError
from datakit.recipe import SCHEMA_COLUMNS, FilesSource, Mapped

_SUFFIX_FORMAT = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def _format_of(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    fmt = _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(f"cannot tell the format of '{path}': set source.format to parquet, csv or jsonl")
    return fmt


def _read_one(path: Path, fmt: str) -> pl.DataFrame:
    if path.stat().st_size == 0:
        raise SourceError(f"'{path}' is empty (0 bytes): export the cases again, or point source.path elsewhere")
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "csv":
            # Text in, types decided by the schema: no inference surprises (leading zeros in MRNs, etc.).
            return pl.read_csv(path, infer_schema=False)
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        # Exception text from readers can quote cell content: the cause is found again here, by position only.
        raise SourceError(f"cannot read '{path}' as {fmt}: {diagnose(path, fmt)}") from None


def _first_bad_utf8(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def diagnose(path: Path, fmt: str) -> str:
    """Why a file that exists cannot be read, and the fix: by byte offset or line number, never by content."""
    data = path.read_bytes()
    if not data.strip():
        return "the file holds only whitespace (no rows, no header): export the cases again"
    if fmt == "parquet":
        if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
            return (
                "not a Parquet file (no PAR1 marker at its start and end): the file is truncated or of another "
                "format; set source.format to csv or jsonl if it is one of those"
            )
        return "the Parquet footer or a column chunk is corrupt (truncated copy?): export the file again"
    bad = _first_bad_utf8(data)
    if bad is not None:
        line = data.count(b"\n", 0, bad) + 1
        return (
            f"bytes that are not UTF-8 at byte offset {bad} (line {line}): re-export as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 '{path.name}' > fixed.{fmt}`"
        )
    if fmt == "jsonl":
        for number, text in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError:
                return f"line {number} is not a complete JSON object (truncated or malformed): fix or remove it"
            if not isinstance(value, dict):
                return f"line {number} is JSON but not an object (one case per line, as {{...}}): fix it"
        return "the lines are JSON objects but their fields have clashing types: check the column types"
    return (
        "the CSV rows do not parse (unbalanced quotes or a different separator?): check the file, or set "
        "source.format if it is not CSV"
    )


def resolve_paths(pattern: str) -> list[Path]:
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    if not paths:
        raise SourceError(f"source.path '{pattern}' matches no file (paths are relative to the working directory)")
    return paths


def map_columns(frame: pl.DataFrame, cfg: Mapped, origin: str) -> pl.DataFrame:
    """Rename source columns to schema names, add recipe constants, drop everything else."""
    exprs: list[pl.Expr] = []
    for name in SCHEMA_COLUMNS:
        if name in cfg.columns:
            src = cfg.columns[name]
            if src not in frame.columns:
                available = ", ".join(frame.columns)
                raise SourceError(
                    f"source.columns.{name} names column '{src}', which {origin} does not have "
                    f"(columns there: {available})"
                )
            exprs.append(pl.col(src).alias(name))
        elif name in cfg.defaults:
            exprs.append(pl.lit(cfg.defaults[name]).alias(name))
        elif name in frame.columns:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def read_table(pattern: str, fmt: str = "auto") -> pl.DataFrame:
    """Every file `pattern` matches, as read (no mapping): the readers and error messages of the files source."""
    frames = [_read_one(path, _format_of(path, fmt)) for path in resolve_paths(pattern)]
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def read_files(cfg: FilesSource) -> pl.DataFrame:
    frames = []
    for path in resolve_paths(cfg.path):
        raw = _read_one(path, _format_of(path, cfg.format))
        frames.append(map_columns(raw, cfg, f"'{path}'"))
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]

"""The `files` source: Parquet, CSV and JSONL files mapped onto the case schema by the recipe."""

from __future__ import annotations

import glob
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
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "csv":
            # Text in, types decided by the schema: no inference surprises (leading zeros in MRNs, etc.).
            return pl.read_csv(path, infer_schema=False)
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.ComputeError, OSError) as exc:
        # Exception text from readers can quote cell content, so only its class is reported.
        raise SourceError(f"cannot read '{path}' as {fmt} ({type(exc).__name__}); check source.format") from None


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


def read_files(cfg: FilesSource) -> pl.DataFrame:
    frames = []
    for path in resolve_paths(cfg.path):
        raw = _read_one(path, _format_of(path, cfg.format))
        frames.append(map_columns(raw, cfg, f"'{path}'"))
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]

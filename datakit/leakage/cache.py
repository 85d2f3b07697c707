"""Per-text arrays (embedding vectors, MinHash signatures) cached by content hash under a run's `cache/`.

Layout: `<cache>/<kind>/<sha256(producer id)[:16]>/part-*.parquet`, columns `content_hash` and one fixed-width
array column (`vector`, `signature`), plus `producer.json` naming the producer. The producer id names everything
the values depend on (model and precision; shingle size, permutations and seed), so values of two producers never
mix. Parts are written to a temporary name and renamed, so a crash never leaves half a part behind.

The leakage stage fills the caches; the assemble stage's retrieval guard reads the same values back instead of
recomputing them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.errors import StageError


class ContentCache:
    """Arrays of `width` values of `dtype` per content hash, in column `column`, for one producer."""

    def __init__(
        self, root: Path, kind: str, producer_id: str, column: str, width: int, dtype: type[pl.DataType]
    ) -> None:
        slug = hashlib.sha256(producer_id.encode()).hexdigest()[:16]
        self.folder = root / kind / slug
        self.kind = kind
        self.producer_id = producer_id
        self.column = column
        self.width = width
        self.dtype = dtype

    def load(self) -> pl.DataFrame:
        parts = sorted(self.folder.glob("part-*.parquet"))
        if not parts:
            return pl.DataFrame(schema={"content_hash": pl.String, self.column: pl.Array(self.dtype, self.width)})
        return pl.read_parquet(parts).unique("content_hash", keep="first")

    def add(self, hashes: list[str], values: np.ndarray) -> None:
        if not hashes:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "producer.json").write_text(json.dumps({"producer_id": self.producer_id, "width": self.width}))
        n = len(list(self.folder.glob("part-*.parquet")))
        frame = pl.DataFrame(
            {"content_hash": hashes, self.column: pl.Series(values, dtype=pl.Array(self.dtype, self.width))}
        )
        tmp = self.folder / f".part-{n:05d}.tmp-{os.getpid()}"
        frame.write_parquet(tmp)
        tmp.rename(self.folder / f"part-{n:05d}.parquet")


def cached_values(
    contents: pl.DataFrame,
    compute: Callable[[pl.Series], np.ndarray],
    cache: ContentCache,
    batch: int = 8192,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Values for `contents` (columns content_hash, text), in row order: `compute` runs on the uncached texts
    only, `batch` at a time (each batch is written as it is done), the rest is read back."""
    cached = cache.load()
    missing = contents.join(cached.select("content_hash"), on="content_hash", how="anti").unique(
        "content_hash", maintain_order=True
    )
    for start in range(0, missing.height, batch):
        part = missing.slice(start, batch)
        cache.add(part["content_hash"].to_list(), compute(part["text"]))
    table = cache.load() if missing.height else cached
    ordered = contents.select("content_hash").join(table, on="content_hash", how="left", maintain_order="left")
    if ordered[cache.column].null_count():
        raise StageError(f"the {cache.kind} cache lacks values after computing them (cache folder damaged?)")
    values = np.ascontiguousarray(ordered[cache.column].to_numpy())
    return values, {"computed": missing.height, "from_cache": contents.height - missing.height}

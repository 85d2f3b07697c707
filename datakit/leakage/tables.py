"""The leakage stage's pair tables, written a bounded chunk at a time.

`links.parquet`: (case_a, case_b, kind, score) of every link, binding and reported, sorted by kind, case_a,
case_b. `similarities.parquet`: (hash_a, hash_b, jaccard, cosine) of content pairs down to the near and cosine
report floors, sorted by hash_a, hash_b. A corpus of look-alike reports holds millions of such pairs (113K sample
cases: 13.2M links, 9.6M scored pairs); joined to their case ids and 64-character hashes all at once they took
more memory than any layer. Here the pairs stay integers (nodes, contents) and are sorted as integers: nodes are
numbered in case-id order, and each content's rank in hash order stands for its hash; ids and hashes are gathered
for one chunk at a time, as it is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from datakit.rundir import write_parquet_chunks

CHUNK_ROWS = 1 << 18

LINKS_SCHEMA = pl.Schema({"case_a": pl.String, "case_b": pl.String, "kind": pl.String, "score": pl.Float32})
SIMILARITIES_SCHEMA = pl.Schema({"hash_a": pl.String, "hash_b": pl.String, "jaccard": pl.Float32, "cosine": pl.Float32})


def write_links(path: Path, links: pl.DataFrame, case_ids: pl.Series) -> int:
    """`links`: a, b (nodes), kind, score; `case_ids`: each node's case id (indexed by node, in case-id order)."""

    def chunks() -> Iterator[pl.DataFrame]:
        for kind in links["kind"].unique().sort():
            part = links.filter(pl.col("kind") == kind).sort("a", "b", "score")
            for chunk in part.iter_slices(CHUNK_ROWS):
                yield pl.DataFrame(
                    {
                        "case_a": case_ids.gather(chunk["a"]),
                        "case_b": case_ids.gather(chunk["b"]),
                        "kind": chunk["kind"],
                        "score": chunk["score"].cast(pl.Float32),
                    }
                )

    return write_parquet_chunks(path, chunks(), LINKS_SCHEMA)


def write_similarities(path: Path, similarities: pl.DataFrame, hashes: pl.Series) -> int:
    """`similarities`: a, b (contents), jaccard, cosine; `hashes`: each content's dedup hash (indexed by content)."""
    rank = (hashes.rank("ordinal") - 1).cast(pl.UInt32)  # distinct hashes: an order without ties
    ordered = similarities.select(
        rank.gather(similarities["a"]).alias("ra"),
        rank.gather(similarities["b"]).alias("rb"),
        "a",
        "b",
        pl.col("jaccard").cast(pl.Float32),
        pl.col("cosine").cast(pl.Float32),
    ).sort("ra", "rb")

    def chunks() -> Iterator[pl.DataFrame]:
        for chunk in ordered.iter_slices(CHUNK_ROWS):
            yield pl.DataFrame(
                {
                    "hash_a": hashes.gather(chunk["a"]),
                    "hash_b": hashes.gather(chunk["b"]),
                    "jaccard": chunk["jaccard"],
                    "cosine": chunk["cosine"],
                }
            )

    return write_parquet_chunks(path, chunks(), SIMILARITIES_SCHEMA)

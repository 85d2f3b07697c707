"""Streaming stages write what whole-frame stages wrote: the deid slices, the retrieval's query batches, the
prompt batches, the words layer's product chunks, the shard stage's spill and the part writer change memory, never
a byte of output."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datakit import rundir
from datakit.assemble import examples, retrieve
from datakit.deid import stage as deid_stage
from datakit.leakage import words
from datakit.rundir import PartWriter, write_parts
from datakit.shards import writer
from tests.conftest import SAMPLE_RUN, coding_recipe, run_recipe


def _digests(run: Path) -> dict[str, str]:
    files = [*sorted(run.glob("stages/*/*.parquet")), *sorted(run.glob("shards/**/*.parquet"))]
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_small_batches_write_the_same_bytes(sample_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deid_stage, "DEID_SLICE", 500)  # three slices, the first two through one worker pool
    monkeypatch.setattr(retrieve, "QUERY_TEXTS", 97)
    monkeypatch.setattr(examples, "EXAMPLE_BATCH", 130)
    monkeypatch.setattr(words, "PRODUCTS_PER_CHUNK", 2000)
    monkeypatch.setattr(writer, "PART_BATCH", 150)  # every shard put together from pieces of several reads
    out = tmp_path / "run"
    run_recipe(coding_recipe(*SAMPLE_RUN), out)
    expected, found = _digests(sample_run), _digests(out)
    assert len(expected) > 10 and set(found) == set(expected)
    assert [name for name in expected if found[name] != expected[name]] == []
    for name in ("manifest.json", "README.md"):  # the dataset card's token and tag figures come from few columns
        assert (out / "shards" / name).read_text() == (sample_run / "shards" / name).read_text()
    assert not list((out / "shards").glob(".*")), "the shard stage left its spill behind"


def test_part_writer_writes_the_parts_of_the_whole_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rundir, "PART_ROWS", 1000)
    frame = pl.DataFrame({"i": range(3500), "s": [f"text {i}" for i in range(3500)], "l": [[i] for i in range(3500)]})
    write_parts(frame, tmp_path / "whole")
    writer = PartWriter(tmp_path / "streamed")
    start = 0
    for size in (1, 999, 7, 1500, 0, 993):  # batches that straddle part boundaries, and an empty one
        writer.add(frame.slice(start, size))
        start += size
    assert writer.close() == 3500
    whole, streamed = sorted((tmp_path / "whole").iterdir()), sorted((tmp_path / "streamed").iterdir())
    assert [p.name for p in whole] == [p.name for p in streamed] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(whole, streamed, strict=True))


def test_part_writer_of_no_rows_writes_one_empty_part(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path)
    writer.add(pl.DataFrame(schema={"i": pl.Int64}))
    assert writer.close() == 0
    assert pl.read_parquet(tmp_path / "part-00000.parquet").schema == {"i": pl.Int64}


def test_words_chunks_are_bounded_by_their_products(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = pl.Series([" ".join(f"w{(i * j) % 97}" for j in range(1, 30)) for i in range(300)])
    index = words.build_index(texts, 0.5)
    whole = pl.concat(words.candidate_chunks(index, 0.1))
    col_df = np.diff(index.specific.T.tocsr().indptr)
    per_row = np.asarray((index.specific > 0).astype(np.int64) @ col_df).ravel()
    monkeypatch.setattr(words, "PRODUCTS_PER_CHUNK", 5000)
    chunks = list(words._row_chunks(index.specific, col_df, 2048))
    assert len(chunks) > 3 and chunks[0][0] == 0 and chunks[-1][1] == 300
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))  # contiguous, nothing skipped
    assert all(per_row[a:b].sum() <= 5000 or b - a == 1 for a, b in chunks)
    assert pl.concat(words.candidate_chunks(index, 0.1)).sort("a", "b").equals(whole.sort("a", "b"))


def test_pair_tables_written_in_chunks_hold_the_joined_sorted_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datakit.leakage import tables

    monkeypatch.setattr(tables, "CHUNK_ROWS", 7)
    rng = np.random.default_rng(3)
    case_ids = pl.Series([f"case-{i:04d}" for i in range(60)])  # node order is case-id order
    links = pl.DataFrame(
        {
            "a": rng.integers(0, 60, 200).astype(np.uint32),
            "b": rng.integers(0, 60, 200).astype(np.uint32),
            "kind": rng.choice(["near", "template_words", "patient"], 200),
            "score": rng.random(200).astype(np.float32),
        }
    )
    assert tables.write_links(tmp_path / "links.parquet", links, case_ids) == 200
    named = links.with_columns(case_ids.gather(links["a"]).alias("case_a"), case_ids.gather(links["b"]).alias("case_b"))
    expected = named.sort("kind", "case_a", "case_b", "score").select("case_a", "case_b", "kind", "score")
    written = pl.read_parquet(tmp_path / "links.parquet")
    assert written.equals(expected) and pq_row_groups(tmp_path / "links.parquet") > 20

    hashes = pl.Series([f"{h * 7919:064x}" for h in rng.permutation(50)])  # hash order is not content order
    sims = pl.DataFrame(
        {
            "a": rng.integers(0, 25, 90).astype(np.uint32),
            "b": rng.integers(25, 50, 90).astype(np.uint32),
            "jaccard": pl.Series(rng.random(90), dtype=pl.Float32),
            "cosine": pl.Series([None if i % 3 else float(i) / 90 for i in range(90)], dtype=pl.Float32),
        }
    ).unique(["a", "b"])
    assert tables.write_similarities(tmp_path / "sims.parquet", sims, hashes) == sims.height
    expected = sims.select(
        hashes.gather(sims["a"]).alias("hash_a"), hashes.gather(sims["b"]).alias("hash_b"), "jaccard", "cosine"
    ).sort("hash_a", "hash_b")
    assert pl.read_parquet(tmp_path / "sims.parquet").equals(expected)


def pq_row_groups(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).num_row_groups


def test_chunked_parquet_of_no_rows_and_of_a_wrong_chunk(tmp_path: Path) -> None:
    schema = pl.Schema({"i": pl.Int64, "s": pl.String})
    assert rundir.write_parquet_chunks(tmp_path / "empty.parquet", iter([pl.DataFrame(schema=schema)]), schema) == 0
    assert pl.read_parquet(tmp_path / "empty.parquet").schema == schema
    chunks = iter([pl.DataFrame({"i": [1], "s": ["a"]}), pl.DataFrame({"i": [1.5], "s": ["b"]})])
    with pytest.raises(ValueError, match="chunk schema"):
        rundir.write_parquet_chunks(tmp_path / "bad.parquet", chunks, schema)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.parquet"]  # no temp file, no half-written table


def test_links_by_kind_counts_links_and_the_records_they_touch() -> None:
    from datakit.report.build import links_by_kind

    rng = np.random.default_rng(5)
    n = 50_000
    links = pl.DataFrame(
        {
            "a": rng.integers(0, 4000, n).astype(np.uint32),
            "b": rng.integers(0, 9000, n).astype(np.uint32),
            "kind": rng.choice(["near", "patient", "template_words", "cosine"], n),
            "score": rng.random(n),
        }
    )
    expected = (
        links.group_by("kind")
        .agg(pl.len().alias("links"), pl.concat_list("a", "b").list.explode().n_unique().alias("records"))
        .sort("kind")
    )
    found = links_by_kind(links)
    assert list(found) == expected["kind"].to_list()
    assert [found[k] for k in found] == list(zip(expected["links"], expected["records"], strict=True))
    assert links_by_kind(links.head(0)) == {}

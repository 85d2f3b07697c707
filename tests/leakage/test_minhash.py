from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.leakage import minhash


def datasketch_signature(text: str, k: int, num_perm: int, seed: int) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=minhash.shingle_hash, scheme="affine32")
    for s in minhash.shingles(text.encode(), k):
        m.update(s)
    return np.asarray(m.hashvalues)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=120), min_size=1, max_size=12), st.integers(1, 8), st.integers(0, 1000))
def test_signatures_equal_datasketch_minhash(texts: list[str], k: int, seed: int) -> None:
    ours = minhash.signatures(pl.Series(texts), k=k, num_perm=32, seed=seed)
    for row, text in zip(ours, texts, strict=True):
        assert np.array_equal(row, datasketch_signature(text, k, 32, seed))


def test_threaded_batches_match_a_single_batch(monkeypatch: object) -> None:
    texts = pl.Series([f"report {i} " * (i % 17 + 1) for i in range(3000)])
    whole = minhash.signatures(texts, threads=1)
    import datakit.leakage.minhash as mod

    old = mod.BATCH_SHINGLES
    mod.BATCH_SHINGLES = 5000
    try:
        split = minhash.signatures(texts, threads=2)
    finally:
        mod.BATCH_SHINGLES = old
    assert np.array_equal(whole, split)


def test_lsh_candidates_agree_with_datasketch_lsh() -> None:
    rng = np.random.default_rng(3)
    base = ["the lungs are clear without focal consolidation effusion or pneumothorax " + str(i) for i in range(40)]
    edits = [t.replace("clear", "clear bilaterally") if i % 2 else t + " addendum" for i, t in enumerate(base)]
    noise = ["".join(rng.choice(list("abcdefghij "), 60)) for _ in range(40)]
    texts = base + edits + noise
    sig = minhash.signatures(pl.Series(texts), num_perm=128)
    table = minhash.band_table(sig, 32, 4, np.arange(len(texts), dtype=np.uint32))
    ours = {tuple(r) for r in minhash.candidate_pairs(table, max_bucket=10_000).iter_rows()}
    lsh = MinHashLSH(num_perm=128, params=(32, 4))
    hashes = []
    for i, row in enumerate(sig):
        m = MinHash(num_perm=128, hashvalues=row, scheme="affine32")
        hashes.append(m)
        lsh.insert(i, m)
    theirs = {(min(i, j), max(i, j)) for i, m in enumerate(hashes) for j in lsh.query(m) if i != j}
    assert ours == theirs
    assert all((i, i + 40) in ours for i in range(40))
    # the stage walks the bands a few at a time: the union of the chunks is the same candidate set
    chunks = minhash.candidate_pair_chunks(table, 32, max_bucket=10_000, bands_per_chunk=5)
    assert {tuple(r) for c in chunks for r in c.iter_rows()} == ours


def test_large_buckets_become_stars_and_jaccard_estimates() -> None:
    texts = pl.Series(["normal chest radiograph no acute findings"] * 300 + ["something else entirely"])
    sig = minhash.signatures(texts)
    table = minhash.band_table(sig, 32, 4, np.arange(len(texts), dtype=np.uint32))
    pairs = minhash.candidate_pairs(table, max_bucket=50)
    assert pairs.height == 299 and set(pairs["a"]) == {0}
    jac = minhash.jaccard(sig, pairs["a"].to_numpy(), pairs["b"].to_numpy())
    assert (jac == 1.0).all()


def test_cross_pair_pieces_are_the_cross_pairs_in_bounded_pieces() -> None:
    # a template shared by 200 train and 30 eval texts, their edited copies and unrelated texts
    template = "no acute cardiopulmonary abnormality heart size normal lungs clear "
    texts = [template] * 230 + [template + f"addendum {i}" for i in range(60)] + [f"other {i} " * 9 for i in range(60)]
    sig = minhash.signatures(pl.Series(texts))
    ids = np.arange(len(texts), dtype=np.uint32)
    eval_ids = ids[(ids % 5) == 0]
    train_ids = ids[(ids % 5) != 0]
    left = minhash.band_table(sig[eval_ids], 32, 4, eval_ids)
    right = minhash.band_table(sig[train_ids], 32, 4, train_ids)
    whole = minhash.cross_pairs(left, right)
    assert whole.height > 200 * 30  # the template bucket alone
    sizes = right.group_by("band", "key").agg(pl.len().alias("n"))
    for max_rows in (1, 5_000, 1 << 30):
        pieces = list(minhash.cross_pair_pieces(left, right, max_rows=max_rows))
        assert pl.concat(pieces).equals(whole)
        for piece in pieces:  # a piece joins about max_rows rows, or holds one eval text
            joined = left.join(piece.select(pl.col("a").unique().alias("id")), on="id").join(sizes, on=["band", "key"])
            assert joined["n"].sum() < max_rows + 32 * 200 or piece["a"].n_unique() == 1
        if max_rows == 1:
            assert len(pieces) == whole["a"].n_unique()
        if max_rows == 1 << 30:
            assert len(pieces) == 1
    # nothing shared: one empty piece with the frame's columns
    (empty,) = minhash.cross_pair_pieces(left.head(0), right)
    assert empty.height == 0 and empty.columns == ["a", "b"]


def test_distinct_pairs_is_unique_then_sort() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    a = rng.integers(0, 300, n).astype(np.uint32)
    b = (a + rng.integers(1, 300, n)).astype(np.uint32)
    a[:5], b[:5] = 2**32 - 2, 2**32 - 1  # the largest ids keep their order in the 64-bit key
    pairs = pl.DataFrame({"a": a, "b": b, "jaccard": rng.random(n).astype(np.float32)})
    ours = minhash.distinct_pairs(pairs)
    assert ours.equals(pairs.unique(["a", "b"], keep="first", maintain_order=True).sort("a", "b", maintain_order=True))
    assert ours.height < n and minhash.distinct_pairs(pairs.head(0)).height == 0
    with pytest.raises(ValueError, match="2\\^32"):
        minhash.distinct_pairs(pl.DataFrame({"a": [-1], "b": [3]}))


def test_faiss_exact_and_ivf_paths_find_planted_neighbours() -> None:
    from datakit.leakage import embed

    rng = np.random.default_rng(0)
    base = rng.standard_normal((3000, 32)).astype(np.float32)
    near = base[:50] + 0.01 * rng.standard_normal((50, 32)).astype(np.float32)
    vectors = embed.centred(np.vstack([base, near]))
    for exact_max in (1_000_000, 100):  # flat, then IVF
        pairs = embed.neighbour_pairs(vectors, k=5, floor=0.95, exact_max=exact_max)
        found = {(int(a), int(b)) for a, b in pairs.select("a", "b").iter_rows()}
        assert sum((i, 3000 + i) in found for i in range(50)) >= 48
    scores, ids = embed.nearest_across(vectors[3000:], vectors[:3000])
    assert (ids == np.arange(50)).all() and (scores > 0.95).all()


def test_cached_signatures_equal_fresh_ones_and_are_read_back(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    texts = [f"report {i} " * (i % 7 + 1) for i in range(50)]
    texts = pl.Series([*texts, texts[1]])  # the last text repeats one (same content hash)
    contents = pl.DataFrame({"content_hash": [*(f"h{i}" for i in range(50)), "h1"], "text": texts})
    first, stats = minhash.cached_signatures(contents.head(30), root, k=5, num_perm=64)
    assert stats == {"computed": 30, "from_cache": 0}
    both, stats = minhash.cached_signatures(contents, root, k=5, num_perm=64)
    assert stats == {"computed": 20, "from_cache": 31}  # the repeated hash is computed once
    assert both.dtype == np.uint32 and np.array_equal(both, minhash.signatures(texts, k=5, num_perm=64))
    assert np.array_equal(both[:30], first)
    other, stats = minhash.cached_signatures(contents, root, k=5, num_perm=32)  # another producer: no mixing
    assert stats["computed"] == 50 and other.shape == (51, 32)

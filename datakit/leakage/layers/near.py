"""The `near` layer: MinHash signatures of character shingles, LSH banding for candidates, and one near-duplicate
test (`minhash.is_near`: estimated Jaccard >= threshold, or containment for addenda) for detection, the
certificate and the guard.

A link that holds by containment alone (Jaccard below the threshold: one text inside a longer one) is an addendum
or a copy under a new header when the contained text carries something of its own. When either text is a
look-alike (a template, or a text whose words neighbours were written for many patients), it may be a template
body under another header: such a link groups two records only when neither has a metadata link (another exam of
its patient, a shared accession), so it never joins one patient's history to another's; otherwise it is reported
as `template_near` and neither groups records nor fails the certificate. Measured on the demo run: binding them
everywhere chained 1,909 of 4,806 sample cases into one group through other patients' near-identical catalogue
sentences and each patient's other exams. The guard blocks them either way."""

from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl

from datakit.leakage import minhash
from datakit.leakage.cache import ONE_PASS
from datakit.leakage.corpus import Corpus
from datakit.leakage.groups import content_edges
from datakit.leakage.layers.base import Cross, Found, Layer, LayerClock, Pairs, Sides, exempt, lone_pair
from datakit.recipe import Engine, MinHashConfig

BANDS_PER_CHUNK = 4
JACCARD_FLOOR = 0.5  # similarities at or above this are kept for the report and for threshold what-ifs


class NearLayer(Layer):
    name = "near"
    defines_templates = True

    def __init__(self, cfg: MinHashConfig, engine: Engine | None = None) -> None:
        self.cfg = cfg
        self.engine = engine if engine is not None and engine.kind == "ray" else None
        self.signatures = np.zeros((0, cfg.num_perm), dtype=np.uint32)
        self.sizes = np.zeros(0, dtype=np.int64)
        self.cache_stats: dict[str, int] = {}
        self.lsh_stats: dict[str, int] = {}  # the Ray engine's LSH shuffle (rows and bytes moved)

    def prepare(self, corpus: Corpus, clock: LayerClock) -> None:
        clock.phase("minhash", 1, "signature sets")
        compute, batch = None, 8192
        if self.engine is not None:  # Ray Data tasks compute the same signatures; one pass over what is missing
            from datakit.leakage.on_ray import signatures_on_ray

            compute = partial(signatures_on_ray, engine=self.engine, k=self.cfg.k, num_perm=self.cfg.num_perm)
            batch = ONE_PASS
        self.signatures, self.cache_stats = minhash.cached_signatures(
            corpus.keyed_texts(),
            corpus.cache_root,
            k=self.cfg.k,
            num_perm=self.cfg.num_perm,
            compute=compute,
            batch=batch,
        )
        self.sizes = minhash.shingle_counts(corpus.texts, self.cfg.k)

    def linked(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(near, estimated Jaccard) of content pairs (a[i], b[i])."""
        jac = minhash.jaccard(self.signatures, a, b)
        near = minhash.is_near(jac, self.sizes[a], self.sizes[b], self.cfg.threshold, self.cfg.containment)
        return near, jac

    def verified_pairs(self, clock: LayerClock) -> pl.DataFrame:
        """Candidate pairs from LSH banding, verified: (a, b, jaccard, linked) at or above the report floor or
        linked, each pair once (it may share buckets in several band chunks or partitions), sorted by a, b."""
        mh = self.cfg
        if self.engine is not None:  # a (band, bucket) shuffle over Ray tasks; the same pairs
            from datakit.leakage.on_ray import lsh_pairs_on_ray

            clock.phase("LSH shuffle", None, "partitions")
            shuffled, shuffle = lsh_pairs_on_ray(self.signatures, self.sizes, mh, JACCARD_FLOOR, self.engine)
            self.lsh_stats = shuffle.stats()
            return minhash.distinct_pairs(shuffled)
        table = minhash.band_table(self.signatures, mh.bands, mh.rows, np.arange(len(self.signatures), dtype=np.uint32))
        pairs: pl.DataFrame | None = None
        clock.phase("LSH bands", mh.bands, "bands")
        for cand in minhash.candidate_pair_chunks(table, mh.bands, mh.max_bucket, BANDS_PER_CHUNK):
            clock.advance(BANDS_PER_CHUNK)
            found = minhash.verify_pairs(cand, self.signatures, self.sizes, mh.threshold, mh.containment, JACCARD_FLOOR)
            # merged as they come: memory holds the distinct pairs so far and one chunk, not every repeat
            pairs = minhash.distinct_pairs(found if pairs is None else pl.concat([pairs, found]))
        assert pairs is not None  # bands >= 1
        return pairs

    def within(self, corpus: Corpus, clock: LayerClock) -> Found:
        pairs = self.verified_pairs(clock)
        linked = pairs.filter(pl.col("linked"))
        reps = corpus.reps()
        return Found(
            edges=content_edges(linked, reps, reps, self.name, "jaccard"),
            linked_contents=linked.select("a", "b"),
            scores=pairs.drop("linked"),
        )

    def across(self, corpus: Corpus, sides: Sides) -> Cross:
        """Every LSH bucket an eval text shares with a train text, verified: each distinct (eval, train) pair
        once, a bounded piece of eval texts at a time (`minhash.cross_pair_pieces`)."""
        mh = self.cfg
        train_ids, eval_ids = sides.train_ids, sides.eval_ids
        band = minhash.band_table(self.signatures[train_ids], mh.bands, mh.rows, train_ids)
        band_eval = minhash.band_table(self.signatures[eval_ids], mh.bands, mh.rows, eval_ids)
        found, checked = [], 0
        for piece in minhash.cross_pair_pieces(band_eval, band):
            cand = piece.filter(pl.col("a") != pl.col("b"))
            ca, cb = cand["a"].to_numpy(), cand["b"].to_numpy()
            near, jac = self.linked(ca, cb)
            body = (jac < mh.threshold) & exempt(sides.look_alike, ca, cb)
            exempted = (exempt(sides.template, ca, cb) | body) & ~lone_pair(sides, ca, cb)
            found.append(
                cand.with_columns(pl.Series("score", jac), pl.Series("exempt", exempted)).filter(pl.Series(near))
            )
            checked += cand.height
        linked = pl.concat(found).unique(["a", "b"], keep="first")
        hits = linked.filter(~pl.col("exempt"))
        entry = {
            "ran": True,
            "train_eval_links": hits.height,
            "template_links_exempt": linked.height - hits.height,
            "threshold": mh.threshold,
            "containment": mh.containment,
            "candidate_pairs_checked": checked,
        }
        return Cross(edges=content_edges(hits, sides.eval, sides.train, self.name, "score"), entry=entry)

    def binds_only_alone(self, edges: pl.DataFrame, look_alike: pl.Series) -> pl.Series:
        """Containment-only links touching a look-alike text: a template body under another header."""
        if edges.height == 0:
            return pl.repeat(False, 0, eager=True)
        contained = edges["score"] < self.cfg.threshold
        return contained & (look_alike.gather(edges["a"]) | look_alike.gather(edges["b"]))

    def blocks(self, corpus: Corpus, pairs: Pairs) -> np.ndarray:
        """The near-duplicate test on the pair itself (also pairs LSH banding happened not to bucket together)."""
        return self.linked(pairs.qc, pairs.cc)[0]

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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from datakit.executor import Executor
from datakit.executor.local import LocalExecutor
from datakit.leakage import minhash, workers
from datakit.leakage.corpus import Corpus
from datakit.leakage.groups import content_edges
from datakit.leakage.layers.base import Cross, Found, Layer, LayerClock, Pairs, Sides, exempt, lone_pair
from datakit.recipe import MinHashConfig

BANDS_PER_CHUNK = 4
JACCARD_FLOOR = 0.5  # similarities at or above this are kept for the report and for threshold what-ifs
# rows of the long band table per reduce partition (and at least one partition per task the executor runs at
# once): a partition's candidate pairs are built a few bands at a time, so memory follows one band chunk's pairs
PARTITION_ROWS = 1 << 22


@dataclass
class LshShuffle:
    """What the LSH shuffle moved: rows and Arrow bytes of the band table handed from map to reduce tasks."""

    map_tasks: int = 0
    partitions: int = 0
    shuffled_rows: int = 0
    shuffled_bytes: int = 0
    candidate_pairs: int = 0  # per band chunk (a pair sharing buckets in several chunks counts in each)
    pairs_returned: int = 0  # verified in the reduce tasks and sent back, before merging across partitions

    def stats(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def band_parts(
    sig: np.ndarray, start: int, bands: int, rows: int, partitions: int
) -> tuple[pl.DataFrame, ...] | pl.DataFrame:
    """Map side: the band table of rows `start..` split into one frame per reduce partition by bucket key (every
    member of a bucket lands in one partition); the frame itself when there is one partition."""
    table = minhash.band_table(sig, bands, rows, np.arange(start, start + len(sig), dtype=np.uint32))
    if partitions == 1:
        return table
    part = (table["key"] % np.uint64(partitions)).cast(pl.UInt32)
    parts = table.with_columns(part.alias("part")).partition_by("part", as_dict=True, include_key=False)
    return tuple(parts.get((p,), table.clear()) for p in range(partitions))


def bucket_pairs(
    sig: np.ndarray, sizes: np.ndarray, cfg: MinHashConfig, floor: float, *parts: pl.DataFrame
) -> tuple[pl.DataFrame, int, int, int]:
    """Reduce side: one partition's candidate pairs (`minhash.candidate_pairs`: all pairs of a small bucket, a star
    for a large one), built and verified a few bands at a time and merged as they come (memory holds the distinct
    pairs so far and one chunk, not every repeat); (pairs kept, candidates, rows in, bytes in)."""
    table = pl.concat(parts)
    rows_in, bytes_in = table.height, int(table.estimated_size())
    kept: pl.DataFrame | None = None
    candidates = 0
    for cand in minhash.candidate_pair_chunks(table, cfg.bands, cfg.max_bucket, BANDS_PER_CHUNK):
        candidates += cand.height
        found = minhash.verify_pairs(cand, sig, sizes, cfg.threshold, cfg.containment, floor)
        kept = minhash.distinct_pairs(found if kept is None else pl.concat([kept, found]))
    assert kept is not None  # bands >= 1
    return kept, candidates, rows_in, bytes_in


def lsh_pairs(
    executor: Executor,
    sig: np.ndarray,
    sizes: np.ndarray,
    cfg: MinHashConfig,
    floor: float,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[pl.DataFrame, LshShuffle]:
    """Verified candidate pairs (a, b, jaccard, linked), those at or above `floor` or linked, each pair once,
    sorted by a, b: a map/shuffle/reduce over the executor's tasks (map tasks cut the signatures by rows, reduce
    partitions by bucket key). A bucket's pairs depend on its members only, so any cut gives the same pairs."""
    n = len(sig)
    tasks = executor.parallelism
    partitions = max(tasks, -(-n * cfg.bands // PARTITION_ROWS))
    step = max(1, -(-n // max(1, min(tasks, n))))
    items = [(sig[s : s + step], s, cfg.bands, cfg.rows) for s in range(0, n, step)] or [(sig, 0, cfg.bands, cfg.rows)]
    shuffle = LshShuffle(map_tasks=len(items), partitions=partitions)
    pairs: pl.DataFrame | None = None
    for kept, candidates, rows_in, bytes_in in executor.map_reduce(
        band_parts, items, bucket_pairs, (sig, sizes, cfg, floor), partitions
    ):
        shuffle.candidate_pairs += candidates
        shuffle.shuffled_rows += rows_in
        shuffle.shuffled_bytes += bytes_in
        shuffle.pairs_returned += kept.height
        pairs = kept if pairs is None else minhash.distinct_pairs(pl.concat([pairs, kept]))
        progress(1)
    assert pairs is not None  # partitions >= 1
    return pairs, shuffle


class NearLayer(Layer):
    name = "near"
    defines_templates = True

    def __init__(self, cfg: MinHashConfig, executor: Executor | None = None) -> None:
        self.cfg = cfg
        self.executor = executor or LocalExecutor()
        self.signatures = np.zeros((0, cfg.num_perm), dtype=np.uint32)
        self.sizes = np.zeros(0, dtype=np.int64)
        self.cache_stats: dict[str, int] = {}
        self.lsh_stats: dict[str, int] = {}  # the LSH shuffle's tasks, rows and bytes moved

    def prepare(self, corpus: Corpus, clock: LayerClock) -> None:
        clock.phase("minhash", 1, "signature sets")
        executor = self.executor
        self.signatures, self.cache_stats = minhash.cached_signatures(
            corpus.keyed_texts(),
            corpus.cache_root,
            k=self.cfg.k,
            num_perm=self.cfg.num_perm,
            compute=lambda texts: workers.signatures(executor, texts, k=self.cfg.k, num_perm=self.cfg.num_perm),
            batch=executor.pass_rows,
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
        clock.phase("LSH", None, "partitions")
        pairs, shuffle = lsh_pairs(self.executor, self.signatures, self.sizes, self.cfg, JACCARD_FLOOR, clock.advance)
        self.lsh_stats = shuffle.stats()
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

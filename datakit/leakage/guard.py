"""The retrieval guard: may record Q see record C as one of its few-shot examples?

The guard speaks the leakage stage's layer names. A candidate is blocked when, against the query record, any of
these holds (each is counted on its own; one candidate may trip several):

- `self`: it is the query's own case (the assemble stage reports this as `pair` for a specificity-pair example,
  whose own case is its pair partner);
- `exact` (same normalised text) or `near` (the pair passes the MinHash near-duplicate test: estimated Jaccard
  >= threshold, or containment for addenda; applied to the pair itself, so it also blocks pairs that LSH banding
  happened not to bucket together);
- `cosine` of the corpus-centred embeddings >= `leakage.cosine_threshold` (the leakage layer's vectors, read from
  the content-addressed cache, centred on the same corpus);
- `words`: a candidate whose canonical words cover `leakage.shot_verbatim` of the record's once surrogates are
  masked (a copy of a look-alike report, which groups nothing, is still no example for its twin); a words link
  that groups records is blocked as `leakage_group`, since it put both records in one group;
- `outlier`: set by retrieval per query (`Guard.outliers`): a candidate far closer to the query than the query's
  other candidates is the copy the retriever found because it is a copy;
- `exam_fingerprint`, `accession` (keyed metadata fingerprints) or `patient`;
- `leakage_group`: the two records are in the same leakage group.

Template copies (the same normal-study text written for many patients) are not grouped by the leakage stage,
but they are blocked here: a prompt whose example is a verbatim copy of its report teaches copying.

The guard is built from the leakage stage's output rows with detection's own functions (`distinct_contents`,
`fingerprints`, the words index, and the signature and embedding caches the stage filled), so both see the same
corpus. A layer that cannot be computed stops the build: nothing is passed through unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.errors import DatakitError, StageError
from datakit.keys import SecretKey
from datakit.leakage import embed, minhash, words
from datakit.leakage.detect import distinct_contents, make_encoder
from datakit.leakage.fingerprint import METADATA_LAYERS, fingerprints
from datakit.recipe import Leakage

LAYERS = (
    "self",
    "exact",
    "near",
    "cosine",
    "words",
    "outlier",
    "exam_fingerprint",
    "accession",
    "patient",
    "leakage_group",
)
KEY_LAYERS = {**METADATA_LAYERS, "leakage_group": "leakage_group"}
CHUNK = 1 << 16


@dataclass
class Guard:
    """Per-case keys and per-text signatures/vectors, aligned by `node` (cases in case-id order)."""

    cases: pl.DataFrame  # node, case_id, content, dedup_hash, split, leakage_group, keys…, rows
    texts: pl.Series  # normalised text per content
    content: np.ndarray  # content of each node
    keys: dict[str, np.ndarray]  # layer -> int id per node (-1: missing, never equal)
    signatures: np.ndarray
    sizes: np.ndarray
    vectors: np.ndarray  # corpus-centred, unit length, per content
    word_index: words.WordIndex
    cfg: Leakage
    embedding: dict[str, Any]

    def check(
        self, query: np.ndarray, candidate: np.ndarray, words_scores: tuple[np.ndarray, np.ndarray] | None = None
    ) -> pl.DataFrame:
        """One boolean column per layer and `blocked`, for node pairs (query[i], candidate[i]); `words_scores`:
        the pairs' (containment, ratio) when the caller already has them (retrieval computes them once for this
        and for `outliers`)."""
        query = np.asarray(query, dtype=np.int64)
        candidate = np.asarray(candidate, dtype=np.int64)
        qc, cc = self.content[query], self.content[candidate]
        cont, ratio = words_scores if words_scores is not None else self.word_index.containment(qc, cc)
        flags: dict[str, np.ndarray] = {
            "self": query == candidate,
            "exact": qc == cc,
            "near": self._near(qc, cc),
            "cosine": self.cosine(qc, cc) >= self.cfg.cosine_threshold,
            # the record's own words again once surrogates are masked (a look-alike's copy included); a words
            # link that groups records needs no test here: it put both records in one leakage group
            "words": self._verbatim(cont, ratio),
            # decided per query by `outliers` (it needs the query's other candidates); never set pairwise
            "outlier": np.zeros(len(qc), dtype=bool),
        }
        for layer in KEY_LAYERS:
            ids = self.keys[layer]
            flags[layer] = (ids[query] == ids[candidate]) & (ids[query] >= 0)
        frame = pl.DataFrame({layer: flags[layer] for layer in LAYERS})
        return frame.with_columns(pl.any_horizontal(LAYERS).alias("blocked"))

    def outliers(self, cont: np.ndarray, group: np.ndarray) -> np.ndarray:
        """The `outlier` rule: a candidate the retriever ranked near the query *because* it is a copy. Among one
        query's fetched candidates (`group` numbers the query; `cont`: their words containment with it), a
        candidate is an outlier when its containment is at least `words.threshold` and exceeds the median of that
        query's candidates by `leakage.shot_outlier_gap`: a look-alike among look-alikes (a normal-study template)
        is not, a lone near-copy is."""
        gap = self.cfg.shot_outlier_gap
        if gap <= 0 or len(cont) == 0:
            return np.zeros(len(cont), dtype=bool)
        frame = pl.DataFrame({"g": group, "c": cont})
        median = frame.select(pl.col("c").median().over("g")).to_series().to_numpy()
        return (cont >= self.cfg.words.threshold) & (cont - median >= gap)

    def _verbatim(self, cont: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        if self.cfg.shot_verbatim > 1:
            return np.zeros(len(cont), dtype=bool)
        return (cont >= self.cfg.shot_verbatim) & (ratio >= self.cfg.words.min_ratio)

    def cosine(self, qc: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Cosine of content pairs (rounded as the leakage layer rounds its scores)."""
        qc, cc = np.asarray(qc, np.int64), np.asarray(cc, np.int64)
        out = np.empty(len(qc), dtype=np.float32)
        for s in range(0, len(qc), CHUNK):
            a, b = self.vectors[qc[s : s + CHUNK]], self.vectors[cc[s : s + CHUNK]]
            out[s : s + CHUNK] = np.einsum("ij,ij->i", a, b)
        return np.round(out, 5)

    def _near(self, qc: np.ndarray, cc: np.ndarray) -> np.ndarray:
        mh = self.cfg.minhash
        jac = minhash.jaccard(self.signatures, qc, cc)
        return minhash.is_near(jac, self.sizes[qc], self.sizes[cc], mh.threshold, mh.containment)


def dense_ids(column: pl.Series) -> np.ndarray:
    """Equal strings -> equal non-negative ints; nulls -> -1."""
    return column.rank("dense").fill_null(0).cast(pl.Int64).to_numpy() - 1


def build_guard(
    rows: pl.DataFrame,
    cfg: Leakage,
    key: SecretKey,
    cache_root: Path,
    encoder_factory: Callable[[Leakage], embed.Encoder] | None = None,
) -> Guard:
    """The guard over the leakage stage's output rows (which carry `leakage_group` and `split`)."""
    missing = [c for c in ("leakage_group", "split") if c not in rows.columns]
    if missing:
        raise StageError(f"the retrieval guard needs the leakage stage's output (missing columns: {missing})")
    try:
        cases, contents = distinct_contents(rows, cfg.fields, cfg.words.lexicon)
        cases = cases.with_columns(fingerprints(cases, key))
        mh = cfg.minhash
        keyed = contents.select(pl.col("dedup_hash").alias("content_hash"), "text")
        signatures, _ = minhash.cached_signatures(keyed, cache_root, k=mh.k, num_perm=mh.num_perm)
        sizes = minhash.shingle_counts(contents["text"], mh.k)
        vectors, stats = embed.embed_contents(keyed, (encoder_factory or make_encoder)(cfg), cache_root)
        word_index = words.build_index(contents["canonical"], cfg.words.specific_df)
    except DatakitError:
        raise
    except Exception as err:  # the guard cannot run: stop, naming the error type only (never record text)
        raise StageError(f"retrieval guard could not be built: {type(err).__name__}") from err
    keys = {layer: dense_ids(cases[column]) for layer, column in KEY_LAYERS.items()}
    return Guard(
        cases=cases.select(
            "node",
            "case_id",
            pl.col("content").cast(pl.UInt32),
            "dedup_hash",
            "split",
            "leakage_group",
            "exam_fp",
            "accession_fp",
            "patient_key",
            "rows",
            *[c for c in ("exam_description",) if c in cases.columns],
        ),
        texts=contents["text"],
        content=cases["content"].cast(pl.Int64).to_numpy(),
        keys=keys,
        signatures=signatures,
        sizes=sizes,
        vectors=embed.centred(vectors),
        word_index=word_index,
        cfg=cfg,
        embedding=stats,
    )

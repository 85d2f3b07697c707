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

Every layer answers for itself (`Layer.blocks`, the same objects and the same tests detection and the
certificate use); `self`, `outlier` and `leakage_group` are the guard's own rules. The guard's corpus is built
with `corpus.build_corpus` from the leakage stage's output rows and its layers are prepared from the signature
and embedding caches the stage filled, so both see the same corpus. A layer that cannot be computed stops the
build: nothing is passed through unchecked.
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
from datakit.leakage import embed, words
from datakit.leakage.corpus import Corpus, build_corpus
from datakit.leakage.layers import Layer, LayerClock, Pairs, dense_ids, layer_names, layer_of, make_layers
from datakit.leakage.layers.cosine import CosineLayer
from datakit.leakage.layers.words import WordsLayer
from datakit.recipe import Leakage

__all__ = ["LAYERS", "Guard", "build_guard", "dense_ids"]

# the guard's columns: its own rules around the layers' (text layers, the outlier rule, metadata layers)
LAYERS = ("self", *layer_names("text"), "outlier", *layer_names("metadata"), "leakage_group")


@dataclass
class Guard:
    """The corpus (nodes in case-id order, with split and leakage group) and its prepared layers."""

    corpus: Corpus
    layers: list[Layer]
    cases: pl.DataFrame  # node, case_id, content, dedup_hash, split, leakage_group, keys…, rows
    group_ids: np.ndarray  # leakage group of each node as an int
    cfg: Leakage

    @property
    def texts(self) -> pl.Series:
        return self.corpus.texts

    @property
    def content(self) -> np.ndarray:
        return self.corpus.content

    @property
    def _cosine(self) -> CosineLayer:
        return layer_of(self.layers, CosineLayer)

    @property
    def vectors(self) -> np.ndarray:
        return self._cosine.vectors

    @property
    def embedding(self) -> dict[str, Any]:
        return self._cosine.stats

    @property
    def word_index(self) -> words.WordIndex:
        return layer_of(self.layers, WordsLayer).index

    def cosine(self, qc: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Cosine of content pairs (the cosine layer's own measure)."""
        return self._cosine.similarity(qc, cc)

    def check(
        self, query: np.ndarray, candidate: np.ndarray, words_scores: tuple[np.ndarray, np.ndarray] | None = None
    ) -> pl.DataFrame:
        """One boolean column per rule (`LAYERS`) and `blocked`, for node pairs (query[i], candidate[i]);
        `words_scores`: the pairs' (containment, ratio) when the caller already has them (retrieval computes them
        once for this and for `outliers`)."""
        query = np.asarray(query, dtype=np.int64)
        candidate = np.asarray(candidate, dtype=np.int64)
        pairs = Pairs(query, candidate, self.content[query], self.content[candidate], words_scores)
        flags: dict[str, np.ndarray] = {layer.name: layer.blocks(self.corpus, pairs) for layer in self.layers}
        flags["self"] = query == candidate
        # decided per query by `outliers` (it needs the query's other candidates); never set pairwise
        flags["outlier"] = np.zeros(len(query), dtype=bool)
        groups = self.group_ids
        flags["leakage_group"] = (groups[query] == groups[candidate]) & (groups[query] >= 0)
        frame = pl.DataFrame({rule: flags[rule] for rule in LAYERS})
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
    layers = make_layers(cfg, encoder_factory)
    try:
        corpus = build_corpus(rows, cfg, key, cache_root)
        for layer in layers:
            layer.prepare(corpus, LayerClock())
        guard = _guard(corpus, layers, cfg)
        guard.word_index  # noqa: B018 - built now, so that a failure stops the build here
    except DatakitError:
        raise
    except Exception as err:  # the guard cannot run: stop, naming the error type only (never record text)
        raise StageError(f"retrieval guard could not be built: {type(err).__name__}") from err
    return guard


def _guard(corpus: Corpus, layers: list[Layer], cfg: Leakage) -> Guard:
    cases = corpus.cases
    return Guard(
        corpus=corpus,
        layers=layers,
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
        group_ids=dense_ids(cases["leakage_group"]),
        cfg=cfg,
    )

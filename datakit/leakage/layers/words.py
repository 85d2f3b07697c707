"""The `words` layer: IDF-weighted containment of canonical words (`datakit.leakage.words`), for edited and
paraphrased copies. Within a corpus its links bind only when mutual and outside look-alike crowds (its own
template rule, `words.detect_links`); across the split a link fails the certificate when it is one of those
binding links; for the guard, a candidate covering `leakage.shot_verbatim` of the record's words (or the record
of its) is a verbatim copy, look-alike or not."""

from __future__ import annotations

import numpy as np
import polars as pl

from datakit.leakage import words
from datakit.leakage.corpus import Corpus
from datakit.leakage.groups import content_edges
from datakit.leakage.layers.base import Cross, Found, Layer, LayerClock, Pairs, Sides, no_edges
from datakit.recipe import Leakage

LINKED_ONLY = 2.0  # a containment floor no pair reaches: detection keeps the linked pairs only (no report or
# what-if reads the words layer's other scores, and a look-alike corpus has millions of them)


class WordsLayer(Layer):
    name = "words"
    exempt_templates = False  # its links carry their own binding rule

    def __init__(self, cfg: Leakage) -> None:
        self.cfg = cfg
        self._index: words.WordIndex | None = None
        self._corpus: Corpus | None = None
        # content pairs (a < b) whose link groups records: the certificate's cross links must be among them;
        # None (no detection ran on this corpus, e.g. decontamination): every linked pair counts
        self.binding: pl.DataFrame | None = None

    @property
    def enabled(self) -> bool:
        return self.cfg.words.enabled

    def prepare(self, corpus: Corpus, clock: LayerClock) -> None:
        self._corpus = corpus  # the index is built on first use: a disabled layer never builds it for detection

    @property
    def index(self) -> words.WordIndex:
        if self._index is None:
            if self._corpus is None:
                raise RuntimeError("the words layer was not prepared")
            self._index = words.build_index(self._corpus.contents["canonical"], self.cfg.words.specific_df)
        return self._index

    def within(self, corpus: Corpus, clock: LayerClock) -> Found:
        if not self.enabled:
            return Found(edges=no_edges())
        clock.phase("words", 1, "indexes")
        scored, binding, busy = words.detect_links(
            self.index, self.cfg.words, corpus.text_patients(), self.cfg.template_min_patients, LINKED_ONLY
        )
        clock.advance(1)
        binds = self.binding = binding.select("a", "b")
        linked = scored.filter(pl.col("linked"))
        loose = linked.join(binds, on=["a", "b"], how="anti")
        reps = corpus.reps()
        return Found(
            edges=content_edges(linked.join(binds, on=["a", "b"]), reps, reps, self.name, "containment"),
            loose=content_edges(loose, reps, reps, self.name, "containment"),
            # no `scores`: the report and the what-if thresholds use Jaccard and cosine only
            look_alike=busy,
        )

    def across(self, corpus: Corpus, sides: Sides) -> Cross:
        """The sparse product of eval texts against train texts (complete over specific words); a cross link
        fails the certificate when it is one of detection's binding links (the same rule, the same corpus)."""
        w = self.cfg.words
        if not self.enabled:
            entry = {"ran": False, "disabled": True, "train_eval_links": 0, "note": "leakage.words.enabled = false"}
            return Cross(edges=no_edges(), entry=entry)
        found = words.linked_pairs(self.index, w, 2.0, rows=sides.eval_ids, cols=sides.train_ids).filter(
            pl.col("linked")
        )
        if self.binding is None:
            keyed, binds = found, pl.repeat(True, found.height, eager=True)
        else:
            keyed = found.with_columns(
                pl.min_horizontal("a", "b").alias("lo"), pl.max_horizontal("a", "b").alias("hi")
            ).join(
                self.binding.select(pl.col("a").alias("lo"), pl.col("b").alias("hi"), pl.lit(True).alias("binds")),
                on=["lo", "hi"],
                how="left",
            )
            binds = keyed["binds"].fill_null(False)
        hits = keyed.filter(binds).select("a", "b", pl.col("containment").alias("score"))
        entry = {
            "ran": True,
            "train_eval_links": hits.height,
            "template_links_exempt": int((~binds).sum()),
            "threshold": w.threshold,
            "min_ratio": w.min_ratio,
            "candidate_floor": w.candidate_floor,
            "search": "complete (sparse product over specific words)",
        }
        return Cross(edges=content_edges(hits, sides.eval, sides.train, self.name, "score"), entry=entry)

    def scores(self, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
        """(containment, ratio) of the pairs' canonical words."""
        if pairs.words_scores is None:
            pairs.words_scores = self.index.containment(pairs.qc, pairs.cc)
        return pairs.words_scores

    def blocks(self, corpus: Corpus, pairs: Pairs) -> np.ndarray:
        """A verbatim copy once surrogates are masked (a look-alike's copy included); a words link that groups
        records needs no test here: it put both records in one leakage group."""
        cont, ratio = self.scores(pairs)
        if self.cfg.shot_verbatim > 1:
            return np.zeros(len(cont), dtype=bool)
        return (cont >= self.cfg.shot_verbatim) & (ratio >= self.cfg.words.min_ratio)

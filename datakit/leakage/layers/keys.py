"""Key layers: records that share a key are linked. `exact` (the sha256 of the normalised text) is one; so are
the keyed metadata fingerprints (`exam_fingerprint`, `accession`) and the patient (see `fingerprint.py`)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from datakit.leakage.corpus import Corpus
from datakit.leakage.groups import key_links
from datakit.leakage.layers.base import Cross, Found, Layer, LayerClock, Pairs, Sides


def dense_ids(column: pl.Series) -> np.ndarray:
    """Equal strings -> equal non-negative ints; nulls -> -1."""
    return column.rank("dense").fill_null(0).cast(pl.Int64).to_numpy() - 1


class KeyLayer(Layer):
    """Links between records whose `column` is equal and not null."""

    def __init__(self, name: str, column: str, family: Literal["text", "metadata"], exempt_templates: bool) -> None:
        self.name = name
        self.column = column
        self.family = family
        self.exempt_templates = exempt_templates
        self._ids: np.ndarray | None = None

    def within(self, corpus: Corpus, clock: LayerClock) -> Found:
        return Found(edges=key_links(corpus.cases, self.column, self.name))

    def across(self, corpus: Corpus, sides: Sides) -> Cross:
        """Every eval node whose key some train node has (joined: complete)."""
        keyed = sides.nodes.drop_nulls(self.column)
        train = keyed.filter(pl.col("side") == "train").group_by(self.column).agg(pl.col("node").min().alias("b"))
        evals = keyed.filter(pl.col("side") == "eval").select(self.column, pl.col("node").alias("a"), "template")
        cross = evals.join(train, on=self.column)
        exempted = pl.repeat(False, cross.height, eager=True)
        if self.exempt_templates:  # a template link between two lone records binds: no exemption for it
            lone = sides.nodes.select("node", "alone")
            both = cross.join(lone.rename({"node": "a"}), on="a", how="left", maintain_order="left").join(
                lone.rename({"node": "b", "alone": "alone_b"}), on="b", how="left", maintain_order="left"
            )
            exempted = cross["template"] & ~(both["alone"].fill_null(False) & both["alone_b"].fill_null(False))
        entry = {"ran": True, "train_eval_links": int((~exempted).sum()), "threshold": "equal key"}
        if self.exempt_templates:
            entry["template_links_exempt"] = int(exempted.sum())
        edges = cross.filter(~exempted).select(
            "a", "b", pl.lit(self.name).alias("kind"), pl.lit(1.0, pl.Float32).alias("score")
        )
        return Cross(edges=edges, entry=entry)

    def blocks(self, corpus: Corpus, pairs: Pairs) -> np.ndarray:
        if self._ids is None:
            self._ids = dense_ids(corpus.cases[self.column])
        ids = self._ids
        return (ids[pairs.query] == ids[pairs.candidate]) & (ids[pairs.query] >= 0)

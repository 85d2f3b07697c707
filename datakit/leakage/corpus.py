"""The corpus every leakage layer reads: the distinct cases of a build and their distinct texts, numbered once.

Detection, the certificate and the retrieval guard all build their corpus with `build_corpus`, so a node (case)
and a content (distinct normalised text) mean the same thing to every layer and every caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from datakit.content import FIELD_SEPARATOR, normalise_text, sha256_hex
from datakit.errors import StageError
from datakit.keys import SecretKey
from datakit.leakage.canonical import canonical_text, masked
from datakit.leakage.fingerprint import fingerprints
from datakit.recipe import Leakage


def content_text(fields: tuple[str, ...], columns: list[str]) -> pl.Expr:
    present = [normalise_text(pl.col(f)) for f in fields if f in columns]
    if not present:
        raise StageError(f"none of leakage.fields ({', '.join(fields)}) is a column of the input")
    return pl.concat_str(present, separator=FIELD_SEPARATOR)


def distinct_contents(
    rows: pl.DataFrame, fields: tuple[str, ...], lexicon: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cases, contents). `cases`: one row per case id in case-id order, with `rows` (examples of the case),
    `dedup_hash` (sha256 of the normalised text), `node` (row number) and `content`; `contents`: one row per
    distinct normalised text (content, dedup_hash, text, canonical, rep = its first node); `canonical` is the
    words layer's text (`canonical.canonical_text`: synonyms written one way, boilerplate and filler removed)."""
    counts = rows.group_by("case_id").agg(pl.len().alias("rows"))
    # nodes are numbered in case-id order: components and group names depend on it, so it must not vary
    cases = rows.unique("case_id", keep="first", maintain_order=True).join(counts, on="case_id").sort("case_id")
    text = cases.select(content_text(fields, cases.columns).alias("text"))["text"]
    cases = cases.with_columns(
        sha256_hex(text).alias("dedup_hash"), pl.arange(0, cases.height, dtype=pl.UInt32).alias("node")
    )
    contents = (
        cases.select("dedup_hash", text.alias("text"), "node")
        .group_by("dedup_hash", maintain_order=True)
        .agg(pl.col("text").first(), pl.col("node").min().alias("rep"))
        .with_row_index("content")
    )
    # the words layer's text: de-identification surrogates as [phi] (`phi_spans`), then canonical
    unmasked = cases.with_columns(masked(cases, f) for f in fields if f in cases.columns)
    canonical = unmasked.select(
        canonical_text(content_text(fields, cases.columns), lexicon, normalised=True).alias("canonical")
    )
    firsts = pl.DataFrame({"node": cases["node"], "canonical": canonical["canonical"]})
    contents = contents.join(firsts.rename({"node": "rep"}), on="rep", how="left", maintain_order="left")
    cases = cases.join(contents.select("dedup_hash", "content"), on="dedup_hash", maintain_order="left")
    return cases, contents


@dataclass
class Corpus:
    """Cases (nodes, in case-id order, with their keyed fingerprints) and distinct texts (contents)."""

    cases: pl.DataFrame  # node, case_id, content, dedup_hash, rows, exam_fp, accession_fp, patient_key, input columns
    contents: pl.DataFrame  # content, dedup_hash, text, canonical, rep
    cfg: Leakage
    cache_root: Path
    _content: np.ndarray | None = field(default=None, repr=False)

    @property
    def texts(self) -> pl.Series:
        """The normalised text of each content."""
        return self.contents["text"]

    @property
    def content(self) -> np.ndarray:
        """The content of each node."""
        if self._content is None:
            self._content = self.cases["content"].cast(pl.Int64).to_numpy()
        return self._content

    def reps(self) -> pl.DataFrame:
        """(content, rep): each text's first node, the node a content link is drawn from."""
        return self.contents.select(pl.col("content").cast(pl.UInt32), pl.col("rep"))

    def keyed_texts(self) -> pl.DataFrame:
        """(content_hash, text) per content: what the content-addressed caches are keyed by."""
        return self.contents.select(pl.col("dedup_hash").alias("content_hash"), "text")

    def text_patients(self) -> pl.DataFrame:
        """(content, patient) of every case; a case without a patient counts as its own."""
        return self.cases.select(
            pl.col("content").cast(pl.UInt32), pl.coalesce("patient_id", "case_id").alias("patient")
        )


def build_corpus(rows: pl.DataFrame, cfg: Leakage, key: SecretKey, cache_root: Path) -> Corpus:
    """The corpus of `rows` (pair examples share their case's node), fingerprints keyed with `key`."""
    cases, contents = distinct_contents(rows, cfg.fields, cfg.words.lexicon)
    cases = cases.with_columns(fingerprints(cases, key))
    return Corpus(cases=cases, contents=contents, cfg=cfg, cache_root=cache_root)

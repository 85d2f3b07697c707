"""Detection: every text and metadata layer over the distinct cases of the leakage stage's input.

Layers (each either runs or stops the build; none is skipped silently):

1. `exact`: sha256 of the normalised coding-relevant text (`leakage.fields`); `near`: MinHash + LSH over the
   same text, verified by estimated Jaccard >= `leakage.minhash.threshold` (or containment, for addenda).
2. `cosine`: embeddings (cached by content hash under `cache/`) + FAISS, cosine >= `leakage.cosine_threshold`.
3. `words`: IDF-weighted word containment of canonical texts (`canonical.py`: de-identification surrogates masked
   through `phi_spans`, synonyms written one way, dictation boilerplate and filler removed); see `words.py` for
   which of its links bind.
4. `exam_fingerprint` / `accession`: keyed hashes of (patient, exam date, CPT set) and of the accession;
   `patient`: the patient itself.

Signatures and embeddings are computed once per distinct normalised text. Content links touching a template
(`template_contents`) and words links that do not bind are kept apart as `template_*` links: reported, never
grouping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.content import FIELD_SEPARATOR, normalise_text, sha256_hex
from datakit.errors import DatakitError, StageError
from datakit.keys import SecretKey
from datakit.leakage import embed, minhash, words
from datakit.leakage.canonical import canonical_text, masked
from datakit.leakage.fingerprint import fingerprints
from datakit.leakage.groups import connected_components, content_edges, key_links
from datakit.recipe import Leakage
from datakit.runner import PeakRss

BANDS_PER_CHUNK = 4
JACCARD_FLOOR = 0.5  # similarities at or above these are kept for the report and for threshold what-ifs
COSINE_FLOOR = 0.80
CONTAINMENT_FLOOR = 0.5


@dataclass
class LayerClock:
    """Wall time and peak RSS per layer, for `_stage.json` and the bench."""

    layers: dict[str, dict[str, float]] = field(default_factory=dict)
    # progress in each layer's own units (the stage context's phase/advance; no-ops in tests and the bench)
    phase: Callable[[str, int | None, str], None] = lambda step, total, unit: None
    advance: Callable[[int], None] = lambda n: None

    @contextmanager
    def layer(self, name: str) -> Any:
        t0 = time.perf_counter()
        with PeakRss() as rss:
            try:
                yield
            except DatakitError:
                raise
            except Exception as err:  # no layer passes data through: stop, naming the layer (never the text)
                raise StageError(f"leakage layer '{name}' could not run: {type(err).__name__}") from err
        self.layers[name] = {"seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(rss.peak / 2**20, 1)}


@dataclass
class Detection:
    """Everything the layers found, at node (case) and content (distinct normalised text) level."""

    # node, case_id, content, dedup_hash, exam_fp, accession_fp, patient_key, exam_date, rows, template,
    # look_alike (template, or a text whose words neighbours span template_min_patients patients)
    nodes: pl.DataFrame
    texts: pl.Series  # normalised text per content
    signatures: np.ndarray
    shingle_counts: np.ndarray
    vectors: np.ndarray
    word_index: words.WordIndex | None
    word_binding: pl.DataFrame  # content pairs (a < b) whose words link groups records (mutual)
    edges: pl.DataFrame  # a, b (nodes), kind, score: the links that group records
    template_edges: pl.DataFrame  # content links inside template clusters (kind template_*): reported only
    similarities: pl.DataFrame  # content pairs: a, b, jaccard, cosine, containment (floors applied)
    embedding: dict[str, Any]
    signatures_cached: dict[str, int]  # MinHash signatures computed / read from the cache


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
    words layer's text (`canonical.canonical_text`: synonyms written one way, boilerplate and filler removed).
    The leakage stage and the retrieval guard both number cases and texts with this function, so their layers
    see the same corpus."""
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


def text_patients(cases: pl.DataFrame) -> pl.DataFrame:
    """(content, patient) of every case; a case without a patient counts as its own."""
    return cases.select(pl.col("content").cast(pl.UInt32), pl.coalesce("patient_id", "case_id").alias("patient"))


def make_encoder(cfg: Leakage) -> embed.Encoder:
    return embed.make_encoder(
        cfg.embedding.backend, cfg.embedding.model, cfg.embedding.device, cfg.embedding.batch_size
    )


def detect(
    rows: pl.DataFrame,
    cfg: Leakage,
    key: SecretKey,
    cache_root: Path,
    clock: LayerClock,
    encoder_factory: Callable[[Leakage], embed.Encoder] | None = None,
) -> Detection:
    """Run the three layers over the distinct cases of `rows` (pair examples share their case's node)."""
    clock.phase("exact", rows.height, "records")
    with clock.layer("exact"):
        cases, contents = distinct_contents(rows, cfg.fields, cfg.words.lexicon)
        exact = key_links(cases, "dedup_hash", "exact")
    clock.advance(rows.height)
    rep = contents.select(pl.col("content").cast(pl.UInt32), pl.col("rep"))
    keyed = contents.select(pl.col("dedup_hash").alias("content_hash"), "text")
    with clock.layer("near"):
        mh = cfg.minhash
        clock.phase("minhash", 1, "signature sets")
        sig, sig_stats = minhash.cached_signatures(keyed, cache_root, k=mh.k, num_perm=mh.num_perm)
        table = minhash.band_table(sig, mh.bands, mh.rows, np.arange(len(sig), dtype=np.uint32))
        sizes = minhash.shingle_counts(contents["text"], mh.k)
        chunks = []
        clock.phase("LSH bands", mh.bands, "bands")
        for cand in minhash.candidate_pair_chunks(table, mh.bands, mh.max_bucket, BANDS_PER_CHUNK):
            clock.advance(BANDS_PER_CHUNK)
            ca, cb = cand["a"].to_numpy(), cand["b"].to_numpy()
            jac = minhash.jaccard(sig, ca, cb)
            linked = minhash.is_near(jac, sizes[ca], sizes[cb], mh.threshold, mh.containment)
            scored = cand.with_columns(pl.Series("jaccard", jac), pl.Series("linked", linked))
            chunks.append(scored.filter((pl.col("jaccard") >= JACCARD_FLOOR) | pl.col("linked")))
        del table
        jpairs = pl.concat(chunks).unique(["a", "b"], keep="first").sort("a", "b")
        near = content_edges(jpairs.filter(pl.col("linked")), rep, rep, "near", "jaccard")
    with clock.layer("cosine"):
        encoder = (encoder_factory or make_encoder)(cfg)
        clock.phase("embedding", len(contents), "texts")
        vectors, emb_stats = embed.embed_contents(keyed, encoder, cache_root, clock.advance)
        vectors = embed.centred(vectors)
        cpairs = embed.neighbour_pairs(
            vectors, cfg.cosine_neighbours, min(COSINE_FLOOR, cfg.cosine_threshold), cfg.exact_index_max
        ).rename({"score": "cosine"})
        cosine = content_edges(cpairs.filter(pl.col("cosine") >= cfg.cosine_threshold), rep, rep, "cosine", "cosine")
    word_index, wpairs = None, pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "containment": pl.Float32})
    word_links = pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32})
    loose = pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "containment": pl.Float32, "linked": pl.Boolean})
    busy = np.zeros(len(contents), dtype=bool)
    if cfg.words.enabled:
        clock.phase("words", 1, "indexes")
        with clock.layer("words"):
            w = cfg.words
            word_index = words.build_index(contents["canonical"], w.specific_df)
            scored, binding, busy = words.detect_links(
                word_index, w, text_patients(cases), cfg.template_min_patients, CONTAINMENT_FLOOR
            )
            word_links = binding.select("a", "b")
            loose = scored.filter(pl.col("linked")).join(word_links, on=["a", "b"], how="anti")
            wpairs = scored.drop("linked")
        clock.advance(1)
    wordlinks = content_edges(wpairs.join(word_links, on=["a", "b"]), rep, rep, "words", "containment")
    clock.phase("fingerprints", rows.height, "records")
    with clock.layer("fingerprint"):
        fps = fingerprints(cases, key)
        cases = cases.with_columns(fps)
        meta = pl.concat(
            [
                key_links(cases, "exam_fp", "exam_fingerprint"),
                key_links(cases, "accession_fp", "accession"),
                key_links(cases, "patient_key", "patient"),
            ]
        )
    clock.advance(rows.height)
    similarities = (
        jpairs.drop("linked")
        .join(cpairs, on=["a", "b"], how="full", coalesce=True)
        .join(wpairs, on=["a", "b"], how="full", coalesce=True)
        .sort("a", "b")
    )
    template = template_contents(
        len(contents),
        pl.concat(
            [
                jpairs.filter(pl.col("linked")).select("a", "b"),
                cpairs.filter(pl.col("cosine") >= cfg.cosine_threshold).select("a", "b"),
            ]
        ),
        cases.select("content", "patient_key"),
        cfg.template_min_patients,
    )
    cases = cases.join(template, on="content", maintain_order="left").with_columns(
        (pl.col("template") | pl.Series(busy[cases["content"].to_numpy()])).alias("look_alike")
    )
    nodes = cases.select(
        "node",
        "case_id",
        "content",
        "dedup_hash",
        "exam_fp",
        "accession_fp",
        "patient_key",
        "exam_date",
        "rows",
        "template",
        "look_alike",
    )
    content_links = pl.concat([exact, near, cosine])
    flags = nodes.select("node", "template")
    is_template = (
        content_links.join(flags.rename({"node": "a"}), on="a", how="left", maintain_order="left")
        .join(flags.rename({"node": "b", "template": "template_b"}), on="b", how="left", maintain_order="left")
        .select(pl.col("template") | pl.col("template_b"))
        .to_series()
    )
    return Detection(
        nodes=nodes,
        texts=contents["text"],
        signatures=sig,
        shingle_counts=sizes,
        vectors=vectors,
        word_index=word_index,
        # words links bind when mutual (their own bound on look-alike chains), whatever the template rule says
        edges=pl.concat([content_links.filter(~is_template), wordlinks, meta]),
        template_edges=pl.concat(
            [
                content_links.filter(is_template).with_columns(("template_" + pl.col("kind")).alias("kind")),
                content_edges(loose, rep, rep, "template_words", "containment"),
            ]
        ),
        word_binding=word_links,
        similarities=similarities,
        embedding=emb_stats,
        signatures_cached=sig_stats,
    )


def template_contents(
    n_contents: int, content_pairs: pl.DataFrame, patients: pl.DataFrame, min_patients: int
) -> pl.DataFrame:
    """(content, template): a content is a template when the cluster its exact/near/cosine links put it in spans
    at least `min_patients` distinct patients (a normal-study boilerplate, not one patient's report copied).
    Links inside such a cluster carry no patient-specific text; grouping them would merge most of a large
    corpus into one group (measured: 92% of 113K sample cases) and leave eval with only the rare reports."""
    comps = connected_components(n_contents, content_pairs).rename({"node": "content"})
    if min_patients == 0:
        return comps.select("content", pl.lit(False).alias("template"))
    per = (
        patients.with_columns(pl.col("content").cast(pl.UInt32))
        .join(comps, on="content")
        .group_by("component")
        .agg((pl.col("patient_key").n_unique() >= min_patients).alias("template"))
    )
    return comps.join(per, on="component", how="left").select(
        pl.col("content").cast(pl.UInt32), pl.col("template").fill_null(False)
    )

"""Detection: every leakage layer (`layers.make_layers`) over the distinct cases of the leakage stage's input.

Layers (each either runs or stops the build; none is skipped silently):

1. `exact`: sha256 of the normalised coding-relevant text (`leakage.fields`); `near`: MinHash + LSH over the
   same text, verified by estimated Jaccard >= `leakage.minhash.threshold` (or containment, for addenda).
2. `cosine`: embeddings (cached by content hash under `cache/`) + FAISS, cosine >= `leakage.cosine_threshold`.
3. `words`: IDF-weighted word containment of canonical texts (`canonical.py`: de-identification surrogates masked
   through `phi_spans`, synonyms written one way, dictation boilerplate and filler removed); see `words.py` for
   which of its links bind.
4. `exam_fingerprint` / `accession`: keyed hashes of (patient, exam date, CPT set) and of the accession;
   `patient`: the patient itself.

Signatures and embeddings are computed once per distinct normalised text. Links touching a template
(`template_contents`, drawn by the layers that define templates) and words links that do not bind are kept
apart as `template_*` links: reported, never grouping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.executor import Executor
from datakit.keys import SecretKey
from datakit.leakage import embed
from datakit.leakage.corpus import Corpus, build_corpus
from datakit.leakage.groups import connected_components
from datakit.leakage.layers import Layer, LayerClock, layer_of, make_layers
from datakit.leakage.layers.base import no_edges
from datakit.leakage.layers.cosine import CosineLayer
from datakit.leakage.layers.near import NearLayer
from datakit.recipe import Leakage

__all__ = ["Detection", "LayerClock", "detect", "template_contents"]


@dataclass
class Detection:
    """Everything the layers found, at node (case) and content (distinct normalised text) level."""

    corpus: Corpus
    layers: list[Layer]  # prepared on `corpus`; the certificate asks the same objects across the split
    # node, case_id, content, dedup_hash, exam_fp, accession_fp, patient_key, exam_date, rows, template,
    # look_alike (template, or a text whose words neighbours span template_min_patients patients)
    nodes: pl.DataFrame
    edges: pl.DataFrame  # a, b (nodes), kind, score: the links that group records
    template_edges: pl.DataFrame  # links inside template clusters and words links that do not bind: reported only
    similarities: pl.DataFrame  # content pairs: a, b, jaccard, cosine (down to the near and cosine floors)

    @property
    def texts(self) -> pl.Series:
        return self.corpus.texts

    @property
    def near(self) -> NearLayer:
        return layer_of(self.layers, NearLayer)

    @property
    def signatures(self) -> np.ndarray:
        return self.near.signatures

    @property
    def shingle_counts(self) -> np.ndarray:
        return self.near.sizes

    @property
    def signatures_cached(self) -> dict[str, int]:
        return self.near.cache_stats

    @property
    def lsh_shuffle(self) -> dict[str, int]:
        return self.near.lsh_stats

    @property
    def embedding(self) -> dict[str, Any]:
        return layer_of(self.layers, CosineLayer).stats


def detect(
    rows: pl.DataFrame,
    cfg: Leakage,
    key: SecretKey,
    cache_root: Path,
    clock: LayerClock,
    encoder_factory: Callable[[Leakage], embed.Encoder] | None = None,
    executor: Executor | None = None,
) -> Detection:
    """Run every layer over the distinct cases of `rows` (pair examples share their case's node); the layers'
    per-text work and LSH run where `executor` runs its batches (this process when none is given; same results)."""
    clock.phase("corpus", rows.height, "records")
    with clock.layer("corpus"):
        corpus = build_corpus(rows, cfg, key, cache_root)
    clock.advance(rows.height)
    layers = make_layers(cfg, encoder_factory, executor)
    found = {}
    for layer in layers:
        with clock.layer(layer.name):
            layer.prepare(corpus, clock)
            found[layer.name] = layer.within(corpus, clock)
    cases = corpus.cases
    n_contents = len(corpus.contents)
    clusters = [found[x.name].linked_contents for x in layers if x.defines_templates]
    template = template_contents(
        n_contents,
        pl.concat([c for c in clusters if c is not None]),
        # a case without a patient (public text, a text task's records) counts as its own patient, as in the
        # words layer's look-alike count: twenty identical texts of unknown patients are a template too
        cases.select(
            "content", pl.coalesce("patient_key", pl.concat_str(pl.lit("case:"), "case_id")).alias("patient_key")
        ),
        cfg.template_min_patients,
    )
    crowded = np.zeros(n_contents, dtype=bool)
    for f in found.values():
        if f.look_alike is not None:
            crowded |= f.look_alike
    cases = cases.join(template, on="content", maintain_order="left").with_columns(
        (pl.col("template") | pl.Series(crowded[cases["content"].to_numpy()])).alias("look_alike")
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
    by_node = nodes.sort("node")
    on_template, on_look_alike = by_node["template"], by_node["look_alike"]
    binding, reported, deferred, history = [], [no_edges()], [], [no_edges()]
    for layer in layers:
        f = found[layer.name]
        only_alone = layer.exempted(f.edges, on_template, on_look_alike) | layer.binds_only_alone(
            f.edges, on_look_alike
        )
        binding.append(f.edges.filter(~only_alone))
        if layer.family == "metadata":
            history.append(binding[-1])
        deferred.append(f.edges.filter(only_alone))
        if f.loose is not None:
            reported.append(f.loose.with_columns(("template_" + pl.col("kind")).alias("kind")))
    # template links (and a layer's other weak links) bind only between lone records: no other exam of their
    # patient, no shared accession. They may join lone reports to each other (a template cluster is then one
    # group, as large as the cluster), never one patient's history to another's (which chained 92% of 113K
    # sample cases into one group when every template link bound)
    touched = pl.concat(history).select(pl.concat_list("a", "b").alias("n")).explode("n")["n"].unique()
    alone = nodes.select("node", (~pl.col("node").is_in(touched.implode())).alias("alone")).sort("node")["alone"]
    waiting = pl.concat(deferred)
    bound, unbound = lone_links(waiting, nodes.select("node", "content"), alone)
    binding.append(bound)
    reported.append(unbound.with_columns(("template_" + pl.col("kind")).alias("kind")))
    nodes = nodes.with_columns(alone)
    scores = [f.scores for f in found.values() if f.scores is not None]
    similarities = scores[0]
    for more in scores[1:]:
        similarities = similarities.join(more, on=["a", "b"], how="full", coalesce=True)
    return Detection(
        corpus=corpus,
        layers=layers,
        nodes=nodes,
        edges=pl.concat(binding),
        template_edges=pl.concat(reported),
        similarities=similarities.sort("a", "b"),
    )


def lone_links(waiting: pl.DataFrame, contents: pl.DataFrame, alone: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(bound, unbound): the binding projection of weak links (`waiting`: node pairs) onto lone records, and the
    links that touch a record with a history (reported only, as drawn). A link says two *texts* are alike, so it
    joins the lone records of one text to the lone records of the other (through each text's smallest lone node),
    and the lone records of a linked text to each other; records with a history are left out (`contents`: node,
    content; `alone` indexed by node)."""
    if waiting.height == 0:
        return waiting, waiting
    content = contents.sort("node")["content"]
    lone = contents.filter(alone.gather(contents["node"]))
    rep = lone.group_by("content").agg(pl.col("node").min().alias("rep"))
    pairs = waiting.select(
        content.gather(waiting["a"]).alias("ca"),
        content.gather(waiting["b"]).alias("cb"),
        "kind",
        "score",
    )
    unbound = waiting.filter(~(alone.gather(waiting["a"]) & alone.gather(waiting["b"])))
    across = (
        pairs.join(rep.rename({"content": "ca", "rep": "a"}), on="ca")
        .join(rep.rename({"content": "cb", "rep": "b"}), on="cb")
        .filter(pl.col("a") != pl.col("b"))
        .select("a", "b", "kind", "score")
    )
    touched = pl.concat([pairs.select(pl.col("ca").alias("content")), pairs.select(pl.col("cb").alias("content"))])
    inside = (
        lone.join(touched.unique(), on="content")
        .join(rep, on="content")
        .filter(pl.col("node") != pl.col("rep"))
        .select(
            pl.col("rep").alias("a"),
            pl.col("node").alias("b"),
            pl.lit("exact").alias("kind"),
            pl.lit(1.0).alias("score"),
        )
    )
    links = pl.concat([across.cast(waiting.schema), inside.cast(waiting.schema)])
    bound = links.group_by("a", "b", "kind").agg(pl.col("score").max()).select(waiting.columns)
    return bound, unbound


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

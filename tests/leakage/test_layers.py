"""One layer object answers detection, the certificate and the guard: the three answers agree, and a layer added
to `make_layers` is run by detection and checked by the certificate with no other change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import datakit.leakage.detect as detect_mod
from datakit.evaluation.planted_leaks import planted_leaks
from datakit.keys import load_key
from datakit.leakage.certificate import certify, sides
from datakit.leakage.corpus import Corpus
from datakit.leakage.groups import connected_components
from datakit.leakage.guard import LAYERS
from datakit.leakage.layers import Cross, Found, Layer, LayerClock, Pairs, Sides, layer_names, make_layers
from datakit.leakage.layers.cosine import CosineLayer
from datakit.leakage.layers.near import NearLayer
from datakit.leakage.layers.words import WordsLayer
from datakit.sources.sample import generate_cases
from tests.conftest import coding_recipe


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[detect_mod.Detection, pl.DataFrame]:
    """Sample cases with planted copies (new patient and accession), detected, then split *ignoring* the groups
    (every third node to eval), so each layer has train↔eval links to find."""
    base = generate_cases(400, 5).cases.unique("case_id", keep="first").sort("case_id")
    cases, _ = planted_leaks(base, per_kind=6, seed=3)
    recipe = coding_recipe("source.n=400")
    det = detect_mod.detect(cases, recipe.leakage, load_key(recipe), tmp_path_factory.mktemp("cache"), LayerClock())
    assigned = det.nodes.select(
        "node", pl.when(pl.col("node") % 3 == 0).then(pl.lit("test")).otherwise(pl.lit("train")).alias("split")
    )
    return det, assigned


def _pairs(det: detect_mod.Detection, a: np.ndarray, b: np.ndarray) -> Pairs:
    a, b = a.astype(np.int64), b.astype(np.int64)
    return Pairs(a, b, det.corpus.content[a], det.corpus.content[b])


def test_every_layer_is_one_object_for_all_three_questions(planted: tuple[detect_mod.Detection, pl.DataFrame]) -> None:
    det, assigned = planted
    assert [layer.name for layer in det.layers] == list(layer_names())
    cert = certify(det, assigned)
    # the certificate's entries and the guard's columns are the layers' names (plus their own rules)
    assert set(cert.layers) == set(layer_names())
    assert set(layer_names()) < set(LAYERS) and {"self", "outlier", "leakage_group"} < set(LAYERS)
    found = cert.cross_edges.group_by("kind").len()
    assert found.height >= 4, found  # the careless split leaks through several layers
    split = sides(det, assigned)
    side = split.nodes.sort("node")["side"].to_numpy()
    for layer in det.layers:
        cross = cert.cross_edges.filter(pl.col("kind") == layer.name)
        a, b = cross["a"].to_numpy(), cross["b"].to_numpy()
        # a certificate link runs from an eval node to a train node
        assert (side[a] == "eval").all() and (side[b] == "train").all(), layer.name
        if isinstance(layer, WordsLayer):
            # the guard's words rule is the stricter verbatim test; the link itself is the layer's own measure
            cont, _ = layer.scores(_pairs(det, a, b))
            assert len(a) and (cont >= layer.cfg.words.threshold).all()
            continue
        # what fails the certificate is what the guard blocks: the same test on the same pair
        assert layer.blocks(det.corpus, _pairs(det, a, b)).all(), layer.name
        # ... and so is every link detection drew with this layer
        edges = pl.concat([det.edges, det.template_edges]).filter(
            pl.col("kind").is_in([layer.name, f"template_{layer.name}"])
        )
        hits = layer.blocks(det.corpus, _pairs(det, edges["a"].to_numpy(), edges["b"].to_numpy()))
        if isinstance(layer, CosineLayer):  # FAISS and the pair's own dot product may differ in the last digit
            score = layer.similarity(det.corpus.content[edges["a"]], det.corpus.content[edges["b"]])
            assert (hits | (score >= layer.cfg.cosine_threshold - 1e-4)).all()
        else:
            assert hits.all(), layer.name


class LengthLayer(Layer):
    """A toy layer: records whose texts have the same length mod 97 are linked."""

    name = "toy"
    exempt_templates = False

    @staticmethod
    def _keys(corpus: Corpus) -> pl.DataFrame:
        length = corpus.texts.gather(corpus.cases["content"]).str.len_chars()
        return corpus.cases.select("node", (length % 97).alias("k"))

    @staticmethod
    def _edges(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            pl.col("a").cast(pl.UInt32),
            pl.col("b").cast(pl.UInt32),
            pl.lit("toy").alias("kind"),
            pl.lit(1.0, pl.Float32).alias("score"),
        )

    def within(self, corpus: Corpus, clock: LayerClock) -> Found:
        keyed = self._keys(corpus)
        hub = keyed.group_by("k").agg(pl.col("node").min().alias("a"))
        return Found(
            edges=self._edges(keyed.join(hub, on="k").rename({"node": "b"}).filter(pl.col("a") != pl.col("b")))
        )

    def across(self, corpus: Corpus, sides: Sides) -> Cross:
        keyed = self._keys(corpus).join(sides.nodes.select("node", "side"), on="node")
        train = keyed.filter(pl.col("side") == "train").group_by("k").agg(pl.col("node").min().alias("b"))
        cross = keyed.filter(pl.col("side") == "eval").rename({"node": "a"}).join(train, on="k")
        return Cross(edges=self._edges(cross), entry={"ran": True, "train_eval_links": cross.height})

    def blocks(self, corpus: Corpus, pairs: Pairs) -> np.ndarray:
        k = self._keys(corpus)["k"].to_numpy()
        return k[pairs.query] == k[pairs.candidate]


def test_a_new_layer_is_added_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        detect_mod,
        "make_layers",
        lambda cfg, factory=None, engine=None: [*make_layers(cfg, factory, engine), LengthLayer()],
    )
    recipe = coding_recipe("source.n=120")
    cases = generate_cases(120, 5).cases.unique("case_id", keep="first")
    clock = LayerClock()
    det = detect_mod.detect(cases, recipe.leakage, load_key(recipe), tmp_path, clock)
    # detection ran it (timed like every layer) and its links group records
    assert "toy" in clock.layers and det.edges.filter(pl.col("kind") == "toy").height > 0
    # the certificate asks it across a split that ignores its links, and counts what it finds
    third = pl.when(pl.col("node") % 3 == 0).then(pl.lit("test")).otherwise(pl.lit("train"))
    cert = certify(det, det.nodes.select("node", third.alias("split")))
    toy = cert.cross_edges.filter(pl.col("kind") == "toy")
    assert cert.layers["toy"]["train_eval_links"] == toy.height > 0
    assert (
        LengthLayer()
        .blocks(det.corpus, Pairs(toy["a"].to_numpy(), toy["b"].to_numpy(), np.zeros(0), np.zeros(0)))
        .all()
    )


def test_template_bodies_under_other_headers_do_not_chain_patients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample's reports reuse catalogue sentences, so one patient's report body sits inside another patient's
    report under a different header: near links by containment alone. Touching a look-alike text they are template
    bodies, and may join lone reports but must not chain patients' histories into one group (they did: 43%)."""
    recipe = coding_recipe()
    cases = generate_cases(1500).cases

    def largest_share() -> float:
        det = detect_mod.detect(cases, recipe.leakage, load_key(recipe), tmp_path, LayerClock())
        sizes = connected_components(det.nodes.height, det.edges).group_by("component").len()["len"]
        return float(sizes.max() or 0) / det.nodes.height

    bounded = largest_share()
    monkeypatch.setattr(NearLayer, "binds_only_alone", Layer.binds_only_alone)  # bind like any other link
    chained = largest_share()
    assert bounded < 0.15 < 0.3 < chained, (bounded, chained)


def test_template_links_group_lone_records_only(tmp_path: Path) -> None:
    """Twenty-five patients with one exam each and twenty-five with several exams get the same normal report.
    The lone records' template links bind (one group: a template cluster is as large as itself); the others' are
    reported only, or the template would chain those patients' other exams into one group."""
    recipe = coding_recipe()
    cases = generate_cases(600, 5).cases.unique("case_id", keep="first").sort("case_id")
    per_patient = cases.group_by("patient_id").agg(pl.col("case_id").sort()).sort("patient_id")
    several = per_patient.filter(pl.col("case_id").list.len() >= 2)
    lone_ids = several.head(25).select(pl.col("case_id").list.first())["case_id"]
    dropped = several.head(25).select(pl.col("case_id").list.slice(1)).explode("case_id")["case_id"]
    history_ids = several.slice(25, 25).select(pl.col("case_id").list.first())["case_id"]
    boiler = "FINDINGS: Heart size is normal. The lungs are clear.\nIMPRESSION: No acute abnormality."
    chosen = pl.col("case_id").is_in(pl.concat([lone_ids, history_ids]).implode())
    cases = cases.filter(~pl.col("case_id").is_in(dropped.implode())).with_columns(
        pl.when(chosen).then(pl.lit("XR CHEST 2 VIEWS")).otherwise("exam_description").alias("exam_description"),
        pl.when(chosen).then(pl.lit("Cough.")).otherwise("reason_for_exam").alias("reason_for_exam"),
        pl.when(chosen).then(pl.lit(boiler)).otherwise("report_text").alias("report_text"),
        pl.when(chosen).then(pl.lit(None, pl.String)).otherwise("accession").alias("accession"),
    )
    det = detect_mod.detect(cases, recipe.leakage, load_key(recipe), tmp_path, LayerClock())
    groups = connected_components(det.nodes.height, det.edges).join(det.nodes.select("node", "case_id"), on="node")
    lone = groups.filter(pl.col("case_id").is_in(lone_ids.implode()))
    history = groups.filter(pl.col("case_id").is_in(history_ids.implode()))
    assert det.nodes.filter(pl.col("case_id").is_in(lone_ids.implode()))["template"].all()
    assert lone["component"].n_unique() == 1 and lone.height == 25
    # the records with a history keep only their patients' links: the template joins none of them
    hist_nodes = det.nodes.filter(pl.col("case_id").is_in(history_ids.implode()))["node"].implode()
    touching = det.edges.filter(pl.col("a").is_in(hist_nodes) | pl.col("b").is_in(hist_nodes))
    assert set(touching["kind"]) <= {"patient", "exam_fingerprint"} and history.height == 25
    template_links = det.template_edges.filter(pl.col("a").is_in(hist_nodes) | pl.col("b").is_in(hist_nodes))
    assert template_links.height >= 24  # reported, not binding
    assert det.nodes.filter(pl.col("case_id").is_in(lone_ids.implode()))["alone"].all()

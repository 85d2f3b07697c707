from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import datakit.leakage.detect as detect_mod
import datakit.leakage.repair as repair_mod
import datakit.leakage.stage as stage_mod
import datakit.leakage.workers as cosine_layer
from datakit.errors import RecipeError, StageError
from datakit.keys import load_key
from datakit.sources.sample import generate_cases
from tests.conftest import coding_recipe, run_recipe


def test_certificate_passes_and_every_layer_ran(sample_run: Path) -> None:
    cert = json.loads((sample_run / "reports" / "certificate.json").read_text())
    assert cert["passed"] is True
    assert set(cert["layers"]) == {
        "exact",
        "near",
        "cosine",
        "words",
        "exam_fingerprint",
        "accession",
        "patient",
        "pair",
    }
    assert all(layer["ran"] and layer["train_eval_links"] == 0 for layer in cert["layers"].values())
    assert cert["key"]["demo_key"] is True
    assert set(cert["split_membership_sha256"]) == {"train", "val", "test"}
    # what "passed" is worth: the harness figures for these very settings, and an exact cosine search
    strength = cert["tested_strength"]
    assert strength["measured"] and strength["applies"] and {"iu", "sample"} <= set(strength["sets"])
    assert cert["cosine_search"] == "exact"
    mix = json.loads((sample_run / "reports" / "leakage.json").read_text())["eval_mix"]
    assert 0 <= mix["exam_family"]["total_variation_distance"] < 0.5 and mix["exam_family"]["top"]


def test_tested_strength_is_not_quoted_for_other_settings() -> None:
    from datakit.leakage.certificate import tested_strength
    from datakit.recipe import Leakage

    other = tested_strength(Leakage(cosine_threshold=0.9))
    assert other["measured"] and not other["applies"] and other["settings_that_differ"] == ["cosine_threshold"]


def test_planted_duplicates_share_a_group_with_their_source(sample_run: Path) -> None:
    rows = pl.read_parquet(sample_run / "stages" / "leakage" / "part-*.parquet").unique("case_id")
    truth = generate_cases(1200, 17).truth.filter(pl.col("source_case_id").is_not_null())
    pairs = truth.join(rows.select("case_id", "leakage_group"), on="case_id").join(
        rows.select(pl.col("case_id").alias("source_case_id"), pl.col("leakage_group").alias("source_group")),
        on="source_case_id",
    )
    assert pairs.height > 10
    assert (pairs["leakage_group"] == pairs["source_group"]).all()


def test_reports_hold_ids_and_hashes_never_text(sample_run: Path) -> None:
    rows = pl.read_parquet(sample_run / "stages" / "leakage" / "part-*.parquet")
    html = (sample_run / "reports" / "leakage.html").read_text()
    blob = html + (sample_run / "reports" / "leakage.json").read_text()
    assert "<svg" in html and "PASSED" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    # no sentence of any report and no patient id reaches the reports
    sentences = {s.strip() for t in rows["report_text"].to_list() for s in t.split("\n") if len(s.strip()) > 25}
    assert not [s for s in sentences if s in blob]
    assert not [p for p in rows["patient_id"].drop_nulls().unique().to_list() if p in blob]


def test_a_layer_that_cannot_run_stops_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(cfg: object) -> object:
        raise RuntimeError("model file is corrupt")

    monkeypatch.setattr(cosine_layer, "make_encoder", broken)
    with pytest.raises(StageError, match="leakage layer 'cosine' could not run"):
        run_recipe(coding_recipe("source.n=200"), tmp_path)
    assert not (tmp_path / "stages" / "leakage" / "_stage.json").exists()


def _without_links(monkeypatch: pytest.MonkeyPatch) -> None:
    real = stage_mod.detect

    def blind(*args: object, **kwargs: object) -> detect_mod.Detection:
        det = real(*args, **kwargs)  # type: ignore[arg-type]
        det.edges = det.edges.filter(pl.col("kind") != "patient")  # the patient layer's links go unseen
        return det

    monkeypatch.setattr(stage_mod, "detect", blind)


def test_certificate_repairs_links_the_grouping_missed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_links(monkeypatch)
    # eval shares large enough that the patients repair moves out of eval leave some behind
    run_recipe(coding_recipe("source.n=300", "split.train=0.7", "split.val=0.15", "split.test=0.15"), tmp_path)
    record = json.loads((tmp_path / "stages" / "leakage" / "_stage.json").read_text())
    rounds = record["stats"]["repair_rounds"]
    assert rounds[0]["cross_links"] > 0 and rounds[-1]["cross_links"] == 0
    # the auditor's view, from reports/ alone: links per layer before and after, and who was moved, by layer
    repair = json.loads((tmp_path / "reports" / "leakage.json").read_text())["repair"]
    assert sum(repair["links_before_repair"].values()) == rounds[0]["cross_links"]
    assert repair["links_before_repair"]["patient"] > 0 and not any(repair["links_after_repair"].values())
    assert repair["records_moved"] > 0 and "patient" in repair["moved_by_layer"]
    moved = set(repair["moved_by_layer"]["patient"]["case_ids"])
    ids = pl.read_csv(tmp_path / "reports" / "leakage_ids.csv", infer_schema=False)
    in_csv = ids.filter(pl.col("section") == "moved_by_repair")
    assert in_csv["case_id"].n_unique() == repair["records_moved"]
    assert moved <= set(in_csv.filter(pl.col("layer") == "patient")["case_id"])
    final = pl.read_parquet(tmp_path / "stages" / "leakage" / "part-*.parquet")
    assert set(final.filter(pl.col("case_id").is_in(list(moved)))["split"]) == {"train"}
    # and the guard's blocked retrievals, by layer, with the ids behind them
    guard = json.loads((tmp_path / "reports" / "leakage.json").read_text())["retrieval_guard"]
    assert guard["blocked_records_by_layer"]["self"]["records"] > 0
    blocked = ids.filter(pl.col("section") == "blocked_retrieval")
    assert blocked.height and blocked.filter(pl.col("case_id") == pl.col("other_case_id"))[
        "layer"
    ].unique().to_list() == ["self"]


def test_certificate_fails_the_build_when_links_remain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_links(monkeypatch)
    monkeypatch.setattr(repair_mod, "REPAIR_ROUNDS", 0)
    with pytest.raises(StageError, match="leakage certificate failed"):
        run_recipe(coding_recipe("source.n=300"), tmp_path)
    cert = json.loads((tmp_path / "reports" / "certificate.json").read_text())
    assert cert["passed"] is False and cert["layers"]["patient"]["train_eval_links"] > 0


def test_the_demo_key_keys_only_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAKIT_SECRET", raising=False)
    own_data = ("source.kind=files", "source.path=cases.parquet")
    with pytest.raises(RecipeError, match=r"keys only the embedded sample.*DATAKIT_SECRET.*--allow-demo-key"):
        load_key(coding_recipe(*own_data))
    assert load_key(coding_recipe(*own_data, "keys.allow_demo_for_real_data=true")).is_demo
    assert load_key(coding_recipe()).is_demo  # the sample
    monkeypatch.setenv("DATAKIT_SECRET", "a-real-secret-of-enough-bytes")
    assert not load_key(coding_recipe(*own_data)).is_demo


def test_no_key_no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAKIT_SECRET", raising=False)
    with pytest.raises(RecipeError, match="no secret key"):
        load_key(coding_recipe("keys.demo=false"))
    monkeypatch.setenv("DATAKIT_SECRET", "short")
    with pytest.raises(RecipeError, match="shorter than 16 bytes"):
        load_key(coding_recipe())


def test_rerun_with_new_threshold_reuses_cached_embeddings_and_signatures(tmp_path: Path) -> None:
    def stats() -> dict[str, dict[str, int]]:
        return json.loads((tmp_path / "stages" / "leakage" / "_stage.json").read_text())["stats"]

    run_recipe(coding_recipe("source.n=300"), tmp_path)
    first = stats()
    run_recipe(coding_recipe("source.n=300", "leakage.cosine_threshold=0.95"), tmp_path)
    second = stats()
    emb, emb2 = first["embedding"], second["embedding"]
    assert emb["embedded"] > 0 and emb2["embedded"] == 0 and emb2["from_cache"] == emb["embedded"]
    sig, sig2 = first["minhash_signatures"], second["minhash_signatures"]
    assert sig["computed"] == emb["embedded"] and sig2 == {"computed": 0, "from_cache": sig["computed"]}
    run_recipe(coding_recipe("source.n=300", "leakage.minhash.k=4"), tmp_path)  # another shingle size: recomputed
    assert stats()["minhash_signatures"]["computed"] == sig["computed"]


def test_frozen_eval_reuses_the_earlier_eval_set(tmp_path: Path) -> None:
    first = tmp_path / "first"
    run_recipe(coding_recipe("source.n=400"), first)
    old = pl.read_parquet(first / "stages" / "leakage" / "part-*.parquet")
    second = tmp_path / "second"
    # another split seed would reshuffle every group; frozen eval mode must keep the earlier eval set anyway
    run_recipe(coding_recipe("source.n=400", "seed=99", f"split.frozen_eval='{first}'"), second)
    new = pl.read_parquet(second / "stages" / "leakage" / "part-*.parquet")
    old_eval = old.filter(pl.col("split") != "train").select("case_id", pl.col("split").alias("old")).unique()
    kept = old_eval.join(new.select("case_id", "split").unique(), on="case_id")
    assert kept.height == old_eval.height and (kept["old"] == kept["split"]).all()
    assert (new.filter(pl.col("split") == "train")["case_id"].is_in(old_eval["case_id"].implode())).sum() == 0
    # new records reach eval only through a link to the frozen eval set
    new_eval = new.filter((pl.col("split") != "train") & ~pl.col("case_id").is_in(old["case_id"].implode()))
    eval_groups = set(new.filter(pl.col("case_id").is_in(old_eval["case_id"].implode()))["leakage_group"])
    assert set(new_eval["leakage_group"]) <= eval_groups


def _boilerplate_cases(n_template: int) -> pl.DataFrame:
    """Sample cases where `n_template` different patients get the same normal-study report."""
    cases = generate_cases(300, 5).cases.unique("case_id", keep="first").sort("case_id")
    ids = cases.unique("patient_id", keep="first").sort("case_id")["case_id"].head(n_template)
    chosen = pl.col("case_id").is_in(ids.implode())
    return cases.with_columns(
        pl.when(chosen).then(pl.lit("XR CHEST 2 VIEWS")).otherwise("exam_description").alias("exam_description"),
        pl.when(chosen).then(pl.lit("Cough.")).otherwise("reason_for_exam").alias("reason_for_exam"),
        pl.when(chosen)
        .then(pl.lit("FINDINGS: Heart size is normal. The lungs are clear.\nIMPRESSION: No acute abnormality."))
        .otherwise("report_text")
        .alias("report_text"),
    )


@pytest.mark.parametrize("min_patients", [0, 20])
def test_template_reports_of_many_patients_do_not_merge_groups(tmp_path: Path, min_patients: int) -> None:
    from datakit.leakage.certificate import certify

    recipe = coding_recipe("source.n=300", f"leakage.template_min_patients={min_patients}")
    cases = _boilerplate_cases(30)
    det = detect_mod.detect(cases, recipe.leakage, load_key(recipe), tmp_path, detect_mod.LayerClock())
    assigned = repair_mod.group_and_split(det, recipe, None, det.edges.clear())
    template_nodes = det.nodes.filter(pl.col("template"))
    boiler_groups = assigned.join(
        det.nodes.filter(pl.col("content") == det.nodes.group_by("content").len().sort("len")["content"][-1]),
        on="node",
    )["leakage_group"]
    cert = certify(det, assigned)
    if min_patients == 0:
        # strict: one group holds all 30 patients' copies, and the certificate has nothing to exempt
        assert template_nodes.height == 0 and boiler_groups.n_unique() == 1
        assert cert.cross_link_total == 0 and cert.layers["exact"]["template_links_exempt"] == 0
    else:
        # the 30 copies are a template: reported apart, each patient keeps its own group, and copies that landed
        # in train and eval are counted as exempt instead of failing the certificate
        assert template_nodes.height == 30 and boiler_groups.n_unique() > 1
        # the copies' exact links, and their words links (look-alikes: they bind nothing either)
        assert set(det.template_edges["kind"].unique()) == {"template_exact", "template_words"}
        assert cert.cross_link_total == 0
        splits = assigned.join(template_nodes.select("node"), on="node")["split"]
        assert splits.n_unique() > 1  # (seeded: some copies are in eval)
        assert cert.layers["exact"]["template_links_exempt"] == splits.is_in(["val", "test"]).sum()

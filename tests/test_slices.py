"""A stage reads only the recipe keys its config hash covers (`datakit.slices`): an undeclared read stops the
stage with a message naming the key; an unhashed key (worker counts) leaves the hash alone, a hashed one changes
it; and the certificate names the recipe of the shards even when a change left the leakage stage current."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from datakit.errors import StageError
from datakit.pipeline import STAGES, stage_by_name
from datakit.runner import StageContext, StageResult, stage_config_hash
from datakit.slices import covers, recipe_slice, tree, view
from tests.conftest import coding_recipe, run_recipe


def _hash(stage_name: str, *overrides: str) -> str:
    stage = stage_by_name(stage_name)
    return stage_config_hash(stage, stage.config(coding_recipe("source.n=200", *overrides)))


def test_a_view_lets_through_declared_keys_only() -> None:
    recipe = coding_recipe()
    seen = view(recipe, "deid", ("deid", "split.source_column"), ("keys",))
    assert seen.deid is recipe.deid and seen.split.source_column == recipe.split.source_column
    assert seen.engine is recipe.engine  # where work runs: every stage may read it
    for read in (lambda: seen.leakage, lambda: seen.split.train, lambda: seen.hash()):
        with pytest.raises(StageError, match="stage 'deid' read recipe key"):
            read()
    whole = view(recipe, "shard", ("*",))
    assert whole.hash() == recipe.hash() and whole.leakage is recipe.leakage


def test_slices_and_trees() -> None:
    recipe = coding_recipe()
    sliced = recipe_slice(recipe, ("deid", "seed"), ("deid.n_jobs", "deid.batch_size"))
    assert set(sliced) == {"deid", "seed"} and "n_jobs" not in sliced["deid"] and "operators" in sliced["deid"]
    assert recipe_slice(recipe, ("*",)) == recipe.canonical()
    allowed = tree(["split.source_column", "deid", "deid.n_jobs"])
    assert covers(allowed, "deid.operators") and covers(allowed, "split.source_column")
    assert not covers(allowed, "split.train") and not covers(allowed, "leakage")


def test_unhashed_keys_leave_the_hash_hashed_keys_change_it() -> None:
    assert _hash("deid", "deid.n_jobs=1", "deid.batch_size=16") == _hash("deid")
    assert _hash("deid", "deid.residual_scan_share=0.5") != _hash("deid")
    assert _hash("leakage", "engine.kind=ray") == _hash("leakage")
    assert _hash("leakage", "split.train=0.7", "split.val=0.15", "split.test=0.15") != _hash("leakage")
    assert _hash("assemble", "shards.world_size=4") == _hash("assemble")
    assert _hash("shard", "shards.world_size=4") != _hash("shard")


def test_every_stage_declares_a_slice() -> None:
    for stage in STAGES:
        assert stage.hashed, stage.name
        assert not set(stage.hashed) & set(stage.unhashed), stage.name


def test_a_stage_that_reads_an_undeclared_key_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datakit.pipeline as pipeline

    def sneaky(ctx: StageContext) -> StageResult:
        ctx.recipe.assemble  # noqa: B018  (a read the pull stage does not declare)
        raise AssertionError("the read went through")

    stages = tuple(replace(s, run=sneaky) if s.name == "pull" else s for s in pipeline.STAGES)
    monkeypatch.setattr(pipeline, "STAGES", stages)
    with pytest.raises(StageError, match="stage 'pull' read recipe key assemble"):
        run_recipe(coding_recipe("source.n=100"), tmp_path)


def test_the_certificate_names_the_recipe_of_the_shards(tmp_path: Path) -> None:
    run_recipe(coding_recipe("source.n=300"), tmp_path)
    outcomes = run_recipe(coding_recipe("source.n=300", "assemble.n_shots=1"), tmp_path)
    assert {o.stage: o.status for o in outcomes}["leakage"] == "skipped"
    certificate = json.loads((tmp_path / "reports" / "certificate.json").read_text())
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert (
        certificate["recipe_hash"]
        == manifest["recipe_hash"]
        == coding_recipe("source.n=300", "assemble.n_shots=1").hash()
    )

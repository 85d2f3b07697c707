"""The `ray` engine on one local Ray (`ray.init(num_cpus=2)`, shared by this module): the same recipe writes the
same shards and the same certificate as the local engine; asking for Ray without the extra is one line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from datakit.errors import StageError
from datakit.rundir import RunDir
from tests.conftest import coding_recipe, run_recipe

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _manifest(run: Path) -> dict:
    manifest = json.loads((run / "shards" / "manifest.json").read_text())
    return {k: manifest[k] for k in ("recipe_hash", "splits", "shards", "index")}


def _untimed(obj: object) -> object:
    """A report without its timings (seconds, rates, dates), which differ between any two runs."""
    if isinstance(obj, dict):
        return {
            k: _untimed(v)
            for k, v in obj.items()
            if not any(w in k for w in ("second", "time", "_s", "per_s", "created", "generated"))
        }
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _certificate(run: Path) -> object:
    return _untimed(json.loads((run / "reports" / "certificate.json").read_text()))


def test_ray_engine_writes_what_the_local_engine_writes(local_ray: None, tmp_path: Path) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    run_recipe(coding_recipe("source.n=200"), local)
    run_recipe(coding_recipe("source.n=200", "engine.kind=ray", "engine.batch_size=64"), on_ray)
    deid_local = pl.read_parquet(RunDir(local).stage_dir("deid") / "part-*.parquet")
    deid_ray = pl.read_parquet(RunDir(on_ray).stage_dir("deid") / "part-*.parquet")
    assert deid_ray.equals(deid_local)
    assert _manifest(on_ray) == _manifest(local)
    assert _certificate(on_ray) == _certificate(local)
    # the engine is no part of the recipe's identity: a local re-run finds the ray run's stages current
    outcomes = run_recipe(coding_recipe("source.n=200"), on_ray)
    assert {o.status for o in outcomes} == {"skipped"}


def test_ray_without_the_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from datakit import engine

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does without the extra
    with pytest.raises(StageError, match=r'pip install "datakit\[ray\]"'):
        engine.ray_module()

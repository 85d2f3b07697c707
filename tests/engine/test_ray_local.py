"""The `ray` engine on one local Ray (`ray.init(num_cpus=2)`, shared by the engine tests: `conftest.local_ray`):
the same recipe writes the same shards and the same certificate as the local engine (de-identification, MinHash,
LSH, embeddings and neighbour search on the cluster), also when an actor is killed mid-stage (Ray restarts it and
retries its batch); asking for Ray without the extra is one line."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import pytest

from datakit.errors import StageError
from datakit.rundir import RunDir
from tests.conftest import coding_recipe, run_recipe
from tests.engine.conftest import N

ray = pytest.importorskip("ray")


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


def _dir(run: Path, stage: str) -> Path:
    return RunDir(run).stage_dir(stage)


def _stage(run: Path, stage: str) -> pl.DataFrame:
    return pl.read_parquet(_dir(run, stage) / "part-*.parquet")


def _deid(run: Path) -> pl.DataFrame:
    return _stage(run, "deid")


def test_ray_engine_writes_what_the_local_engine_writes(local_ray: None, local_run: Path, tmp_path: Path) -> None:
    local, on_ray = local_run, tmp_path / "ray"
    run_recipe(coding_recipe(f"source.n={N}", "engine.kind=ray", "engine.batch_size=64"), on_ray)
    assert _deid(on_ray).equals(_deid(local))
    for stage in ("leakage", "assemble"):  # MinHash, LSH, embeddings, neighbours; retrieval and the guard
        assert _stage(on_ray, stage).equals(_stage(local, stage)), stage
    blocked = "blocked_retrievals.parquet"
    assert pl.read_parquet(_dir(on_ray, "assemble") / blocked).equals(
        pl.read_parquet(_dir(local, "assemble") / blocked)
    )
    assert _manifest(on_ray) == _manifest(local)
    assert _certificate(on_ray) == _certificate(local)
    # the engine is no part of the recipe's identity: a local re-run finds the ray run's stages current
    outcomes = run_recipe(coding_recipe(f"source.n={N}"), on_ray)
    assert {o.status for o in outcomes} == {"skipped"}


def _deid_actors() -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if "DeidActor" in " ".join(proc.info["cmdline"] or []):
                found.add(proc.pid)
    return found


def _kill_an_actor_at_work(killed: list[int], stop: threading.Event, earlier: set[int]) -> None:
    """SIGKILL the first de-identification actor process of this run seen alive 3 s (loading its models or on a
    batch); Ray restarts it and retries its work. Actors of earlier runs (`earlier`) are left alone."""
    while not stop.is_set():
        for pid in sorted(_deid_actors() - earlier):
            time.sleep(3)
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
                killed.append(pid)
                return
            earlier.add(pid)  # it ended by itself: look for another
        time.sleep(0.05)


def test_an_actor_killed_mid_stage_is_retried_and_the_output_is_the_same(
    local_ray: None, local_run: Path, tmp_path: Path
) -> None:
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_an_actor_at_work, args=(killed, stop, _deid_actors()), daemon=True)
    killer.start()
    try:
        overrides = (f"source.n={N}", "engine.kind=ray", "engine.batch_size=20", "engine.concurrency=1")
        run_recipe(coding_recipe(*overrides), tmp_path / "ray", only=["pull", "deid"])
    finally:
        stop.set()
        killer.join()
    assert killed, "no actor was killed: the test proved nothing"
    assert _deid(tmp_path / "ray").equals(_deid(local_run))


def test_ray_without_the_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from datakit.executor import ray as engine

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does without the extra
    with pytest.raises(StageError, match=r'pip install "datakit\[ray\]"'):
        engine.ray_module()

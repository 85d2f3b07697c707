from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datakit.errors import SchemaError, StageError
from datakit.pipeline import STAGE_NAMES
from tests.conftest import CODING_RECIPE, ROOT, coding_recipe, run_recipe


def statuses(outcomes: list) -> dict[str, str]:
    return {o.stage: o.status for o in outcomes}


def shard_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "shards").iterdir())}


def test_run_directory_layout(sample_run: Path) -> None:
    assert json.loads((sample_run / "run.json").read_text())["status"] == "complete"
    for stage in STAGE_NAMES:
        record = json.loads((sample_run / "stages" / stage / "_stage.json").read_text())
        for key in (
            "stage",
            "datakit_version",
            "config_hash",
            "inputs",
            "output_fingerprint",
            "rows_in",
            "rows_out",
            "rows_quarantined",
            "wall_seconds",
            "peak_rss_mb",
        ):
            assert key in record, (stage, key)
    pull = json.loads((sample_run / "stages" / "pull" / "_stage.json").read_text())
    assert pull["rows_in"] == pull["rows_out"] + pull["rows_quarantined"] + pull["stats"]["filtered_review_status"]
    assert (sample_run / "quarantine" / "pull.parquet").is_file()
    assert (sample_run / "shards" / "manifest.json").is_file()
    assert not list(sample_run.rglob("*.tmp-*"))


def test_second_run_skips_everything_and_changes_rerun_downstream_only(tmp_path: Path) -> None:
    recipe = coding_recipe("source.n=400")
    assert set(statuses(run_recipe(recipe, tmp_path)).values()) == {"ran"}
    before = shard_bytes(tmp_path)
    assert set(statuses(run_recipe(recipe, tmp_path)).values()) == {"skipped"}
    changed = coding_recipe("source.n=400", "shards.world_size=4")
    assert statuses(run_recipe(changed, tmp_path)) == {
        "pull": "skipped",
        "deid": "skipped",
        "codes": "skipped",
        "leakage": "skipped",
        "assemble": "skipped",
        "shard": "ran",
    }
    assert statuses(run_recipe(recipe, tmp_path, from_stage="leakage")) == {
        "pull": "skipped",
        "deid": "skipped",
        "codes": "skipped",
        "leakage": "ran",
        "assemble": "ran",
        "shard": "ran",
    }
    assert shard_bytes(tmp_path) == before


def test_tampered_output_is_rebuilt(tmp_path: Path) -> None:
    recipe = coding_recipe("source.n=300")
    run_recipe(recipe, tmp_path)
    part = next((tmp_path / "stages" / "assemble").glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:-10])
    assert statuses(run_recipe(recipe, tmp_path))["assemble"] == "ran"
    (tmp_path / "shards" / "manifest.json").unlink()
    assert statuses(run_recipe(recipe, tmp_path))["shard"] == "ran"


def test_single_stage_needs_its_inputs(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"needs the output of 'assemble'.*run `datakit assemble` first"):
        run_recipe(coding_recipe("source.n=50"), tmp_path, only=["shard"])


def test_strict_stops_on_quarantine_and_leaves_no_stage(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"pull: \d+ rows quarantined \(.*empty:report_text"):
        run_recipe(coding_recipe("source.n=3000"), tmp_path, strict=True)
    assert not (tmp_path / "stages" / "pull").exists()
    assert (tmp_path / "quarantine" / "pull.parquet").is_file()
    with pytest.raises(SchemaError, match="rows quarantined"):
        run_recipe(coding_recipe("source.n=3000", "validation.strict=true"), tmp_path / "from_recipe")


def datakit(*args: str) -> list[str]:
    return [sys.executable, "-m", "datakit.cli", *args]


def run_and_kill(out: Path, overrides: list[str], stage_dir: str, needs_file: bool) -> None:
    """Start a run and SIGKILL it once `stage_dir` (a temporary stage folder) exists (and holds a file)."""
    proc = subprocess.Popen(
        datakit("run", str(CODING_RECIPE), "--out", str(out), "--quiet", *overrides),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            tmp = [p for p in out.glob(stage_dir) if p.is_dir() and (not needs_file or any(p.iterdir()))]
            if tmp:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return
            if proc.poll() is not None:
                pytest.fail(f"the run finished before {stage_dir} appeared; nothing was killed")
            time.sleep(0.002)
        pytest.fail("timed out waiting for the stage to start")
    finally:
        if proc.poll() is None:
            proc.kill()


KILL_OVERRIDES = ["--set", "source.n=2500", "--set", "shards.rows_per_shard=20"]


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run the killed runs are compared with (shared: both kill points use the same recipe)."""
    reference = tmp_path_factory.mktemp("kill_reference")
    subprocess.run(
        datakit("run", str(CODING_RECIPE), "--out", str(reference), "--quiet", *KILL_OVERRIDES), cwd=ROOT, check=True
    )
    return reference


@pytest.mark.slow
@pytest.mark.parametrize(("stage_dir", "needs_file"), [("stages/.pull.tmp-*", False), (".shards.tmp-*", True)])
def test_sigkill_mid_stage_then_rerun_gives_the_same_shards(
    tmp_path: Path, kill_reference: Path, stage_dir: str, needs_file: bool
) -> None:
    overrides = KILL_OVERRIDES
    reference = kill_reference
    killed = tmp_path / "killed"
    run_and_kill(killed, overrides, stage_dir, needs_file)
    stage = "pull" if "pull" in stage_dir else "shard"
    assert not (killed / "stages" / stage / "_stage.json").exists()  # the half-done stage never looks finished
    subprocess.run(
        datakit("run", str(CODING_RECIPE), "--out", str(killed), "--quiet", *overrides), cwd=ROOT, check=True
    )
    assert shard_bytes(killed) == shard_bytes(reference)
    assert not list(killed.rglob("*.tmp-*")) and not list(killed.rglob(".*.old-*"))


def test_a_failed_run_says_so_in_run_json(tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        run_recipe(coding_recipe("source.n=3000"), tmp_path, strict=True)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == "SchemaError"

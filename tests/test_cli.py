from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit.cli import app
from tests.conftest import CODING_RECIPE, ROOT

runner = CliRunner()


def test_every_stage_has_a_command_with_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "pull", "deid", "codes", "leakage", "assemble", "shard", "verify", "inspect", "recipe"):
        assert command in result.output


def test_stage_by_stage_equals_run(tmp_path: Path) -> None:
    args = ["--set", "source.n=300", "--quiet"]
    for stage in ("pull", "deid", "codes", "leakage", "assemble", "shard"):
        result = runner.invoke(app, [stage, str(CODING_RECIPE), "--out", str(tmp_path / "staged"), *args])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", str(CODING_RECIPE), "--out", str(tmp_path / "whole"), *args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [s["stage"] for s in summary["stages"]] == ["pull", "deid", "codes", "leakage", "assemble", "shard"]
    a = json.loads((tmp_path / "staged" / "shards" / "manifest.json").read_text())
    b = json.loads((tmp_path / "whole" / "shards" / "manifest.json").read_text())
    assert a["shards"] == b["shards"]


def test_run_prints_summaries_and_where_the_shards_are(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(CODING_RECIPE), "--out", str(tmp_path), "--set", "source.n=200"])
    assert result.exit_code == 0, result.output
    assert "pull (ran)" in result.output and "quarantined" in result.output
    assert f"shards: {tmp_path / 'shards'}" in result.output.replace("\n", "")
    verify = runner.invoke(app, ["verify", str(tmp_path), "--json"])
    assert verify.exit_code == 0 and json.loads(verify.output)["ok"] is True
    inspect = runner.invoke(app, ["inspect", str(tmp_path)])
    assert inspect.exit_code == 0 and "task:coding" in inspect.output


def test_recipe_check_and_show() -> None:
    ok = runner.invoke(app, ["recipe", "check", str(CODING_RECIPE)])
    assert ok.exit_code == 0 and "ok:" in ok.output
    shown = runner.invoke(app, ["recipe", "show", str(CODING_RECIPE), "--set", "source.n=12"])
    assert json.loads(shown.output)["source"]["n"] == 12


def test_user_errors_are_one_red_line_without_traceback(tmp_path: Path) -> None:
    cases = [
        ["recipe", "check", str(CODING_RECIPE), "--set", "source.nn=3"],
        ["run", str(tmp_path / "missing.toml")],
        [
            "run",
            str(CODING_RECIPE),
            "--out",
            str(tmp_path),
            "--set",
            "source.kind=files",
            "--set",
            f"source.path={tmp_path}/none.csv",
        ],
        ["verify", str(tmp_path)],
    ]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "datakit.cli", *args], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "Traceback" not in proc.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "datakit.cli", "--debug", *cases[0]], cwd=ROOT, capture_output=True, text=True
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_debug_is_read_anywhere_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from datakit.cli import STATE

    monkeypatch.setenv("DATAKIT_DEBUG", "")  # --debug sets it for worker processes: undone after the test

    for args in (
        ["--debug", "recipe", "check", str(CODING_RECIPE)],
        ["recipe", "check", str(CODING_RECIPE), "--debug"],
    ):
        STATE["debug"] = False
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert STATE["debug"] is True
    STATE["debug"] = False
    # after `--` it is an argument like any other (here: not a recipe file)
    result = runner.invoke(app, ["recipe", "check", "--", "--debug"])
    assert result.exit_code == 2 and STATE["debug"] is False


def test_sample_export_writes_a_practice_file(tmp_path: Path) -> None:
    import polars as pl

    result = runner.invoke(app, ["sample-export", str(tmp_path / "x" / "cases.csv"), "--n", "30"])
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(tmp_path / "x" / "cases.csv", infer_schema=False)
    assert frame.height == 30 and frame["StudyDate"].str.contains(r"^\d{2}/\d{2}/\d{4}$").all()

"""One writer per run directory, and one-line errors for a full disk or a folder datakit may not write."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.rundir import LOCK_FILE, RunDir
from tests.conftest import CODING_RECIPE, ROOT

runner = CliRunner()
SMALL = ["--set", "source.n=60", "--quiet"]


def test_a_second_writer_is_told_who_holds_the_run_directory(tmp_path: Path) -> None:
    with RunDir(tmp_path).lock("datakit run recipes/other.toml --out x"):
        result = runner.invoke(app, ["pull", str(CODING_RECIPE), "--out", str(tmp_path), *SMALL])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"pid {os.getpid()}" in message and "datakit run recipes/other.toml --out x" in message
    assert "another --out" in message and not (tmp_path / "run.json").exists()  # nothing was written
    result = runner.invoke(app, ["pull", str(CODING_RECIPE), "--out", str(tmp_path), *SMALL])  # released: runs
    assert result.exit_code == 0, result.output


def test_a_lock_held_by_a_killed_process_is_not_stale(tmp_path: Path) -> None:
    hold = (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from pathlib import Path\n"
        "from datakit.rundir import RunDir\n"
        "with RunDir(Path(sys.argv[1])).lock('a run killed with -9'):\n    print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path), str(ROOT)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    blocked = runner.invoke(app, ["pull", str(CODING_RECIPE), "--out", str(tmp_path), *SMALL])
    assert blocked.exit_code == 2 and "a run killed with -9" in " ".join(blocked.output.split())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.1)
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the kernel released the lock with the process
    result = runner.invoke(app, ["pull", str(CODING_RECIPE), "--out", str(tmp_path), *SMALL])
    assert result.exit_code == 0, result.output


def test_a_full_disk_is_one_line_and_leaves_no_temporaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pl.DataFrame.write_parquet

    def full(self: pl.DataFrame, file: object, *args: object, **kwargs: object) -> None:
        if "stages" in str(file) and "deid" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        real(self, file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    result = runner.invoke(app, ["run", str(CODING_RECIPE), "--out", str(tmp_path), *SMALL, "--set", "deid.n_jobs=1"])
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "no space left on the device holding" in result.output
    assert "Traceback" not in result.output
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"
    left = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert not left and not (tmp_path / "stages" / "deid").exists()
    assert (tmp_path / "stages" / "pull" / "_stage.json").is_file()  # finished stages are kept


def test_a_folder_datakit_may_not_write_is_one_line(tmp_path: Path) -> None:
    target = Path("/sys/datakit-test-run")
    try:
        target.mkdir()
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EROFS, errno.EACCES):
            pytest.skip(f"no unwritable folder here ({exc.errno})")
    else:
        target.rmdir()
        pytest.skip("/sys is writable here")
    result = runner.invoke(app, ["pull", str(CODING_RECIPE), "--out", str(target), *SMALL])
    assert result.exit_code == 2 and "cannot write /sys/datakit-test-run" in result.output
    assert "give a writable --out" in " ".join(result.output.split()) and "Traceback" not in result.output


def test_deeply_nested_json_is_one_line(tmp_path: Path) -> None:
    nested = '{"a":' * 100_000 + "1" + "}" * 100_000
    (tmp_path / "deep.json").write_text("[" + nested + "]")
    (tmp_path / "deep.jsonl").write_text(nested + "\n")
    for name in ("deep.json", "deep.jsonl"):
        args = ["pull", str(CODING_RECIPE), "--out", str(tmp_path / "run"), "--quiet", "--allow-demo-key"]
        args += ["--set", "source.kind=files", "--set", f"source.path={tmp_path / name}"]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.output.count("error:") == 1 and "Traceback" not in result.output, name

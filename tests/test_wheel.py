"""A built wheel works: installed (not editable) in a fresh virtual environment, it runs the demo recipe.

The environment gets datakit's dependencies from this checkout's `.venv` (a path entry, so that `.venv`'s
editable datakit is not seen) and datakit itself only from the wheel, run from outside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_readme import fresh_copy


def _site_packages(venv: Path) -> Path:
    rel = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    return venv / rel


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_demo(tmp_path: Path) -> None:
    src = fresh_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), "."], cwd=src, check=True)
    wheel = next(dist.glob("datakit-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    # every data file of the package is in it; the test corpora (datakit/evaluation) are not
    listed = subprocess.run(["git", "ls-files", "datakit"], cwd=ROOT, capture_output=True, text=True, check=True)
    data = [p for p in listed.stdout.split() if not p.endswith(".py") and not p.startswith("datakit/evaluation/")]
    assert data and not [p for p in data if p not in shipped]
    assert not [p for p in shipped if p.startswith("datakit/evaluation/")]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = _site_packages(venv)
    (site / "deps.pth").write_text(str(_site_packages(ROOT / ".venv")) + "\n")
    python = venv / "bin" / "python"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "radiology-coding.toml").write_text((ROOT / "recipes" / "radiology-coding.toml").read_text())
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    where = subprocess.run(
        [str(python), "-c", "import datakit, datakit.cli; print(datakit.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(site)), where  # the wheel's datakit, not the checkout's
    run = [str(python), "-m", "datakit.cli", "run", "radiology-coding.toml", "--set", "source.n=200", "--out", "run"]
    done = subprocess.run([*run, "-q"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    manifest = json.loads((work / "run" / "shards" / "manifest.json").read_text())
    assert manifest["index"]["rows"] > 200
    verify = subprocess.run([str(python), "-m", "datakit.cli", "verify", "run"], cwd=work, env=env, check=False)
    assert verify.returncode == 0

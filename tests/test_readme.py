"""The README's quick start and bring-your-own-data example, run verbatim in a fresh copy of the repository.

The copy holds what a clone holds (tracked files plus new ones git does not ignore), with this checkout's `.venv`
linked in (what `make setup` would build there). Every line of the two sections' bash blocks runs as written, from
the copy's root, in one `bash -e`: a command that fails, or a block that drifts from the code, fails the test."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SECTIONS = ("## Quick start", "## Bring your own data")


def bash_blocks(readme: str, heading: str) -> list[str]:
    start = readme.index(heading)
    end = readme.find("\n## ", start + len(heading))
    section = readme[start : end if end > 0 else None]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def fresh_copy(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


@pytest.mark.slow
def test_readme_commands_run_verbatim_in_a_fresh_copy(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b for heading in SECTIONS for b in bash_blocks(readme, heading)]
    assert len(blocks) >= 2 and all(b.strip() for b in blocks)
    repo = fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if k != "DATAKIT_SECRET"} | {"HF_HUB_OFFLINE": "1"}
    script = "set -euo pipefail\n" + "\n".join(blocks)
    done = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # what the example promises is there
    for run in ("quick", "staged", "byod"):
        assert (repo / "runs" / run / "shards" / "manifest.json").is_file(), run
    reports = repo / "runs" / "byod" / "reports"
    for name in ("certificate.json", "deid.json", "leakage.html", "removed.html", "removed.json"):
        assert (reports / name).is_file(), name
    cert = json.loads((reports / "certificate.json").read_text())
    assert cert["passed"] is True and not cert["key"]["demo_key"]

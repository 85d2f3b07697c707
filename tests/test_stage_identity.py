"""A stage's identity (its config hash) is the same in every process: a resumed run, or one stage command after
another, must find the earlier stages current. String hashing is salted per process, so anything built by
iterating a set (a regex alternation, a word list) would change the hash from one process to the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import json
from pathlib import Path
from datakit.deid.recognizers import radiology_fingerprint
from datakit.pipeline import STAGES
from datakit.recipe import load_recipe
from datakit.runner import stage_config_hash
recipe = load_recipe(Path("recipes/radiology-coding.toml"), [])
hashes = {s.name: stage_config_hash(s, s.config(recipe)) for s in STAGES}
print(json.dumps({"recognizers": radiology_fingerprint(), "stages": hashes}))
"""


def test_stage_config_hashes_are_the_same_in_every_process() -> None:
    procs = [  # two processes with different string-hash salts, side by side
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            env=os.environ | {"PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    found = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        found.append(json.loads(out.strip().splitlines()[-1]))
    assert found[0] == found[1]

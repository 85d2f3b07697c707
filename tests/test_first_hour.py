"""A new user's first hour: a light CLI, clear errors on empty or broken input, provenance that cannot lie,
clean interruption, inspect that verifies."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from datakit.errors import StageError
from datakit.pipeline import previous_status
from tests.conftest import CODING_RECIPE, ROOT, coding_recipe, run_recipe

HEAVY = ("presidio_analyzer", "spacy", "torch", "transformers", "faiss", "sentence_transformers", "numba", "bm25s")


def datakit(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "datakit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, datakit.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_version_alone_and_no_command() -> None:
    version = datakit("--version")
    assert version.returncode == 0 and version.stdout.startswith("datakit ")
    bare = datakit()
    assert bare.returncode == 0 and "Commands" in bare.stdout


# --- empty and broken input: one `error:` line saying why, exit 2 ---------------------------------------------------

GOOD_ROW = {
    "case_id": "c1",
    "patient_id": "p1",
    "exam_date": "2024-01-05",
    "exam_description": "XR CHEST 2 VIEWS",
    "report_text": "Lungs are clear. No effusion.",
    "cpt_codes": "71046",
    "icd10_codes": "R05.9",
    "review_status": "reviewed",
}


def _csv(rows: list[dict[str, str]]) -> bytes:
    return pl.DataFrame(rows).write_csv().encode()


def _rows(n: int, **change: str | None) -> list[dict[str, str]]:
    rows = [{**GOOD_ROW, "case_id": f"c{i}", "patient_id": f"MRNSECRET{i}"} for i in range(n)]
    return [{k: v for k, v in {**r, **change}.items() if v is not None} for r in rows]


def _jsonl_truncated() -> bytes:
    lines = [json.dumps(r) for r in _rows(3)]
    lines[2] = lines[2][:25]
    return ("\n".join(lines) + "\n").encode()


def _latin1() -> bytes:
    return _csv(_rows(3)).replace(b"Lungs are clear", "Lungs are cl\xe9ar".encode("latin-1"), 1)


# (file name, bytes, what the message must say, rows quarantined or None when nothing is read)
BAD_INPUTS: list[tuple[str, Callable[[], bytes], str, int | None]] = [
    ("missing_column.csv", lambda: _csv(_rows(5, patient_id=None)), r"empty:patient_id \(5\).*source\.columns", 5),
    ("empty.csv", lambda: b"", r"is empty \(0 bytes\)", None),
    ("header_only.csv", lambda: _csv(_rows(1)).split(b"\n")[0] + b"\n", r"the source holds no rows", 0),
    ("latin1.csv", _latin1, r"not UTF-8 at byte offset \d+ \(line 2\)", None),
    ("truncated.jsonl", _jsonl_truncated, r"line 3 is not a complete JSON object", None),
    ("empty.jsonl", lambda: b"", r"is empty \(0 bytes\)", None),
    ("blank.jsonl", lambda: b"\n\n", r"only whitespace", None),
    ("empty.parquet", lambda: b"", r"is empty \(0 bytes\)", None),
    ("not_parquet.parquet", lambda: b"case_id,report_text\n1,x\n", r"not a Parquet file", None),
    ("unreviewed.csv", lambda: _csv(_rows(4, review_status="draft")), r"4 filtered out by validation.review_status", 0),
    ("bad_dates.csv", lambda: _csv(_rows(3, exam_date="the fifth")), r"unparseable:exam_date.*date_format", 3),
]


@pytest.mark.parametrize(("name", "content", "message", "quarantined"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_ends_in_one_error_line(
    tmp_path: Path, name: str, content: Callable[[], bytes], message: str, quarantined: int | None
) -> None:
    source = tmp_path / name
    source.write_bytes(content())
    out = tmp_path / "run"
    proc = datakit(
        "run", str(CODING_RECIPE), "--out", str(out), "--set", "source.kind=files", "--set", f"source.path={source}"
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(message, lines[0]), lines[0]
    assert "Lungs" not in proc.stderr and "MRNSECRET" not in proc.stderr  # never record content
    q = out / "quarantine" / "pull.parquet"
    if quarantined is None:
        assert not q.exists()
    else:
        assert pl.read_parquet(q).height == quarantined
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


# --- provenance ------------------------------------------------------------------------------------------------------


def test_a_stage_refuses_outputs_another_recipe_made(tmp_path: Path) -> None:
    small = coding_recipe("source.n=80")
    run_recipe(small, tmp_path, only=["pull", "deid", "codes", "leakage"])
    other = coding_recipe("source.n=90")
    with pytest.raises(StageError, match=r"'pull' output .* differs in source\.n\b.*--force"):
        run_recipe(other, tmp_path, only=["assemble"])
    # --force builds on it, and the records say which recipe made what
    run_recipe(other, tmp_path, only=["assemble", "shard"], force=True)
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    made = manifest["stage_recipe_hashes"]
    assert made["pull"] == made["leakage"] == small.hash() != made["assemble"] == made["shard"] == other.hash()
    assert set(manifest["recipes"]) == {small.hash(), other.hash()}
    assert manifest["recipes"][small.hash()]["source"]["n"] == 80
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["stage_recipe_hashes"]["pull"] == small.hash()
    # the same recipe, stage by stage, needs no --force
    run_recipe(small, tmp_path, only=["assemble"])


def test_the_card_says_what_case_id_is(tmp_path: Path) -> None:
    run_recipe(coding_recipe("source.n=80"), tmp_path)  # case ids are keyed by default
    card = (tmp_path / "shards" / "README.md").read_text()
    assert "keyed HMAC-SHA256 of the source case id" in card
    ids = pl.read_parquet(tmp_path / "shards" / "_examples_index.parquet")["case_id"]
    assert ids.str.contains(r"^[0-9a-f]{32}$").all()
    raw = coding_recipe("source.n=80", 'deid.keep_columns=["case_id"]')
    run_recipe(raw, tmp_path / "raw")
    card = (tmp_path / "raw" / "shards" / "README.md").read_text()
    assert "not keyed" in card and "Columns kept as written, not de-identified (`deid.keep_columns`): `case_id`" in card


# --- interruption ----------------------------------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_run_until_deid_workers(out: Path) -> tuple[subprocess.Popen[str], set[int]]:
    args = ["run", str(CODING_RECIPE), "--out", str(out), "--set", "source.n=6000", "--set", "deid.n_jobs=2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "datakit.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("deid: started"):
            break
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:  # wait for the forked workers (not a speed check)
        workers = _children(proc.pid)
        time.sleep(0.2)
    assert len(workers) >= 2, "the deid workers never started"
    return proc, workers


def _gone(workers: set[int], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds  # a bound on the wait, not a speed check
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    return not any(_alive(w) for w in workers)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_run_leaves_no_workers_no_tracebacks_and_says_so(tmp_path: Path, sig: signal.Signals) -> None:
    proc, workers = _start_run_until_deid_workers(tmp_path)
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    assert _gone(workers), "deid workers outlived their parent"
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    # SIGTERM: the run writes it itself; SIGKILL: run.json still says running, and its process is gone
    assert previous_status(tmp_path) == "interrupted"
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted" in stderr
        assert json.loads((tmp_path / "run.json").read_text())["signal"] == "SIGTERM"


# --- inspect verifies ------------------------------------------------------------------------------------------------


def test_inspect_refuses_a_changed_shard(sample_run: Path, tmp_path: Path) -> None:
    import shutil

    shards = tmp_path / "shards"
    shutil.copytree(sample_run / "shards", shards)
    ok = datakit("inspect", str(shards))
    assert ok.returncode == 0 and "verified:" in ok.stdout
    shard = sorted(shards.glob("train-*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    bad = datakit("inspect", str(shards))
    assert bad.returncode == 2 and "sha256 differs" in bad.stderr


def test_the_demo_key_is_refused_for_real_data_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAKIT_SECRET", raising=False)
    source = tmp_path / "cases.csv"
    source.write_bytes(_csv(_rows(12)))
    args = [str(CODING_RECIPE), "--out", str(tmp_path / "run"), "--set", "source.kind=files"]
    args += ["--set", f"source.path={source}"]
    assert datakit("pull", *args).returncode == 0
    refused = datakit("deid", *args)
    assert refused.returncode == 2 and "--allow-demo-key" in refused.stderr and "DATAKIT_SECRET" in refused.stderr
    allowed = datakit("deid", *args, "--allow-demo-key")
    assert allowed.returncode == 0, allowed.stderr
    audit = json.loads((tmp_path / "run" / "reports" / "deid.json").read_text())
    assert audit["key"]["demo_key"] is True

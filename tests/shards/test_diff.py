"""`datakit diff`: what changed between two dataset versions, ids only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.errors import VerifyError
from datakit.shards.diff import diff_runs
from tests.conftest import coding_recipe, run_recipe

runner = CliRunner()
KEEP_IDS = 'deid.keep_columns=["case_id"]'  # the sample's own ids, so the two versions can be compared by truth


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    a, b = tmp_path_factory.mktemp("v1"), tmp_path_factory.mktemp("v2")
    run_recipe(coding_recipe("source.n=200", KEEP_IDS), a)
    run_recipe(coding_recipe("source.n=240", KEEP_IDS), b)
    return a, b


def _cases(run: Path) -> dict[str, str]:
    index = pl.read_parquet(run / "shards" / "_examples_index.parquet")
    return dict(index.group_by("case_id").agg(pl.col("split").min()).iter_rows())


def test_diff_names_added_removed_and_moved_cases(two_versions: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_versions
    d = diff_runs(a, b)
    left, right = _cases(a), _cases(b)
    assert d["added"] == sorted(set(right) - set(left)) and d["added"]
    assert d["removed"] == sorted(set(left) - set(right))
    moved = {c for m in d["moved_split"] for c in m["case_ids"]}
    assert moved == {c for c in set(left) & set(right) if left[c] != right[c]}
    assert not d["identical"] and d["comparable_ids"] and not d["same_recipe"]
    assert d["shards"]["rewritten"] or d["shards"]["added"]
    result = runner.invoke(app, ["diff", str(a), str(b), "--json", "--ids", str(tmp_path / "ids.csv"), "--exit-code"])
    assert result.exit_code == 1 and json.loads(result.output)["added"] == d["added"]
    ids = pl.read_csv(tmp_path / "ids.csv")
    assert set(ids.filter(pl.col("change") == "added")["case_id"]) == set(d["added"])
    # no text: the output is ids, hashes, counts and split names
    reports = pl.read_parquet(b / "stages" / "deid" / "part-*.parquet")["report_text"].to_list()
    assert not any(line.strip() in result.output for r in reports for line in r.split("\n") if len(line.strip()) > 25)


def test_a_run_against_itself_is_identical(two_versions: tuple[Path, Path]) -> None:
    a, _ = two_versions
    result = runner.invoke(app, ["diff", str(a), str(a / "shards"), "--exit-code"])
    assert result.exit_code == 0 and "identical" in result.output


def test_edited_shards_are_refused(two_versions: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = two_versions
    copy = tmp_path / "copy"
    shutil.copytree(a / "shards", copy)
    first = sorted(copy.glob("train-*.parquet"))[0]
    first.write_bytes(first.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(VerifyError):
        diff_runs(a, copy)

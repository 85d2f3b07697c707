"""Small corpora: the oversized-group rule scales, an empty eval split stops the run, and a build without eval
splits is never certified as passed."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datakit.errors import StageError
from datakit.leakage.splits import assign_group_splits, check_eval_splits, eval_group_limit
from datakit.recipe import Split
from tests.conftest import coding_recipe, run_recipe


def test_the_group_limit_is_never_below_a_small_group_or_the_eval_target() -> None:
    split = Split()
    assert eval_group_limit(split, 100_000) == 1000  # 1% of a large corpus: unchanged
    assert eval_group_limit(split, 40) == 2  # 1% of 40 rows would be 0.4: the 5% eval target (2 rows) instead
    assert eval_group_limit(split, 500) == 10  # capped at ten rows
    groups = pl.DataFrame({"group": [f"g{i}" for i in range(20)], "rows": [2] * 20, "last_exam": [None] * 20})
    groups = groups.with_columns(pl.lit(None, pl.String).alias("frozen_split"))
    assigned = assign_group_splits(groups, Split(train=0.8, val=0.1, test=0.1), 17)
    assert set(assigned["split"]) == {"train", "val", "test"}  # before: every 2-row group was "oversized"


def _out(splits: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"case_id": [str(i) for i in range(len(splits))], "split": splits, "leakage_group": splits})


def test_an_empty_eval_split_stops_with_the_knob() -> None:
    with pytest.raises(StageError, match=r"the test split is empty .*--set split.val=0.15"):
        check_eval_splits(_out(["train"] * 30 + ["val"] * 2), Split(), None)
    with pytest.raises(StageError, match="repair moved 5 eval records"):
        check_eval_splits(_out(["train"] * 30), Split(), None, repaired=5)
    check_eval_splits(_out(["train"] * 30), Split(train=1, val=0, test=0), None)  # none asked for: fine
    frozen = pl.DataFrame({"case_id": ["0"], "frozen_split": ["test"]})
    check_eval_splits(_out(["test"] + ["train"] * 9), Split(frozen_eval="earlier"), frozen)  # only test was frozen


def test_a_build_without_eval_splits_is_not_certified(tmp_path: Path) -> None:
    run_recipe(coding_recipe("source.n=200", "split.train=1", "split.val=0", "split.test=0"), tmp_path)
    cert = json.loads((tmp_path / "reports" / "certificate.json").read_text())
    assert cert["passed"] is None and "no val or test record" in cert["not_certified"]
    html = (tmp_path / "reports" / "leakage.html").read_text()
    assert "NOT CERTIFIED" in html and ">PASSED<" not in html

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.leakage.splits import assign_group_splits
from datakit.recipe import Split


def groups_frame(
    sizes: list[int], last: list[dt.date] | None = None, frozen: list[str | None] | None = None
) -> pl.DataFrame:
    n = len(sizes)
    return pl.DataFrame(
        {
            "group": [f"g{i}" for i in range(n)],
            "rows": sizes,
            "last_exam": last or [dt.date(2024, 1, 1)] * n,
            "frozen_split": frozen or [None] * n,
        },
        schema={"group": pl.String, "rows": pl.Int64, "last_exam": pl.Date, "frozen_split": pl.String},
    )


def test_sample_run_keeps_patients_and_leakage_groups_whole(sample_run: Path) -> None:
    rows = pl.read_parquet(sample_run / "stages" / "leakage" / "part-*.parquet")
    assert (rows.group_by("patient_id").agg(pl.col("split").n_unique())["split"] == 1).all()
    assert (rows.group_by("leakage_group").agg(pl.col("split").n_unique())["split"] == 1).all()
    shares = dict(rows["split"].value_counts(normalize=True).iter_rows())
    assert abs(shares["train"] - 0.90) < 0.04 and abs(shares["val"] - 0.05) < 0.03


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=300), st.integers(0, 2**31))
def test_group_splits_are_deterministic_complete_and_near_the_ratios(sizes: list[int], seed: int) -> None:
    frame = groups_frame(sizes)
    ratios = Split(train=0.8, val=0.1, test=0.1, max_eval_group_fraction=1.0)
    a = assign_group_splits(frame, ratios, seed)
    b = assign_group_splits(frame.reverse(), ratios, seed)
    assert a.height == frame.height and a["split"].null_count() == 0
    assert dict(a.select("group", "split").iter_rows()) == dict(b.select("group", "split").iter_rows())
    total = sum(sizes)
    train = a.filter(pl.col("split") == "train")["rows"].sum()
    assert abs(train / total - 0.8) <= max(sizes) / total + 1e-9  # off by at most one group at the cut


def test_oversized_group_goes_to_train_and_the_rest_keeps_the_ratios() -> None:
    frame = groups_frame([500] + [1] * 500)
    out = assign_group_splits(frame, Split(train=0.8, val=0.1, test=0.1, max_eval_group_fraction=0.05), 3)
    assert out.filter(pl.col("group") == "g0")["split_rule"][0] == "oversized_to_train"
    assert out.filter(pl.col("group") == "g0")["split"][0] == "train"
    eval_rows = out.filter(pl.col("split") != "train")["rows"].sum()
    assert abs(eval_rows / 1000 - 0.2) < 0.01


def test_time_cutoff_puts_groups_with_late_exams_in_eval() -> None:
    last = [dt.date(2023, 6, 1)] * 50 + [dt.date(2024, 6, 1)] * 50
    out = assign_group_splits(groups_frame([1] * 100, last), Split(time_cutoff=dt.date(2024, 1, 1)), 5)
    late = out.filter(pl.col("last_exam") >= dt.date(2024, 1, 1))
    assert set(late["split"]) <= {"val", "test"} and len(set(late["split"])) == 2
    assert set(out.filter(pl.col("last_exam") < dt.date(2024, 1, 1))["split"]) == {"train"}


def test_frozen_eval_keeps_old_eval_and_sends_new_groups_to_train() -> None:
    frozen = ["val", "test", None, None]
    out = assign_group_splits(groups_frame([3, 2, 4, 1], frozen=frozen), Split(frozen_eval="prior-run"), 1)
    assert out.sort("group")["split"].to_list() == ["val", "test", "train", "train"]

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.leakage.splits import assign_splits
from datakit.recipe import Split


def test_no_patient_in_two_splits_and_ratios_hold(sample_run: Path) -> None:
    cases = pl.read_parquet(sample_run / "stages" / "split" / "part-*.parquet")
    assert (cases.group_by("patient_id").agg(pl.col("split").n_unique())["split"] == 1).all()
    share = cases["split"].value_counts(normalize=True)
    shares = dict(share.iter_rows())
    assert abs(shares["train"] - 0.90) < 0.03 and abs(shares["val"] - 0.05) < 0.03


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=300), st.integers(0, 2**31))
def test_splits_are_grouped_deterministic_and_complete(groups: list[int], seed: int) -> None:
    frame = pl.DataFrame({"case_id": [str(i) for i in range(len(groups))], "g": [str(g) for g in groups]})
    ratios = Split(train=0.8, val=0.1, test=0.1)
    a = assign_splits(frame, ratios, seed, pl.col("g"))
    b = assign_splits(frame.reverse(), ratios, seed, pl.col("g"))
    assert a.height == frame.height and a["split"].null_count() == 0
    assert (a.group_by("g").agg(pl.col("split").n_unique())["split"] == 1).all()
    assert dict(a.select("case_id", "split").iter_rows()) == dict(b.select("case_id", "split").iter_rows())

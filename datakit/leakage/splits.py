"""Train/val/test assignment of whole leakage groups, deterministic by seed.

Three modes, applied in this order to each group:

1. **frozen eval** (`split.frozen_eval`, or `split.source_column`: the source's own split, e.g. a benchmark's
   official test set): a group holding any record of the earlier run's (or the source's) val/test set takes
   that split (the split holding most of its frozen records; test on a tie), so records linked to the frozen
   eval set can never enter train. Every other group goes to train: the eval set stays what it was.
2. **time cut-off** (`split.time_cutoff`): a group with any exam on or after the date is eval; it is val or
   test by the seeded order, in the ratio val:test. Groups entirely before the date are train.
3. **ratios**: groups are ordered by sha256(seed:group) and cut by cumulative row count, so the ratios hold by
   rows and a group never straddles two splits.

A group larger than `max_eval_group_fraction` of all rows (a template shared by thousands of reports) always
goes to train in the ratio and cut-off modes: put in eval it would swamp it. The stats count such groups. On a
small corpus that fraction is under one patient's records (1% of 40 rows), so the limit is never below
`SMALL_GROUP_ROWS` rows or the smaller eval split's target, whichever is less. An eval split the recipe asks for
that ends up empty stops the run (`check_eval_splits`): a certificate over no eval record certifies nothing.
"""

from __future__ import annotations

import polars as pl

from datakit.content import sha256_hex
from datakit.errors import StageError
from datakit.recipe import Split

EVAL_SPLITS = ("val", "test")
SMALL_GROUP_ROWS = 10  # a group this small is never "oversized" when an eval split's target is at least this


def eval_group_limit(split: Split, total: int) -> float:
    """Rows above which a group always goes to train (ratio and cut-off modes)."""
    targets = [share * total for share in (split.val, split.test) if share > 0]
    floor = min([SMALL_GROUP_ROWS, *targets])
    return max(split.max_eval_group_fraction * max(1, total), floor)


def source_split_expr(split: Split) -> pl.Expr:
    """The split the source itself gives each record (`split.source_column` mapped by `split.source_splits`;
    null for a value the recipe does not map)."""
    assert split.source_column is not None
    return pl.col(split.source_column).replace_strict(split.source_splits, default=None, return_dtype=pl.String)


def _ratio_cut(groups: pl.DataFrame, ratios: tuple[float, float, float], total: int) -> pl.Expr:
    train, val, _ = ratios
    start = (pl.col("rows").cum_sum() - pl.col("rows")) / max(1, total)
    return (
        pl.when(start < train)
        .then(pl.lit("train"))
        .when(start < train + val)
        .then(pl.lit("val"))
        .otherwise(pl.lit("test"))
    )


def assign_group_splits(groups: pl.DataFrame, split: Split, seed: int) -> pl.DataFrame:
    """groups: (group, rows, last_exam [date, nullable], frozen_split [nullable]) → adds `split`, `split_rule`."""
    total = int(groups["rows"].sum() or 0)
    ordered = groups.with_columns(sha256_hex(groups["group"], prefix=f"{seed}:").alias("order")).sort("order")
    oversized = pl.col("rows") > eval_group_limit(split, total)
    frozen_mode = split.frozen_eval is not None or split.source_column is not None
    if frozen_mode:
        return ordered.with_columns(
            pl.coalesce(pl.col("frozen_split"), pl.lit("train")).alias("split"),
            pl.when(pl.col("frozen_split").is_not_null())
            .then(pl.lit("source_split" if split.source_column is not None else "frozen_eval"))
            .otherwise(pl.lit("new_to_train"))
            .alias("split_rule"),
        ).drop("order")
    if split.time_cutoff is not None:
        is_eval = (pl.col("last_exam") >= pl.lit(split.time_cutoff)) & ~oversized
        eval_rows = ordered.filter(is_eval)
        eval_share = split.val / max(split.val + split.test, 1e-12)
        cut = eval_rows.with_columns(
            pl.when(
                (pl.col("rows").cum_sum() - pl.col("rows")) / max(1, int(eval_rows["rows"].sum() or 0)) < eval_share
            )
            .then(pl.lit("val"))
            .otherwise(pl.lit("test"))
            .alias("eval_split")
        ).select("group", "eval_split")
        return pinned(
            ordered.join(cut, on="group", how="left", maintain_order="left")
            .with_columns(
                pl.coalesce(pl.col("eval_split"), pl.lit("train")).alias("split"),
                pl.when(oversized & (pl.col("last_exam") >= pl.lit(split.time_cutoff)))
                .then(pl.lit("oversized_to_train"))
                .when(pl.col("eval_split").is_not_null())
                .then(pl.lit("after_cutoff"))
                .otherwise(pl.lit("before_cutoff"))
                .alias("split_rule"),
            )
            .drop("order", "eval_split")
        )
    # ratio mode: oversized groups are train; the rest are cut by cumulative rows at rescaled ratios
    big = ordered.filter(oversized)
    rest = ordered.filter(~oversized)
    big_rows = int(big["rows"].sum() or 0)
    rest_rows = max(1, total - big_rows)
    # keep the overall ratios where possible: the train share of the rest shrinks by the oversized rows
    train_share = max(0.0, (split.train * total - big_rows) / rest_rows)
    eval_scale = (1 - train_share) / max(split.val + split.test, 1e-12)
    ratios = (train_share, split.val * eval_scale, split.test * eval_scale)
    rest = rest.with_columns(_ratio_cut(rest, ratios, rest_rows).alias("split"), pl.lit("ratio").alias("split_rule"))
    big = big.with_columns(pl.lit("train").alias("split"), pl.lit("oversized_to_train").alias("split_rule"))
    return pinned(pl.concat([rest, big]).sort("order").drop("order"))


def pinned(assigned: pl.DataFrame) -> pl.DataFrame:
    """Outside frozen-eval mode a `frozen_split` can only come from `leakage.external_policy = "eval"`: such a
    group takes that split (rule `external_eval`), whatever the cut said."""
    if "frozen_split" not in assigned.columns:
        return assigned
    pin = pl.col("frozen_split").is_not_null()
    return assigned.with_columns(
        pl.when(pin).then(pl.col("frozen_split")).otherwise(pl.col("split")).alias("split"),
        pl.when(pin).then(pl.lit("external_eval")).otherwise(pl.col("split_rule")).alias("split_rule"),
    )


def membership_hash(frame: pl.DataFrame, split: str) -> str:
    """sha256 over the sorted case ids of one split: two runs with the same eval set have the same hash."""
    ids = frame.filter(pl.col("split") == split)["case_id"].unique().sort()
    joined = pl.Series(["\n".join(ids.to_list())])
    return str(sha256_hex(joined)[0])


def expected_eval_splits(split: Split, frozen: pl.DataFrame | None) -> list[str]:
    """The eval splits a run must end with: those its ratios ask for, or, with a frozen or source split, those
    the frozen set holds."""
    if frozen is not None and (split.frozen_eval is not None or split.source_column is not None):
        return sorted(set(frozen["frozen_split"].drop_nulls().to_list()) & set(EVAL_SPLITS))
    return [name for name, share in (("val", split.val), ("test", split.test)) if share > 0]


def check_eval_splits(out: pl.DataFrame, split: Split, frozen: pl.DataFrame | None, repaired: int = 0) -> None:
    """Stop when an eval split the recipe asks for holds no record: one line with the knob that fixes it (the
    certificate of an empty eval split would certify nothing)."""
    counts = dict(out.group_by("split").len().iter_rows())
    empty = [name for name in expected_eval_splits(split, frozen) if not counts.get(name)]
    if not empty:
        return
    total = out.height
    groups = out.group_by("leakage_group").len()
    largest = int(groups.select(pl.col("len").max()).item() or 0)
    limit = eval_group_limit(split, total)
    names = " and ".join(empty)
    if repaired:
        fix = (
            f"the certificate's repair moved {repaired:,} eval records linked to train records into train: the "
            "corpus is linked through and through (see reports/leakage.json, repair); raise the eval shares or "
            "look at what links them"
        )
    elif split.frozen_eval is not None or split.source_column is not None:
        fix = "no record of the frozen / source eval set survived pull, deid and codes: check the quarantine"
    elif split.time_cutoff is not None:
        fix = (
            f"no leakage group of at most {limit:g} rows has an exam on or after split.time_cutoff = "
            f"{split.time_cutoff}: move the cut-off earlier"
        )
    else:
        fix = (
            "a split cut by rows needs groups no larger than its share: raise the eval shares (e.g. --set "
            "split.train=0.7 --set split.val=0.15 --set split.test=0.15) or split.max_eval_group_fraction; "
            f"split.{empty[0]} = 0 builds without it"
        )
    raise StageError(
        f"leakage: the {names} split{'s are' if len(empty) > 1 else ' is'} empty ({total:,} rows in "
        f"{groups.height:,} leakage groups, the largest {largest:,} rows; groups over {limit:g} rows go to train), "
        f"so no certificate could mean anything: {fix}"
    )

"""The `codes` stage: exclude prior runs, validate codes (policy), resolve label conflicts, tag flags and hard
cases, and add specificity-correction examples.

Output: one row per training example. Base rows have `example_key = "base"`; a specificity-correction row is a
copy of its case with `example_key = "pair:<from>><to>"`, `pair_of` = the case id, `icd_candidates` holding the
unspecified code beside the final codes, and `sample_weight = codes.specificity_weight`.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from datakit.codes import cpt, icd10
from datakit.codes.conflicts import find_conflicts, resolve
from datakit.codes.hard_cases import hard_case_tags
from datakit.codes.modifiers import modifier_flags
from datakit.codes.pairs import specificity_pairs
from datakit.codes.prior_runs import exclude, fingerprints, trained_on
from datakit.content import content_hash
from datakit.recipe import Codes, Recipe
from datakit.report.removed import removed_table, write_removed
from datakit.rundir import LABEL_CONFLICTS, file_sha256
from datakit.runner import StageContext, StageResult


def codes_derived(recipe: Recipe) -> dict[str, Any]:
    """The code set's version, the prior runs' and the allow list's digests (the recipe's `codes` is hashed)."""
    cfg = recipe.codes
    config: dict[str, Any] = {
        "code_set": f"simple-icd-10-cm {metadata.version('simple-icd-10-cm')}",
        "prior_runs": fingerprints(cfg.exclude_manifests),
    }
    if cfg.cpt_allow_list:
        cpt.load_allow_list(cfg.cpt_allow_list)  # fail early with a clear message
        config["cpt_allow_list_sha256"] = file_sha256(Path(cfg.cpt_allow_list))
    return config


def bad_codes(cases: pl.DataFrame, cfg: Codes) -> pl.DataFrame:
    """code, column, reason for every code that breaks the code sets (unique codes, not rows)."""
    icd = icd10.check(cases["icd10_codes"].explode())
    cpts = cpt.check(cases["cpt_codes"].explode(), cpt.load_allow_list(cfg.cpt_allow_list))
    return pl.concat(
        [
            icd.filter(~pl.col("valid")).select(
                "code", pl.lit("icd10_codes").alias("column"), pl.lit("unknown_icd10").alias("reason")
            ),
            icd.filter(pl.col("valid") & ~pl.col("billable")).select(
                "code", pl.lit("icd10_codes").alias("column"), pl.lit("non_billable_icd10").alias("reason")
            ),
            cpts.filter(~pl.col("well_formed")).select(
                "code", pl.lit("cpt_codes").alias("column"), pl.lit("malformed_cpt").alias("reason")
            ),
            cpts.filter(pl.col("well_formed") & ~pl.col("allowed")).select(
                "code", pl.lit("cpt_codes").alias("column"), pl.lit("cpt_not_in_allow_list").alias("reason")
            ),
        ]
    )


def _row_reasons(cases: pl.DataFrame, bad: pl.DataFrame) -> pl.DataFrame:
    """case_id -> sorted unique reasons of its bad codes."""
    parts = [
        cases.select("case_id", pl.col(column).alias("code"))
        .explode("code")
        .join(bad.filter(pl.col("column") == column), on="code")
        for column in ("icd10_codes", "cpt_codes")
    ]
    hits = pl.concat(parts)
    return hits.group_by("case_id").agg(pl.col("reason").unique().sort().str.join("; ").alias("reason"))


def apply_policy(cases: pl.DataFrame, bad: pl.DataFrame, policy: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (kept cases, quarantined rows with `reason`)."""
    reasons = _row_reasons(cases, bad)
    with_reason = cases.join(reasons, on="case_id", how="left", maintain_order="left")
    empty = pl.DataFrame(schema={**cases.schema, "reason": pl.String})
    if policy == "quarantine":
        return with_reason.filter(pl.col("reason").is_null()).drop("reason"), with_reason.filter(
            pl.col("reason").is_not_null()
        )
    if policy == "keep_tag":
        invalid = pl.col("reason").str.split("; ").list.eval(pl.lit("invalid_code:") + pl.element())
        tagged = with_reason.with_columns(
            pl.col("code_tags").list.concat(invalid.fill_null(pl.lit([], dtype=pl.List(pl.String))))
        )
        return tagged.drop("reason"), empty
    # drop_code: remove the offending codes; a case left without CPT or ICD codes is quarantined
    dropped = cases.with_columns(
        pl.col(column)
        .list.eval(
            pl.element().filter(pl.element().is_in(bad.filter(pl.col("column") == column)["code"].implode()).not_())
        )
        .alias(column)
        for column in ("icd10_codes", "cpt_codes")
    )
    left_empty = (pl.col("icd10_codes").list.len() == 0) | (pl.col("cpt_codes").list.len() == 0)
    quarantined = dropped.filter(left_empty).with_columns(pl.lit("no_valid_codes_left").alias("reason"))
    return dropped.filter(~left_empty), quarantined


def _pair_rows(cases: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    rows = cases.join(pairs, on="case_id", how="inner")
    return rows.with_columns(
        pl.concat_str([pl.lit("pair:"), pl.col("from_code"), pl.lit(">"), pl.col("to_code")]).alias("example_key"),
        pl.col("case_id").alias("pair_of"),
        pl.col("icd10_codes")
        .list.concat(pl.concat_list("from_code"))
        .list.unique()
        .list.sort()
        .alias("icd_candidates"),
        pl.col("code_tags").list.concat(
            pl.concat_list(pl.lit("specificity_pair"), pl.concat_str([pl.lit("pair_kind:"), pl.col("pair_kind")]))
        ),
    ).drop("pair_source")


def _replicate(rows: pl.DataFrame) -> pl.DataFrame:
    """`weighting = "replicate"`: round(weight) copies of weight 1.0, keys suffixed :r0, :r1, …"""
    copies = pl.col("sample_weight").round().cast(pl.Int64).clip(lower_bound=1)
    out = rows.with_columns(pl.int_ranges(0, copies).alias("_copy")).explode("_copy")
    return out.with_columns(
        pl.concat_str([pl.col("example_key"), pl.lit(":r"), pl.col("_copy").cast(pl.String)]).alias("example_key"),
        pl.lit(1.0).alias("sample_weight"),
    ).drop("_copy")


def build_examples(cases: pl.DataFrame, pairs: pl.DataFrame, cfg: Codes) -> pl.DataFrame:
    hard = pl.col("code_tags").list.eval(pl.element().str.starts_with("hard_case:")).list.any()
    hard_factor = pl.when(hard).then(pl.lit(cfg.hard_case_weight)).otherwise(pl.lit(1.0))
    base = cases.with_columns(
        pl.lit("base").alias("example_key"),
        pl.lit(None, pl.String).alias("pair_of"),
        pl.lit(None, pl.String).alias("from_code"),
        pl.lit(None, pl.String).alias("to_code"),
        pl.lit(None, pl.String).alias("pair_kind"),
        pl.lit(None, pl.List(pl.String)).alias("icd_candidates"),
        hard_factor.alias("sample_weight"),
    )
    paired = _pair_rows(cases, pairs).with_columns((hard_factor * cfg.specificity_weight).alias("sample_weight"))
    rows = pl.concat([base, paired.select(base.columns)])
    if cfg.weighting == "replicate":
        rows = _replicate(rows)
    return rows.sort(["case_id", "example_key"])


def transform(cases: pl.DataFrame, cfg: Codes) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Pure function of the stage: (examples, quarantined rows, label-conflict report, stats)."""
    cases = cases.with_columns(
        content_hash(cases).alias("case_content_hash"), pl.lit([], dtype=pl.List(pl.String)).alias("code_tags")
    )
    cases, excluded = exclude(cases, trained_on(cfg.exclude_manifests))
    cases = icd10.normalise_lists(cases, ("icd10_codes", "initial_icd10_codes")).with_columns(
        pl.col(c).list.eval(pl.element().str.to_uppercase().str.strip_chars()) for c in ("cpt_codes", "modifiers")
    )
    bad = bad_codes(cases, cfg)
    cases, quarantine = apply_policy(cases, bad, cfg.invalid_policy)
    conflicts = find_conflicts(cases)
    cases, conflict_report = resolve(cases, conflicts, cfg.label_conflicts)
    flags = [*modifier_flags(), *hard_case_tags()]
    cases = cases.with_columns(
        pl.col("code_tags").list.concat(pl.concat_list(flags).list.drop_nulls()).alias("code_tags")
    )
    pairs = specificity_pairs(cases, cfg.pairs_from)
    examples = build_examples(cases, pairs, cfg)
    tag_counts = cases.select(pl.col("code_tags").explode()).to_series().drop_nulls().value_counts(sort=True)
    reasons = quarantine.select(pl.col("reason").str.split("; ").explode()).to_series().value_counts(sort=True)
    stats = {
        **excluded,
        "quarantine_reasons": dict(reasons.iter_rows()) if quarantine.height else {},
        "invalid_codes": {r["code"]: r["reason"] for r in bad.sort("code").iter_rows(named=True)},
        "invalid_policy": cfg.invalid_policy,
        "label_conflict_groups": conflicts["conflict_group"].n_unique() if conflicts.height else 0,
        "label_conflict_cases": conflicts.height,
        "label_conflict_cases_dropped": int((~conflict_report["kept"]).sum()) if conflict_report.height else 0,
        "cases_out": cases.height,
        "specificity_pairs": pairs.height,
        "pairs_by_kind": dict(pairs.group_by("pair_kind").len().sort("pair_kind").iter_rows()),
        "pairs_by_source": dict(pairs.group_by("pair_source").len().sort("pair_source").iter_rows()),
        "tags": dict(tag_counts.iter_rows()),
        "examples_out": examples.height,
        "weighting": cfg.weighting,
    }
    return examples, quarantine, conflict_report, stats


def run_codes(ctx: StageContext) -> StageResult:
    cases = ctx.read_input()
    ctx.phase("validating codes", cases.height, "records")
    examples, quarantine, conflict_report, stats = transform(cases, ctx.recipe.codes)
    conflict_report.write_parquet(ctx.out_dir / LABEL_CONFLICTS)
    ctx.write(examples)
    write_removed(ctx.out_dir, removed_table("codes", quarantine))  # ids are keyed already (deid ran before)
    ctx.advance(cases.height)
    return StageResult(rows_in=cases.height, rows_out=examples.height, quarantine=quarantine, stats=stats)

"""Prior-run exclusion: cases an earlier model version already trained on (by case id or content hash)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from datakit.errors import RecipeError
from datakit.rundir import file_sha256


def _index_path(manifest: Path) -> Path:
    if not manifest.is_file():
        raise RecipeError(f"codes.exclude_manifests: {manifest} not found (give the manifest.json of an earlier run)")
    try:
        index = json.loads(manifest.read_text())["index"]["file"]
    except (ValueError, KeyError):
        raise RecipeError(f"codes.exclude_manifests: {manifest} is not a datakit shards manifest") from None
    path = manifest.parent / index
    if not path.is_file():
        raise RecipeError(f"codes.exclude_manifests: {path}, named by {manifest}, is missing")
    return path


def fingerprints(manifests: list[str]) -> dict[str, str]:
    """For the stage config hash: a changed earlier run re-runs the exclusion."""
    return {m: file_sha256(_index_path(Path(m))) for m in manifests}


def trained_on(manifests: list[str]) -> pl.DataFrame:
    """Case ids and content hashes of the earlier runs' train splits (their val/test cases were not trained on)."""
    frames = [
        pl.read_parquet(_index_path(Path(m)), columns=["case_id", "case_content_hash", "split"])
        .filter(pl.col("split") == "train")
        .drop("split")
        for m in manifests
    ]
    if not frames:
        return pl.DataFrame(schema={"case_id": pl.String, "case_content_hash": pl.String})
    return pl.concat(frames).unique()


def exclude(cases: pl.DataFrame, prior: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Drop cases whose case_id or content hash an earlier run trained on; count each reason."""
    by_id = pl.col("case_id").is_in(prior["case_id"].implode())
    by_hash = pl.col("case_content_hash").is_in(prior["case_content_hash"].implode())
    flagged = cases.with_columns(by_id.alias("_by_id"), by_hash.alias("_by_hash"))
    counts = {
        "excluded_prior_run": int((flagged["_by_id"] | flagged["_by_hash"]).sum()),
        "excluded_prior_run_by_case_id": int(flagged["_by_id"].sum()),
        "excluded_prior_run_by_content_hash_only": int((flagged["_by_hash"] & ~flagged["_by_id"]).sum()),
    }
    return flagged.filter(~(pl.col("_by_id") | pl.col("_by_hash"))).drop("_by_id", "_by_hash"), counts

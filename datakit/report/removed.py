"""Everything removed before the leakage stage, for the auditor: `reports/removed.json` and `reports/removed.html`.

Rows leave a build at pull (quarantined: schema, dates, duplicates; or left out by `validation.review_status`), at
deid (de-identification failed, residual PHI, too long) and at codes (no valid code left). Each stage's
`removed.parquet` side file holds (stage, reason, case_id) of its removals; ids are those the shards use: the
deid stage keys pull's raw ids the way it keys the shards' (`deid.id_columns`), so every id on this page can be
looked up in `quarantine/` by whoever holds the key, and none is an identifier in the clear. Counts by stage and
reason, and ids: no record content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from datakit.rundir import REMOVED, REMOVED_HTML, REMOVED_JSON, RunDir, atomic_write_json

REMOVED_SCHEMA = {"stage": pl.String, "reason": pl.String, "case_id": pl.String}
FILTERED = "filtered:review_status"  # the reason of rows validation.review_status left out
STAGES_BEFORE_LEAKAGE = ("pull", "deid", "codes")
MAX_IDS_SHOWN = 200  # per reason on the HTML page; the JSON lists all


def removed_table(stage: str, quarantine: pl.DataFrame | None, filtered: pl.DataFrame | None = None) -> pl.DataFrame:
    """(stage, reason, case_id): one row per removed row and reason (a row with two reasons counts under both)."""
    parts = [pl.DataFrame(schema=REMOVED_SCHEMA)]
    if quarantine is not None and quarantine.height:
        parts.append(
            quarantine.select(
                pl.lit(stage).alias("stage"),
                pl.col("reason").cast(pl.String).str.split("; "),
                pl.col("case_id").cast(pl.String),
            ).explode("reason")
        )
    if filtered is not None and filtered.height:
        parts.append(
            filtered.select(
                pl.lit(stage).alias("stage"),
                pl.lit(FILTERED).alias("reason"),
                pl.col("case_id").cast(pl.String),
            )
        )
    return pl.concat(parts).sort("stage", "reason", "case_id", nulls_last=True)


def write_removed(folder: Path, table: pl.DataFrame) -> None:
    table.select(*REMOVED_SCHEMA).write_parquet(folder / REMOVED)


def read_removed(run_dir: Path, stage: str) -> pl.DataFrame | None:
    path = RunDir(run_dir).stage_dir(stage) / REMOVED
    return pl.read_parquet(path) if path.is_file() else None


def removed_summary(run_dir: Path) -> dict[str, Any] | None:
    """Counts by stage and reason, and the ids; None when no stage before leakage wrote its side file. Pull's
    own file holds raw ids: it is read only through deid's (keyed) copy."""
    tables = [t for s in ("deid", "codes") if (t := read_removed(run_dir, s)) is not None]
    if not tables:
        return None
    table = pl.concat(tables)
    stats = {s: (RunDir(run_dir).record(s) or {}) for s in STAGES_BEFORE_LEAKAGE}
    by_stage: dict[str, Any] = {}
    for stage in STAGES_BEFORE_LEAKAGE:
        rows = table.filter(pl.col("stage") == stage)
        reasons = rows.group_by("reason").agg(pl.col("case_id").sort()).sort("reason")
        by_stage[stage] = {
            "rows_in": stats[stage].get("rows_in"),
            "rows_out": stats[stage].get("rows_out"),
            "rows_removed": rows["case_id"].n_unique() if rows.height else 0,
            "by_reason": {r: {"rows": len(ids), "case_ids": ids} for r, ids in reasons.iter_rows()},
        }
    return {
        "meaning": "rows removed before the leakage stage, by stage and reason (a row with two reasons is listed "
        "under both); ids are keyed as in the shards (deid.id_columns) unless the recipe keeps them "
        "(deid.keep_columns); the rows themselves are in quarantine/<stage>.parquet",
        "rows_removed": sum(v["rows_removed"] for v in by_stage.values()),
        "stages": by_stage,
    }


def write_removed_report(run_dir: Path) -> dict[str, Path]:
    """reports/removed.json and reports/removed.html (nothing when the run has no side files yet)."""
    summary = removed_summary(run_dir)
    if summary is None:
        return {}
    rd = RunDir(run_dir)
    paths = {"removed_json": rd.report(REMOVED_JSON), "removed_html": rd.report(REMOVED_HTML)}
    atomic_write_json(paths["removed_json"], summary)
    env = Environment(loader=PackageLoader("datakit.report", "templates"), autoescape=select_autoescape(["html"]))
    html = env.get_template("removed.html").render(s=summary, max_ids=MAX_IDS_SHOWN, run=run_dir.name)
    tmp = paths["removed_html"].with_name(f".{REMOVED_HTML}.tmp")
    tmp.write_text(html)
    tmp.replace(paths["removed_html"])
    return paths

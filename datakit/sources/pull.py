"""The `pull` stage: read the recipe's source, map it onto the case schema, validate, quarantine.

File and sample sources are read whole. Database sources (supabase, postgres) are pulled by keyset pages into
`<run>/pull_state/` (resumable, incremental; see `datakit.sources.incremental`), so the stage always runs for
them: the data behind an unchanged recipe changes. Its output is byte-identical when the data did not change, so
the stages after it are still skipped then.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from datakit.recipe import SCHEMA_COLUMNS, Database, FilesSource, Mapped, PostgresSource, Recipe, SupabaseSource
from datakit.report.removed import removed_table, write_removed
from datakit.rundir import file_sha256
from datakit.runner import StageContext, StageResult
from datakit.schema import LIST_COLUMNS, conform, validate
from datakit.sources import read_source
from datakit.sources.dates import check_text_dates
from datakit.task import pull_checks


def pull_derived(recipe: Recipe) -> dict[str, Any]:
    """A files source's input files by content (its recipe keys are the stage's hashed slice)."""
    config: dict[str, Any] = {}
    if isinstance(recipe.source, FilesSource):
        from datakit.sources.files import resolve_paths

        # Content, not mtime: a copied or touched file with the same bytes does not force a re-pull.
        config["files"] = {str(p): file_sha256(p) for p in resolve_paths(recipe.source.path, recipe.source.exclude)}
    return config


def pull_is_volatile(recipe: Recipe) -> bool:
    """A database changes behind an unchanged recipe: its pull runs every time."""
    return isinstance(recipe.source, Database)


def selection(cfg: Database, recipe: Recipe) -> tuple[list[str], set[str]]:
    """Source columns to select, and those that must exist (explicitly mapped, keys, filters, required ones)."""
    wanted: list[str] = []
    required: set[str] = {cfg.source_column("case_id"), cfg.source_column("updated_at")}
    needed = recipe.required_columns()
    for name in (*SCHEMA_COLUMNS, *recipe.extra_columns()):
        if name in cfg.defaults and name not in cfg.columns:
            continue
        column = cfg.source_column(name)
        wanted.append(column)
        if name in cfg.columns or name in needed:
            required.add(column)
    for f in cfg.filters:
        if f.column not in wanted:
            wanted.append(f.column)
        required.add(f.column)
    return wanted, required


def _reader(cfg: Database, recipe: Recipe) -> Any:
    wanted, required = selection(cfg, recipe)
    if isinstance(cfg, SupabaseSource):
        from datakit.sources.supabase import SupabaseReader

        return SupabaseReader(cfg, wanted, required)
    assert isinstance(cfg, PostgresSource)
    from datakit.sources.postgres import PostgresReader

    return PostgresReader(cfg, wanted, required)


def read_database(cfg: Database, ctx: StageContext) -> tuple[pl.DataFrame, dict[str, Any]]:
    from datakit.sources.files import map_columns
    from datakit.sources.incremental import pull

    reader = _reader(cfg, ctx.recipe)
    try:
        result = pull(reader, cfg, ctx.run_dir, on_rows=ctx.advance)
    finally:
        reader.close()
    rows = result.rows if result.rows.width else pl.DataFrame({c: [] for c in reader.columns})
    return map_columns(rows, cfg, cfg.table, ctx.recipe.extra_columns()), result.stats


def check_dates(raw: pl.DataFrame, source: Mapped) -> None:
    """Text dates are ISO unless the recipe names their format: a column in another format is refused (dates.py)."""
    for name, knob, fmt, timestamp in (
        ("exam_date", "source.date_format", source.date_format, False),
        ("updated_at", "source.timestamp_format", source.timestamp_format, True),
    ):
        if fmt is None and name in raw.columns:
            mapped = source.columns.get(name)
            label = f"{name} (source column '{mapped}')" if mapped else name
            check_text_dates(raw[name], label, knob, timestamp)


OTHER_SEPARATORS = (",", "|", "/", " ")


def separator_suspects(cases: pl.DataFrame, separator: str) -> dict[str, dict[str, Any]]:
    """Code-list columns whose items still hold another separator (`R10.11,K80.20` read with ';'): column ->
    rows and the separator seen, for a warning that names source.list_separator (codes would quarantine them
    as unknown)."""
    out: dict[str, dict[str, Any]] = {}
    for column in LIST_COLUMNS:
        if column not in cases.columns or not cases.height:
            continue
        for other in OTHER_SEPARATORS:
            if other == separator:
                continue
            rows = int(
                cases.select(
                    pl.col(column).list.eval(pl.element().str.contains(other, literal=True)).list.any().sum()
                ).item()
                or 0
            )
            if rows:
                out[column] = {"rows": rows, "separator": other, "read_with": separator}
                break
    return out


def run_pull(ctx: StageContext) -> StageResult:
    recipe = ctx.recipe
    source = recipe.source
    extra = recipe.extra_columns()
    pulled: dict[str, Any] = {}
    if isinstance(source, Database):
        raw, pulled = read_database(source, ctx)
    else:
        ctx.phase("reading", None, "rows")
        raw = read_source(source, extra)
        ctx.set_total(raw.height)
        ctx.advance(raw.height)
    separator = source.list_separator if isinstance(source, Mapped) else ";"
    date_format = source.date_format if isinstance(source, Mapped) else None
    timestamp_format = source.timestamp_format if isinstance(source, Mapped) else None
    if isinstance(source, Mapped):
        check_dates(raw, source)
    checked = validate(
        conform(raw, separator, date_format, extra, timestamp_format),
        recipe.required_columns(),
        recipe.validation.review_status,
        extra,
        pull_checks(recipe),
    )
    ctx.write(checked.cases)
    # raw ids, as pulled: the deid stage keys them for the auditor's removed page (datakit.report.removed)
    write_removed(ctx.out_dir, removed_table("pull", checked.quarantine, checked.filtered_rows))
    suspects = separator_suspects(checked.cases, separator)
    watermark = checked.cases["updated_at"].max() if checked.cases.height else None
    stats: dict[str, Any] = {
        "rows_read": raw.height,
        "filtered_review_status": checked.filtered,
        "quarantine_reasons": checked.reasons,
        "source_watermark": str(watermark) if watermark is not None else None,
        **({"list_separator_suspects": suspects} if suspects else {}),
    }
    if pulled:
        stats["pull"] = pulled
        stats["source_watermark"] = (pulled.get("watermark") or {}).get("updated_at")
    return StageResult(rows_in=raw.height, rows_out=checked.cases.height, quarantine=checked.quarantine, stats=stats)

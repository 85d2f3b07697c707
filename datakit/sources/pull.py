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
from datakit.rundir import file_sha256
from datakit.runner import StageContext, StageResult
from datakit.schema import conform, validate
from datakit.sources import read_source
from datakit.task import pull_checks


def pull_config(recipe: Recipe) -> dict[str, Any]:
    config: dict[str, Any] = {
        "task": recipe.task,
        **({"text": recipe.text.model_dump(mode="json")} if recipe.text is not None else {}),
        **(
            {"source_split": recipe.split.model_dump(mode="json", include={"source_column", "source_splits"})}
            if recipe.split.source_column
            else {}
        ),
        "source": recipe.source.model_dump(mode="json"),
        "validation": recipe.validation.model_dump(mode="json"),
    }
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
    checked = validate(
        conform(raw, separator, date_format, extra),
        recipe.required_columns(),
        recipe.validation.review_status,
        extra,
        pull_checks(recipe),
    )
    ctx.write(checked.cases)
    watermark = checked.cases["updated_at"].max() if checked.cases.height else None
    stats: dict[str, Any] = {
        "rows_read": raw.height,
        "filtered_review_status": checked.filtered,
        "quarantine_reasons": checked.reasons,
        "source_watermark": str(watermark) if watermark is not None else None,
    }
    if pulled:
        stats["pull"] = pulled
        stats["source_watermark"] = (pulled.get("watermark") or {}).get("updated_at")
    return StageResult(rows_in=raw.height, rows_out=checked.cases.height, quarantine=checked.quarantine, stats=stats)

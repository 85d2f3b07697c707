"""The `pull` stage: read the recipe's source, map it onto the case schema, validate, quarantine."""

from __future__ import annotations

from typing import Any

from datakit.recipe import FilesSource, Recipe
from datakit.runner import StageContext, StageResult, file_sha256
from datakit.schema import conform, validate
from datakit.sources import read_source


def pull_config(recipe: Recipe) -> dict[str, Any]:
    config: dict[str, Any] = {
        "task": recipe.task,
        "source": recipe.source.model_dump(mode="json"),
        "validation": recipe.validation.model_dump(mode="json"),
    }
    if isinstance(recipe.source, FilesSource):
        from datakit.sources.files import resolve_paths

        # Content, not mtime: a copied or touched file with the same bytes does not force a re-pull.
        config["files"] = {str(p): file_sha256(p) for p in resolve_paths(recipe.source.path)}
    return config


def run_pull(ctx: StageContext) -> StageResult:
    recipe = ctx.recipe
    raw = read_source(recipe.source)
    ctx.set_total(raw.height)
    separator = recipe.source.list_separator if isinstance(recipe.source, FilesSource) else ";"
    date_format = recipe.source.date_format if isinstance(recipe.source, FilesSource) else None
    checked = validate(conform(raw, separator, date_format), recipe.task, recipe.validation.review_status)
    ctx.write(checked.cases)
    ctx.advance(raw.height)
    watermark = checked.cases["updated_at"].max() if checked.cases.height else None
    stats = {
        "rows_read": raw.height,
        "filtered_review_status": checked.filtered,
        "quarantine_reasons": checked.reasons,
        "source_watermark": str(watermark) if watermark is not None else None,
    }
    return StageResult(rows_in=raw.height, rows_out=checked.cases.height, quarantine=checked.quarantine, stats=stats)

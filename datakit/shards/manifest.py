"""manifest.json: what a trainer and `datakit verify` need to trust the shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datakit import __version__
from datakit.rundir import file_sha256

if TYPE_CHECKING:
    from datakit.recipe import Recipe
from datakit.shards.layout import (
    FORMAT,
    INDEX,
    INDEX_SCHEMA,
    MANIFEST,
    SHARD_SCHEMA,
    SPLITS,
    schema_description,
)

TOKEN_ESTIMATE = "ceil(chars / 4) + 4 per message"


def build_manifest(
    out: Path, recipe: Recipe, written: list[dict[str, Any]], stage_recipes: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`stage_recipes`: stage -> {recipe_hash, recipe} of the recipe that made each stage's output; the
    manifest lists every distinct recipe once, under its hash."""
    made_with = stage_recipes or {}
    shards = [
        {
            "file": w["file"],
            "split": w["split"],
            "rows": w["rows"],
            "bytes": (out / w["file"]).stat().st_size,
            "sha256": file_sha256(out / w["file"]),
        }
        for w in written
    ]
    splits = {
        s: {
            "rows": sum(x["rows"] for x in shards if x["split"] == s),
            "shards": sum(1 for x in shards if x["split"] == s),
        }
        for s in SPLITS
    }
    return {
        "format": FORMAT,
        "datakit_version": __version__,
        "recipe_name": recipe.name,
        "recipe_hash": recipe.hash(),
        "stage_recipe_hashes": {stage: r["recipe_hash"] for stage, r in made_with.items()},
        "recipes": {r["recipe_hash"]: r["recipe"] for r in made_with.values() if r["recipe_hash"]},
        "task": recipe.task,
        "seed": recipe.seed,
        "world_size": recipe.shards.world_size,
        "row_group_size": recipe.shards.row_group_size,
        "compression": f"zstd({recipe.shards.compression_level})",
        "token_estimate": TOKEN_ESTIMATE,
        "splits": splits,
        "shards": shards,
        "index": {
            "file": INDEX,
            "rows": sum(x["rows"] for x in shards),
            "sha256": file_sha256(out / INDEX),
            "schema": schema_description(INDEX_SCHEMA),
        },
        "schema": schema_description(SHARD_SCHEMA),
    }


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / MANIFEST).read_text()))

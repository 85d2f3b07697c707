"""The `shard` stage: Parquet shards per split, a manifest, an example index and a dataset card.

Shard counts are multiples of `world_size` so every data-parallel rank reads the same number of files;
rows are spread evenly (shard sizes differ by at most one row). Row order inside a split is a seeded
shuffle by sha256(seed:example_id), so the same inputs, recipe and seed give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datakit.content import sha256_hex
from datakit.pipeline import PIPELINES
from datakit.recipe import Recipe, Shards
from datakit.rundir import RunDir
from datakit.runner import StageContext, StageResult
from datakit.shards.card import write_card
from datakit.shards.layout import INDEX, INDEX_SCHEMA, SHARD_SCHEMA, SPLITS, shard_name
from datakit.shards.manifest import build_manifest, write_manifest


def shard_config(recipe: Recipe) -> dict[str, Any]:
    return {
        "shards": recipe.shards.model_dump(mode="json"),
        "seed": recipe.seed,
        "recipe_hash": recipe.hash(),
    }


def shard_count(rows: int, cfg: Shards) -> int:
    per_rank_rows = cfg.rows_per_shard * cfg.world_size
    return cfg.world_size * max(1, -(-rows // per_rank_rows))


def to_shard_table(frame: pl.DataFrame) -> pa.Table:
    table = frame.select(SHARD_SCHEMA.names).to_arrow(compat_level=pl.CompatLevel.oldest())
    return table.cast(SHARD_SCHEMA)


def write_table(table: pa.Table, path: Path, cfg: Shards) -> None:
    pq.write_table(
        table,
        path,
        row_group_size=cfg.row_group_size,
        compression="zstd",
        compression_level=cfg.compression_level,
        write_statistics=True,
    )


def write_split(
    examples: pl.DataFrame, split: str, out: Path, cfg: Shards, seed: int, advance: Any
) -> list[dict[str, Any]]:
    rows = examples.height
    count = shard_count(rows, cfg)
    ordered = examples.with_columns(sha256_hex(examples["example_id"], prefix=f"{seed}:").alias("_order"))
    ordered = ordered.sort("_order").drop("_order")
    written = []
    for i in range(count):
        start, stop = rows * i // count, rows * (i + 1) // count
        name = shard_name(split, i, count)
        part = ordered.slice(start, stop - start)
        write_table(to_shard_table(part), out / name, cfg)
        written.append(
            {
                "file": name,
                "split": split,
                "rows": part.height,
                "example_ids": part["example_id"],
                "case_ids": part["case_id"],
                "hashes": part["case_content_hash"],
            }
        )
        advance(part.height)
    return written


def write_index(written: list[dict[str, Any]], out: Path, cfg: Shards) -> None:
    index = pl.DataFrame(
        {
            "example_id": pl.concat([w["example_ids"] for w in written]),
            "case_id": pl.concat([w["case_ids"] for w in written]),
            "case_content_hash": pl.concat([w["hashes"] for w in written]),
            "split": [w["split"] for w in written for _ in range(w["rows"])],
            "shard": [w["file"] for w in written for _ in range(w["rows"])],
        },
        schema={f.name: pl.String for f in INDEX_SCHEMA},
    )
    write_table(index.to_arrow().cast(INDEX_SCHEMA), out / INDEX, cfg)


def stage_recipes(rd: RunDir, recipe: Recipe) -> dict[str, dict[str, Any]]:
    """The recipe each stage's output was made with (hash + the recipe), this stage's own included."""
    out: dict[str, dict[str, Any]] = {}
    for stage in PIPELINES[recipe.task]:
        record = {"recipe_hash": recipe.hash(), "recipe": recipe.canonical()} if stage == "shard" else rd.record(stage)
        if record is not None:
            out[stage] = {"recipe_hash": record.get("recipe_hash"), "recipe": record.get("recipe")}
    return out


def run_shard(ctx: StageContext) -> StageResult:
    recipe = ctx.recipe
    examples = ctx.read_input()
    ctx.phase("writing shards", examples.height, "examples")
    written: list[dict[str, Any]] = []
    for split in SPLITS:
        part = examples.filter(pl.col("split") == split)
        if part.height:
            written += write_split(part, split, ctx.out_dir, recipe.shards, recipe.seed, ctx.advance)
    unknown = set(examples["split"].unique().to_list()) - set(SPLITS)
    if unknown:
        raise ValueError(f"examples carry unknown split names: {sorted(unknown)}")
    write_index(written, ctx.out_dir, recipe.shards)
    manifest = build_manifest(ctx.out_dir, recipe, written, stage_recipes(ctx.rundir, recipe))
    manifest["key"] = {"key_id": ctx.key.key_id, "demo_key": ctx.key.is_demo}
    write_manifest(ctx.out_dir, manifest)
    write_card(ctx.out_dir, recipe, manifest, examples)
    stats = {
        "splits": manifest["splits"],
        "shards_written": len(written),
        "world_size": recipe.shards.world_size,
    }
    return StageResult(rows_in=examples.height, rows_out=sum(w["rows"] for w in written), stats=stats)

"""The `shard` stage: Parquet shards per split, a manifest, an example index and a dataset card.

Shard counts are multiples of `world_size` so every data-parallel rank reads the same number of files;
rows are spread evenly (shard sizes differ by at most one row). Row order inside a split is a seeded
shuffle by sha256(seed:example_id), so the same inputs, recipe and seed give byte-identical files.
"""

from __future__ import annotations

import shutil
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


SHARD_KEYS = ["example_id", "split", "case_id", "case_content_hash"]
CARD_COLUMNS = ["n_prompt_tokens", "n_completion_tokens", "tags"]  # what the dataset card reads


def shard_plan(keys: pl.DataFrame, cfg: Shards, seed: int) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """(plan, shards). `plan`: (example_id, split, case_id, case_content_hash, shard, position) in writing order:
    per split, a seeded shuffle by sha256(seed:example_id), cut into `shard_count` shards whose sizes differ by at
    most one row; `shards`: (split, file) of every shard in writing order, the empty ones too (a split of fewer
    rows than world_size still has a file per rank)."""
    plans, shards = [], []
    for split in SPLITS:
        part = keys.filter(pl.col("split") == split)
        if not part.height:
            continue
        rows, count = part.height, shard_count(part.height, cfg)
        ordered = (
            part.with_columns(sha256_hex(part["example_id"], prefix=f"{seed}:").alias("_order"))
            .sort("_order")
            .drop("_order")
            .with_row_index("position")
        )
        shard = pl.col("position").cast(pl.Int64)
        # row r of `rows` goes to shard i with rows*i//count <= r < rows*(i+1)//count
        index = ((shard + 1) * count - 1) // rows
        names = pl.Series([shard_name(split, i, count) for i in range(count)], dtype=pl.String)
        shards += [(split, name) for name in names]
        plans.append(ordered.with_columns(names.gather(ordered.select(index).to_series()).alias("shard")))
    columns = [*SHARD_KEYS, "shard", "position"]
    if not plans:
        empty = pl.DataFrame(schema={c: pl.String for c in SHARD_KEYS} | {"shard": pl.String, "position": pl.UInt32})
        return empty, shards
    return pl.concat([p.select(columns) for p in plans]), shards


def write_shards(
    ctx: StageContext, plan: pl.DataFrame, shards: list[tuple[str, str]], cfg: Shards
) -> list[dict[str, Any]]:
    """Every shard of `shards` (rows placed by `plan`), reading the examples one part at a time: each part's rows
    are spilled to the shard they go to, then each shard is put together from its pieces in plan order and
    written. Memory holds one part and one shard, never every prompt; the files are the ones a whole-frame sort
    and slice writes."""
    spill = ctx.out_dir / ".spill"
    where = plan.select("example_id", "shard", "position")
    try:
        empty: pl.DataFrame | None = None  # the examples' columns, for a shard without rows
        for k, rows in enumerate(ctx.iter_input(PART_BATCH)):
            empty = rows.clear() if empty is None else empty
            placed = rows.join(where, on="example_id", how="inner")
            for (shard,), piece in placed.partition_by("shard", as_dict=True, maintain_order=True).items():
                folder = spill / str(shard)
                folder.mkdir(parents=True, exist_ok=True)
                piece.write_ipc(folder / f"{k:06d}.arrow")
        assert empty is not None
        by_shard = plan.partition_by("shard", as_dict=True, maintain_order=True)
        written = []
        for split, shard in shards:
            keys = by_shard.get((shard,), plan.clear())
            pieces = sorted((spill / shard).glob("*.arrow"))
            part = pl.concat([pl.read_ipc(f) for f in pieces]).sort("position").rechunk() if pieces else empty
            write_table(to_shard_table(part), ctx.out_dir / shard, cfg)
            shutil.rmtree(spill / shard, ignore_errors=True)
            written.append(
                {
                    "file": shard,
                    "split": split,
                    "rows": keys.height,
                    "example_ids": keys["example_id"],
                    "case_ids": keys["case_id"],
                    "hashes": keys["case_content_hash"],
                }
            )
            ctx.advance(keys.height)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return written


PART_BATCH = 100_000  # example rows read at a time while spilling them to their shards


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
    small = ctx.rundir.read_stage(ctx.input_stage or "assemble", columns=[*SHARD_KEYS, *CARD_COLUMNS])
    unknown = set(small["split"].unique().to_list()) - set(SPLITS)
    if unknown:
        raise ValueError(f"examples carry unknown split names: {sorted(unknown)}")
    ctx.phase("writing shards", small.height, "examples")
    plan, shards = shard_plan(small.select(SHARD_KEYS), recipe.shards, recipe.seed)
    written = write_shards(ctx, plan, shards, recipe.shards)
    write_index(written, ctx.out_dir, recipe.shards)
    manifest = build_manifest(ctx.out_dir, recipe, written, stage_recipes(ctx.rundir, recipe))
    manifest["key"] = {"key_id": ctx.key.key_id, "demo_key": ctx.key.is_demo}
    write_manifest(ctx.out_dir, manifest)
    write_card(ctx.out_dir, recipe, manifest, small)
    stats = {
        "splits": manifest["splits"],
        "shards_written": len(written),
        "world_size": recipe.shards.world_size,
    }
    return StageResult(rows_in=small.height, rows_out=sum(w["rows"] for w in written), stats=stats)

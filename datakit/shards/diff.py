"""`datakit diff RUN_A RUN_B`: what changed between two dataset versions, in ids, hashes and counts only.

Both sides are shards folders (or run directories holding one); each is verified against its manifest first, so a
diff never describes files that were edited after they were written. Per case (by `case_id`, the id the shards
carry): added, removed, moved to another split, content changed (`case_content_hash`), labels changed (the
sha256 of its completions: the codes of a coding task, the target text of a text task), prompts changed (the
retrieved few-shot examples follow the rest of the corpus). Per shard file:
added, removed, rewritten, unchanged. Two builds keyed with different keys carry different ids for the same
case: the diff says so instead of reporting every case as removed and added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from datakit.shards.layout import INDEX
from datakit.shards.manifest import read_manifest
from datakit.shards.verify import shards_folder, verify

SHOWN_IDS = 20  # ids per section on the console; --json and --ids list all


def _cases(folder: Path, shards: list[str]) -> pl.DataFrame:
    """(case_id, split, content, labels): one row per case of a shards folder."""
    index = pl.read_parquet(folder / INDEX, columns=["example_id", "case_id", "case_content_hash", "split"])
    completions = (
        pl.scan_parquet([folder / f for f in shards])
        .select(
            "example_id",
            pl.col("completion").list.eval(pl.element().struct.field("content")).list.join("\x1f").alias("labels"),
            pl.col("prompt").list.eval(pl.element().struct.field("content")).list.join("\x1f").alias("prompts"),
        )
        .collect()
    )
    joined = index.join(completions, on="example_id", how="left")
    return (
        joined.group_by("case_id")
        .agg(
            pl.col("split").min(),
            pl.col("case_content_hash").min().alias("content"),
            pl.col("labels").fill_null("").sort().str.join("\x1e").hash().alias("labels"),
            pl.col("prompts").fill_null("").sort().str.join("\x1e").hash().alias("prompts"),
        )
        .sort("case_id")
    )


def _ids(frame: pl.DataFrame) -> list[str]:
    return frame["case_id"].sort().to_list()


def diff_runs(a: Path, b: Path) -> dict[str, Any]:
    """The differences between two verified shards folders (ids, hashes, counts)."""
    folders = [shards_folder(a), shards_folder(b)]
    for folder in folders:
        verify(folder)
    manifests = [read_manifest(f) for f in folders]
    names = [[s["file"] for s in m["shards"]] for m in manifests]
    left, right = (_cases(f, n) for f, n in zip(folders, names, strict=True))
    both = left.join(right, on="case_id", suffix="_b")
    added = right.join(left, on="case_id", how="anti")
    removed = left.join(right, on="case_id", how="anti")
    moved = both.filter(pl.col("split") != pl.col("split_b"))
    moves = moved.group_by("split", "split_b").agg(pl.col("case_id").sort()).sort("split", "split_b")
    content = both.filter(pl.col("content") != pl.col("content_b"))
    labels = both.filter(pl.col("labels") != pl.col("labels_b"))
    prompts = both.filter(pl.col("prompts") != pl.col("prompts_b"))
    files = [{s["file"]: s["sha256"] for s in m["shards"]} for m in manifests]
    keys = [m.get("key", {}).get("key_id") for m in manifests]
    return {
        "a": {"folder": str(folders[0]), "recipe_hash": manifests[0]["recipe_hash"], "key_id": keys[0]},
        "b": {"folder": str(folders[1]), "recipe_hash": manifests[1]["recipe_hash"], "key_id": keys[1]},
        "same_recipe": manifests[0]["recipe_hash"] == manifests[1]["recipe_hash"],
        "comparable_ids": keys[0] == keys[1],
        "identical": not (added.height or removed.height or moved.height or content.height or labels.height)
        and not prompts.height
        and files[0] == files[1],
        "cases": {"a": left.height, "b": right.height, "in_both": both.height},
        "examples_per_split": {
            "a": {k: v["rows"] for k, v in sorted(manifests[0]["splits"].items())},
            "b": {k: v["rows"] for k, v in sorted(manifests[1]["splits"].items())},
        },
        "added": _ids(added),
        "removed": _ids(removed),
        "moved_split": [{"from": f, "to": t, "case_ids": ids} for f, t, ids in moves.iter_rows()],
        "content_changed": _ids(content),
        "labels_changed": _ids(labels),
        # the prompt holds retrieved few-shot examples: adding or removing other cases changes them
        "prompts_changed": _ids(prompts),
        "shards": {
            "added": sorted(set(files[1]) - set(files[0])),
            "removed": sorted(set(files[0]) - set(files[1])),
            "rewritten": sorted(f for f in set(files[0]) & set(files[1]) if files[0][f] != files[1][f]),
            "unchanged": len([f for f in set(files[0]) & set(files[1]) if files[0][f] == files[1][f]]),
        },
    }


def id_table(diff: dict[str, Any]) -> pl.DataFrame:
    """(change, case_id, from_split, to_split): every case id the diff names, for `--ids FILE`."""
    rows: list[dict[str, str | None]] = []
    for change in ("added", "removed", "content_changed", "labels_changed", "prompts_changed"):
        rows += [{"change": change, "case_id": c, "from_split": None, "to_split": None} for c in diff[change]]
    for move in diff["moved_split"]:
        rows += [
            {"change": "moved_split", "case_id": c, "from_split": move["from"], "to_split": move["to"]}
            for c in move["case_ids"]
        ]
    schema = {"change": pl.String, "case_id": pl.String, "from_split": pl.String, "to_split": pl.String}
    return pl.DataFrame(rows, schema=schema).sort("change", "case_id")

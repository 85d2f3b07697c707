"""`datakit inspect`: counts, length percentiles and tag counts of a shards folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from datakit.shards.card import tag_counts, token_percentiles
from datakit.shards.layout import SPLITS
from datakit.shards.manifest import read_manifest
from datakit.shards.verify import verify


def inspect(path: Path) -> dict[str, Any]:
    """Verify the shards against their manifest first (a changed byte stops here), then describe them."""
    checked = verify(path)
    folder = Path(str(checked["folder"]))
    manifest = read_manifest(folder)
    files = [folder / s["file"] for s in manifest["shards"]]
    frame = pl.read_parquet(files, columns=["split", "sample_weight", "n_prompt_tokens", "n_completion_tokens", "tags"])
    per_split = {}
    for split in SPLITS:
        part = frame.filter(pl.col("split") == split)
        per_split[split] = {
            "examples": part.height,
            "shards": manifest["splits"][split]["shards"],
            "sample_weight_sum": round(float(part["sample_weight"].sum()), 3),
            "tokens": token_percentiles(part) if part.height else None,
        }
    return {
        "folder": str(folder),
        "verified": {"shards": checked["shards"], "rows": checked["rows"], "against": "manifest.json sha256"},
        "recipe": manifest["recipe_name"],
        "task": manifest["task"],
        "examples": frame.height,
        "splits": per_split,
        "tags": tag_counts(frame),
    }

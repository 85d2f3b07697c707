"""`datakit verify`: re-check shards against their manifest (hashes, rows, schema, layout, messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from datakit.errors import VerifyError
from datakit.rundir import file_sha256
from datakit.shards.layout import (
    FORMAT,
    INDEX,
    MANIFEST,
    SHARD_NAME,
    SHARD_SCHEMA,
    SPLITS,
    schema_description,
)
from datakit.shards.manifest import read_manifest


def shards_folder(path: Path) -> Path:
    """Accept a shards folder or a run directory holding one."""
    if (path / MANIFEST).is_file():
        return path
    if (path / "shards" / MANIFEST).is_file():
        return path / "shards"
    raise VerifyError(f"no {MANIFEST} in {path} or {path / 'shards'}: is this a datakit run or shards folder?")


def _check_rows(folder: Path, listed: dict[str, dict[str, Any]]) -> list[str]:
    """One read of every shard: each holds only its own split's rows, and its messages are well formed."""
    problems = []
    frame = (
        pl.scan_parquet([folder / f for f in sorted(listed)], include_file_paths="_file")
        .select("example_id", "split", "prompt", "completion", "_file")
        .collect()
    )
    per_file = frame.group_by("_file").agg(pl.col("split").unique().sort())
    for file, splits in per_file.sort("_file").iter_rows():
        name = Path(file).name
        if splits != [listed[name]["split"]]:
            problems.append(f"{name}: holds rows of split(s) {splits}")
    roles = frame.select(
        pl.col("prompt").list.eval(pl.element().struct.field("role")).list.join(",").alias("p"),
        pl.col("completion").list.eval(pl.element().struct.field("role")).list.join(",").alias("c"),
        pl.col("completion").list.first().struct.field("content").str.len_chars().alias("n"),
    )
    bad_prompt = roles.filter(~pl.col("p").str.contains(r"^(system,)?(user,assistant,)*user$")).height
    bad_completion = roles.filter(pl.col("c") != "assistant").height
    empty = roles.filter(pl.col("n").fill_null(0) == 0).height
    if bad_prompt:
        problems.append(f"{bad_prompt} prompts are not [system?, (user, assistant)*, user] messages")
    if bad_completion:
        problems.append(f"{bad_completion} completions are not exactly one assistant message")
    if empty:
        problems.append(f"{empty} completions are empty")
    dupes = frame.height - frame["example_id"].n_unique()
    if dupes:
        problems.append(f"{dupes} example_ids appear more than once")
    return problems


def verify(path: Path) -> dict[str, object]:
    """Return a summary when everything checks out; raise VerifyError listing every problem otherwise."""
    folder = shards_folder(path)
    manifest = read_manifest(folder)
    problems: list[str] = []
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("schema") != schema_description(SHARD_SCHEMA):
        problems.append("manifest schema differs from this datakit's shard schema")
    listed = {s["file"]: s for s in manifest["shards"]}
    on_disk = {p.name for p in folder.glob("*.parquet") if p.name != INDEX}
    for extra in sorted(on_disk - set(listed)):
        problems.append(f"{extra} is not listed in the manifest")
    world = int(manifest["world_size"])
    for split in SPLITS:
        files = [s for s in manifest["shards"] if s["split"] == split]
        if files and len(files) % world:
            problems.append(f"{split}: {len(files)} shards is not a multiple of world_size {world}")
        if sum(s["rows"] for s in files) != manifest["splits"][split]["rows"]:
            problems.append(f"{split}: shard rows do not add up to the manifest's split count")
    for name, entry in sorted(listed.items()):
        file = folder / name
        m = SHARD_NAME.match(name)
        if not file.is_file():
            problems.append(f"{name} is missing")
            continue
        if m is None or m["split"] != entry["split"]:
            problems.append(f"{name}: name does not match split {entry['split']!r}")
        if file_sha256(file) != entry["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest (file changed or corrupt)")
            continue
        meta = pq.read_metadata(file)
        if meta.num_rows != entry["rows"]:
            problems.append(f"{name}: {meta.num_rows} rows, manifest says {entry['rows']}")
        if not meta.schema.to_arrow_schema().equals(SHARD_SCHEMA):
            problems.append(f"{name}: schema differs from the shard schema")
    index = folder / INDEX
    if not index.is_file() or file_sha256(index) != manifest["index"]["sha256"]:
        problems.append(f"{INDEX} is missing or differs from the manifest")
    if not problems:
        problems += _check_rows(folder, listed)
    if problems:
        raise VerifyError(f"{folder}: " + "; ".join(problems))
    return {
        "folder": str(folder),
        "shards": len(listed),
        "rows": sum(s["rows"] for s in listed.values()),
        "splits": {s: manifest["splits"][s]["rows"] for s in SPLITS},
    }

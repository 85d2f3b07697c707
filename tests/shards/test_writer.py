from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.errors import VerifyError
from datakit.recipe import Shards
from datakit.shards.inspect import inspect
from datakit.shards.layout import SHARD_NAME, SHARD_SCHEMA
from datakit.shards.verify import verify
from datakit.shards.writer import shard_count
from tests.conftest import coding_recipe, run_recipe


def test_shard_counts_are_multiples_of_world_size() -> None:
    cfg = Shards(world_size=8, rows_per_shard=100)
    assert shard_count(1, cfg) == 8 and shard_count(800, cfg) == 8 and shard_count(801, cfg) == 16
    assert shard_count(0, Shards(world_size=3)) == 3


def test_layout_schema_and_row_groups(sample_run: Path) -> None:
    shards = sample_run / "shards"
    manifest = json.loads((shards / "manifest.json").read_text())
    files = sorted(p.name for p in shards.glob("*-of-*.parquet"))
    assert files == sorted(s["file"] for s in manifest["shards"])
    for name in files:
        m = SHARD_NAME.match(name)
        assert m and int(m["count"]) % manifest["world_size"] == 0
        meta = pq.ParquetFile(shards / name).metadata
        assert meta.schema.to_arrow_schema().equals(SHARD_SCHEMA)
        assert all(meta.row_group(i).num_rows <= 1000 for i in range(meta.num_row_groups))
        assert meta.row_group(0).column(0).compression == "ZSTD"
    sizes = [s["rows"] for s in manifest["shards"] if s["split"] == "train"]
    assert max(sizes) - min(sizes) <= 1  # every rank gets the same work
    index = pl.read_parquet(shards / "_examples_index.parquet")
    assert index.height == sum(s["rows"] for s in manifest["shards"])
    card = (shards / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and 'path: "train-*.parquet"' in card and "p50" in card


def test_same_recipe_and_seed_give_byte_identical_shards(tmp_path: Path) -> None:
    recipe = coding_recipe("source.n=700")
    run_recipe(recipe, tmp_path / "a")
    run_recipe(recipe, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a" / "shards").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b" / "shards").iterdir())
    for name in names:
        assert (tmp_path / "a" / "shards" / name).read_bytes() == (tmp_path / "b" / "shards" / name).read_bytes()
    run_recipe(coding_recipe("source.n=700", "seed=99"), tmp_path / "c")
    assert (tmp_path / "c" / "shards" / "manifest.json").read_bytes() != (
        tmp_path / "a" / "shards" / "manifest.json"
    ).read_bytes()


def test_verify_passes_and_catches_every_kind_of_damage(sample_run: Path, tmp_path: Path) -> None:
    assert verify(sample_run)["rows"] == verify(sample_run / "shards")["rows"] > 0
    manifest = json.loads((sample_run / "shards" / "manifest.json").read_text())
    first = manifest["shards"][0]["file"]

    def damaged(mutate) -> str:  # type: ignore[no-untyped-def]
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(sample_run / "shards", copy)
        mutate(copy)
        with pytest.raises(VerifyError) as info:
            verify(copy)
        return str(info.value)

    def flip_byte(d: Path) -> None:
        data = bytearray((d / first).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (d / first).write_bytes(bytes(data))

    assert "sha256 differs" in damaged(flip_byte)
    assert f"{first} is missing" in damaged(lambda d: (d / first).unlink())
    assert "not listed in the manifest" in damaged(lambda d: shutil.copy(d / first, d / "train-00099-of-00100.parquet"))
    assert "_examples_index.parquet is missing" in damaged(lambda d: (d / "_examples_index.parquet").unlink())

    def wrong_count(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text())
        m["splits"]["train"]["rows"] += 1
        (d / "manifest.json").write_text(json.dumps(m))

    assert "do not add up" in damaged(wrong_count)

    def bad_messages(d: Path) -> None:
        """A shard rewritten (and re-hashed in the manifest) with a wrong role, an empty answer and a repeated id."""
        rows = pq.read_table(d / first).to_pylist()
        rows[0]["prompt"][-1]["role"] = "assistant"
        rows[1]["completion"][0]["content"] = ""
        rows[2]["example_id"] = rows[3]["example_id"]
        pq.write_table(pa.Table.from_pylist(rows, schema=SHARD_SCHEMA), d / first)
        m = json.loads((d / "manifest.json").read_text())
        m["shards"][0]["sha256"] = hashlib.sha256((d / first).read_bytes()).hexdigest()
        (d / "manifest.json").write_text(json.dumps(m))

    found = damaged(bad_messages)
    assert "1 prompts are not [system?, (user, assistant)*, user]" in found
    assert "1 completions are empty" in found and "1 example_ids appear more than once" in found
    with pytest.raises(VerifyError, match=r"no manifest\.json"):
        verify(tmp_path)


def test_inspect_reports_counts_lengths_and_tags(sample_run: Path) -> None:
    info = inspect(sample_run)
    assert info["examples"] == sum(s["examples"] for s in info["splits"].values())
    train = info["splits"]["train"]
    assert train["tokens"]["n_prompt_tokens"]["p50"] > 100 and train["sample_weight_sum"] > train["examples"]
    assert info["tags"]["task:coding"] == info["examples"]

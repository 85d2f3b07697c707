"""A trainer's view: the shards load with Hugging Face `datasets` and hold chat messages TRL accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")


def check_messages(ds) -> None:  # type: ignore[no-untyped-def]
    for row in ds.select(range(min(50, len(ds)))):
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert row["completion"][0]["content"] and isinstance(row["sample_weight"], float)


def test_load_dataset_parquet_with_data_files(sample_run: Path, tmp_path: Path) -> None:
    shards = sample_run / "shards"
    manifest = json.loads((shards / "manifest.json").read_text())
    files = {s: str(shards / f"{s}-*.parquet") for s in ("train", "val", "test")}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path))
    for split in files:
        assert len(ds[split]) == manifest["splits"][split]["rows"]
    assert set(ds["train"].column_names) >= {
        "prompt",
        "completion",
        "sample_weight",
        "tags",
        "case_content_hash",
    }
    check_messages(ds["train"])


def test_load_dataset_from_the_folder_uses_the_card(sample_run: Path, tmp_path: Path) -> None:
    ds = datasets.load_dataset(str(sample_run / "shards"), cache_dir=str(tmp_path))
    manifest = json.loads((sample_run / "shards" / "manifest.json").read_text())
    assert {s: len(ds[s]) for s in ds} == {s: v["rows"] for s, v in manifest["splits"].items() if v["rows"]}
    check_messages(ds["val"])

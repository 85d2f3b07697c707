"""The shard schema and file naming shared by the writer, verify and inspect."""

from __future__ import annotations

import re

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SHARD_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("case_id", pa.string()),
        ("split", pa.string()),
        ("prompt", pa.list_(MESSAGE)),
        ("completion", pa.list_(MESSAGE)),
        ("sample_weight", pa.float64()),
        ("n_prompt_tokens", pa.int32()),
        ("n_completion_tokens", pa.int32()),
        ("tags", pa.list_(pa.string())),
        ("case_content_hash", pa.string()),
        ("pair_of", pa.string()),
        ("from_code", pa.string()),
        ("to_code", pa.string()),
        ("pair_kind", pa.string()),
        ("prompt_format", pa.string()),
        ("n_shots", pa.int32()),
        ("shot_case_ids", pa.list_(pa.string())),
        ("cpt_candidates", pa.list_(pa.string())),
        ("icd_candidates", pa.list_(pa.string())),
        ("cpt_gold_in_candidates", pa.list_(pa.bool_())),
        ("icd_gold_in_candidates", pa.list_(pa.bool_())),
    ]
)
INDEX_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("case_id", pa.string()),
        ("case_content_hash", pa.string()),
        ("split", pa.string()),
        ("shard", pa.string()),
    ]
)
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
CARD = "README.md"
INDEX = "_examples_index.parquet"  # leading underscore: data-file discovery (HF datasets) skips it
SHARD_NAME = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
FORMAT = "datakit-shards/1"


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def schema_description(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]

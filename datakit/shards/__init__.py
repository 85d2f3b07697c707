"""Shards: deterministic Parquet shards + manifest + dataset card for the trainer."""

"""What `datakit score` reads: a run's verified shards of one split, the case fields the slices and checks need,
its certificate, and a predictions file; and how predictions meet examples (every id accounted for)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from datakit.errors import DatakitError, column_listing
from datakit.rundir import CERTIFICATE, RunDir
from datakit.shards.layout import MANIFEST, SHARD_SCHEMA
from datakit.shards.manifest import read_manifest
from datakit.shards.verify import verify

PREDICTION_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
CASE_FIELDS = ("case_id", "exam_description", "report_text")
CASE_STAGES = ("leakage", "codes", "deid", "pull")  # the latest one a run has holds the text the prompts show


def user_message() -> pl.Expr:
    """The user turn of each example's prompt."""
    return (
        pl.col("prompt").list.last().struct.field("content")  # system, then user: the layout of every shard
    )


def gold_text() -> pl.Expr:
    """The gold answer: each example's completion text."""
    return pl.col("completion").list.first().struct.field("content")


class ScoreError(DatakitError):
    """Predictions or a run cannot be scored: unreadable file, missing column, uncertified run, bad split."""


@dataclass(frozen=True)
class ScoredRun:
    """A run as the scorer sees it: the task, one split's verified examples with the case fields, the train
    split's answers (for the majority floor), the certificate and the recipe."""

    root: Path
    task: str
    examples: pl.DataFrame  # the scored split: every shard column, plus exam_description and report_text
    train: pl.DataFrame  # the train split: example_id, case_id, pair_of, completion, exam_description
    certificate: dict[str, Any] | None
    recipe: dict[str, Any]
    shards_recipe_hash: str | None  # the manifest's: the certificate must be for the recipe that made the shards


TRAIN_COLUMNS = ("example_id", "case_id", "pair_of", "completion")


def _run_root(path: Path) -> Path:
    path = Path(path)
    return path.parent if path.name == "shards" else path


def _case_fields(run: RunDir) -> pl.DataFrame:
    for stage in CASE_STAGES:
        if run.has_stage(stage):
            parts = pl.scan_parquet(sorted(run.stage_dir(stage).glob("part-*.parquet")))
            names = parts.collect_schema().names()
            fields = parts.select([c for c in CASE_FIELDS if c in names]).collect().unique("case_id", keep="first")
            return fields.with_columns(pl.lit(None, pl.String).alias(c) for c in CASE_FIELDS if c not in names)
    raise ScoreError(f"{run.root} has no stage output with the cases' text (looked for {', '.join(CASE_STAGES)})")


def load_run(path: Path, split: str = "test") -> ScoredRun:
    """Verify the shards against their manifest (a changed byte stops here) and read the scored split with the
    case fields, and the train split's answers."""
    root = _run_root(path)
    run = RunDir(root)
    if not (run.shards / MANIFEST).is_file():
        raise ScoreError(f"{root} has no shards/manifest.json: run the recipe to the shard stage first")
    verify(run.shards)
    manifest = read_manifest(run.shards)

    def read(name: str, columns: list[str] | None = None) -> pl.DataFrame:
        """One split's shards (none: an empty frame of the shard schema)."""
        paths = [run.shards / s["file"] for s in manifest["shards"] if s["split"] == name]
        frame = pl.read_parquet(paths) if paths else pl.DataFrame(pl.from_arrow(SHARD_SCHEMA.empty_table()))
        return frame.select(columns) if columns else frame

    cases = _case_fields(run)
    examples = read(split).join(cases, on="case_id", how="left", maintain_order="left")
    train = read("train", list(TRAIN_COLUMNS)).join(
        cases.select("case_id", "exam_description"), on="case_id", how="left", maintain_order="left"
    )
    certificate = None
    if run.report(CERTIFICATE).is_file():
        certificate = json.loads(run.report(CERTIFICATE).read_text())
    record = run.run_record() or {}
    recipe = dict(record.get("recipe") or {})
    return ScoredRun(root, str(manifest["task"]), examples, train, certificate, recipe, manifest.get("recipe_hash"))


def certification(run: ScoredRun, allow_uncertified: bool) -> dict[str, Any]:
    """Whether the run's certificate passed for these shards; an uncertified run is refused unless allowed."""
    cert = run.certificate
    if cert is None:
        why = "the run has no reports/certificate.json (its leakage stage did not run or was removed)"
    elif cert.get("recipe_hash") != run.shards_recipe_hash:
        why = "reports/certificate.json was written for another recipe than these shards"
    elif cert.get("passed") is None:
        why = "the run has no val or test split: its certificate certifies nothing"
    elif not cert.get("passed"):
        why = "the run's train/eval certificate did not pass (see reports/leakage.html)"
    else:
        return {"passed": True, "recipe_hash": cert.get("recipe_hash")}
    if not allow_uncertified:
        raise ScoreError(f"not scoring: {why}; pass --allow-uncertified to score anyway (the report will say so)")
    return {"passed": False, "reason": why, "allowed_by": "--allow-uncertified"}


def read_predictions(path: Path, id_column: str = "example_id", text_column: str = "prediction") -> pl.DataFrame:
    """`example_id`, `prediction` (strings) from a JSONL, CSV or Parquet file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise ScoreError(f"predictions file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            frame = pl.read_ndjson(path, infer_schema_length=None)
        elif suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        elif suffix == ".parquet":
            frame = pl.read_parquet(path)
        else:
            raise ScoreError(f"{path.name}: predictions must be one of {', '.join(PREDICTION_SUFFIXES)}")
    except (pl.exceptions.PolarsError, OSError) as exc:
        # the library's message can quote a line of the file (model output about a patient): say where, not what
        raise ScoreError(f"{path.name}: cannot be read as {suffix[1:]} ({type(exc).__name__})") from None
    missing = [c for c in (id_column, text_column) if c not in frame.columns]
    if missing:
        raise ScoreError(
            f"{path.name} has no column {', '.join(repr(c) for c in missing)} ({column_listing(frame.columns)}); "
            "name the columns with --id-column / --prediction-column"
        )
    try:
        return frame.select(
            pl.col(id_column).cast(pl.String).alias("example_id"),
            pl.col(text_column).cast(pl.String).alias("prediction"),
        )
    except pl.exceptions.PolarsError:
        kinds = f"{frame.schema[id_column]}, {frame.schema[text_column]}"
        raise ScoreError(f"{path.name}: the id and prediction columns must be text ({kinds} found)") from None


def match_predictions(examples: pl.DataFrame, predictions: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Attach each example's prediction. Missing ids score as empty outputs; ids not in the split and repeated
    ids (the first is scored) are counted; nothing is dropped without a count."""
    present = predictions.filter(pl.col("example_id").is_not_null())
    first = present.unique("example_id", keep="first", maintain_order=True)
    in_split = first.filter(pl.col("example_id").is_in(examples["example_id"].implode()))
    out = examples.join(in_split, on="example_id", how="left", maintain_order="left")
    counts = {
        "predictions": predictions.height,
        "examples": examples.height,
        "scored": in_split.height,
        "missing": examples.height - in_split.height,
        "extra": first.height - in_split.height,
        "duplicate": present.height - first.height,
        "null_id": predictions.height - present.height,
        "empty": int(in_split["prediction"].fill_null("").str.strip_chars().eq("").sum()),
    }
    return out, counts

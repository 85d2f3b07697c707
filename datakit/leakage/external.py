"""Benchmark decontamination: training records that contain a public eval set's items (`leakage.external_eval`).

Each eval set is a file (Parquet, CSV or JSONL); an item's text is its `text_columns`, normalised and joined as
records' fields are. Items and records form one corpus and the text layers answer their cross-split question
(`Layer.across`, the certificate's own complete searches) with the items on the eval side: `exact`, `near`
(MinHash Jaccard, or containment: an item pasted into a longer record), `cosine`, and `words` with containment
alone (an item's words inside a record, whatever else the record says). Nothing is exempt as a template: a record
that carries a benchmark item is contaminated even when the item reads like boilerplate. Beside the layers, the
convention of LLM contamination reports: a record sharing any word n-gram (`leakage.external_ngram`, 13) with an
item. A contaminated record is quarantined (reason `external_eval:<name>`) before grouping and listed by case id
in the certificate; nothing about the item or the record's text is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.content import FIELD_SEPARATOR, normalise_text, sha256_hex
from datakit.errors import SourceError, StageError, column_listing
from datakit.keys import SecretKey
from datakit.leakage.canonical import canonical_text
from datakit.leakage.corpus import Corpus, build_corpus
from datakit.leakage.layers import LayerClock, Sides, make_layers
from datakit.recipe import ExternalEval, Leakage
from datakit.rundir import file_sha256
from datakit.schema import text_expr

WORD = r"\w+"
_MIX = np.random.default_rng(20240613).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


def external_files(sets: tuple[ExternalEval, ...]) -> list[Path]:
    from datakit.sources.files import resolve_paths

    return [p for s in sets for p in resolve_paths(s.path)]


def external_digest(sets: tuple[ExternalEval, ...]) -> str | None:
    """A fingerprint of the eval sets' files (part of the leakage stage's config hash)."""
    if not sets:
        return None
    files = [*external_files(sets), *(Path(s.ids_path) for s in sets if s.ids_path is not None)]
    return str(sha256_hex(pl.Series([",".join(file_sha256(p) for p in files)]))[0])


def listed_ids(path: Path) -> list[str]:
    """The ids an `ids_path` file lists: a JSON object's keys, a JSON array's items, or one id per line."""
    if not path.is_file():
        raise SourceError(f"leakage.external_eval ids_path '{path}' is not a file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            raise SourceError(f"ids_path '{path}' is not valid JSON") from None
        if isinstance(data, dict):
            return [str(k) for k in data]
        if isinstance(data, list):
            return [str(v) for v in data]
        raise SourceError(f"ids_path '{path}': expected a JSON object (ids as keys) or an array of ids")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_items(sets: tuple[ExternalEval, ...]) -> pl.DataFrame:
    """(source, item_id, text) of every item of every eval set; text normalised as record text is."""
    from datakit.sources.files import read_table

    frames = []
    for s in sets:
        raw = read_table(s.path, s.format)
        missing = [c for c in (*s.text_columns, *([s.id_column] if s.id_column else [])) if c not in raw.columns]
        if missing:
            raise SourceError(
                f"leakage.external_eval '{s.name}': {s.path} has no column {missing} ({column_listing(raw.columns)})"
            )
        if s.ids_path is not None and s.id_column is not None:
            raw = raw.filter(pl.col(s.id_column).cast(pl.String).is_in(listed_ids(Path(s.ids_path))))
        parts = [normalise_text(text_expr(c, raw.schema[c]).fill_null("")) for c in s.text_columns]
        item_id = pl.col(s.id_column).cast(pl.String) if s.id_column else pl.int_range(pl.len()).cast(pl.String)
        frames.append(
            raw.select(
                pl.lit(s.name).alias("source"),
                item_id.alias("item_id"),
                pl.concat_str(parts, separator=FIELD_SEPARATOR).alias("text"),
            )
        )
    items = pl.concat(frames)
    return items.filter(pl.col("text").str.replace_all(f"[\\s{FIELD_SEPARATOR}]", "").str.len_chars() > 0)


def ngram_hashes(texts: pl.Series, n: int) -> pl.DataFrame:
    """(doc, gram): the distinct word n-grams of each text as 64-bit hashes (doc = position in `texts`)."""
    tokens = (
        pl.DataFrame({"t": texts})
        .with_row_index("doc")
        .select("doc", pl.col("t").fill_null("").str.to_lowercase().str.extract_all(WORD).alias("w"))
        .explode("w")
        .drop_nulls("w")
    )
    if tokens.height < n:
        return pl.DataFrame(schema={"doc": pl.UInt32, "gram": pl.UInt64})
    h = tokens["w"].hash(seed=7).to_numpy()
    doc = tokens["doc"].to_numpy()
    starts = len(h) - n + 1
    acc = np.zeros(starts, dtype=np.uint64)
    for k in range(n):  # position-weighted sum: an ordered n-gram hash (uint64 arithmetic wraps)
        acc += h[k : k + starts] * _MIX[k % len(_MIX)]
    inside = doc[:starts] == doc[n - 1 :]
    return pl.DataFrame({"doc": doc[:starts][inside], "gram": acc[inside]}).unique()


@dataclass
class Contamination:
    """What the eval sets reach: (case_id, source, item_id, layer) per link, and the sets' sizes."""

    links: pl.DataFrame
    items: dict[str, int]

    def cases(self) -> pl.DataFrame:
        """(case_id, reason, sources, layers) per contaminated case."""
        return (
            self.links.group_by("case_id")
            .agg(pl.col("source").unique().sort().alias("sources"), pl.col("layer").unique().sort().alias("layers"))
            .with_columns(("external_eval:" + pl.col("sources").list.join(",")).alias("reason"))
            .sort("case_id")
        )

    def summary(
        self, sets: tuple[ExternalEval, ...], ngram: int, policy: str = "drop", listed: int = 10_000
    ) -> dict[str, Any]:
        per = self.cases()
        by_layer = self.links.group_by("layer").agg(pl.col("case_id").n_unique()).sort("layer")
        return {
            "policy": (
                "drop (quarantined before grouping)"
                if policy == "drop"
                else "eval (kept, pinned with their leakage groups to the test split)"
            ),
            "sets": [
                {"name": s.name, "items": self.items.get(s.name, 0), "files_sha256": external_digest((s,))}
                for s in sets
            ],
            "ngram": ngram,
            "contaminated_cases": per.height,
            "cases_by_layer": dict(by_layer.iter_rows()),
            "cases_by_set": dict(per.explode("sources").group_by("sources").len().sort("sources").iter_rows()),
            "case_ids": per["case_id"].head(listed).to_list(),
            "case_ids_listed": min(listed, per.height),
        }


def _joined_corpus(records: Corpus, items: pl.DataFrame, cfg: Leakage) -> tuple[Corpus, int]:
    """Records' corpus with the items appended as contents and pseudo-cases (nodes after the records')."""
    n_nodes, n_contents = records.cases.height, len(records.contents)
    item_contents = items.select(
        (pl.int_range(pl.len(), dtype=pl.UInt32) + n_contents).alias("content"),
        sha256_hex(items["text"]).alias("dedup_hash"),
        "text",
        canonical_text(pl.col("text"), cfg.words.lexicon, normalised=True).alias("canonical"),
        (pl.int_range(pl.len(), dtype=pl.UInt32) + n_nodes).alias("rep"),
    )
    schema = records.contents.schema
    contents = pl.concat([records.contents, item_contents.select(schema.names()).cast(schema)])
    cases = pl.concat(
        [
            records.cases.select("node", "case_id", pl.col("content").cast(pl.UInt32), "dedup_hash"),
            item_contents.select(
                pl.col("rep").alias("node"),
                ("external:" + items["source"] + ":" + items["item_id"]).alias("case_id"),
                "content",
                "dedup_hash",
            ),
        ]
    )
    return Corpus(cases=cases, contents=contents, cfg=cfg, cache_root=records.cache_root), n_nodes


def contamination(
    rows: pl.DataFrame, items: pl.DataFrame, cfg: Leakage, key: SecretKey, cache_root: Path, clock: LayerClock
) -> Contamination:
    """Every (record, item) link of the text layers and of the n-gram check."""
    sizes = dict(items.group_by("source").len().iter_rows())
    # containment alone: an item's words inside a longer record count whatever the record's other words weigh
    scan = cfg.model_copy(update={"words": cfg.words.model_copy(update={"min_ratio": 0.0, "enabled": True})})
    corpus, n_records = _joined_corpus(build_corpus(rows, cfg, key, cache_root), items, scan)
    is_item = corpus.cases["node"] >= n_records
    nodes = corpus.cases.with_columns(
        pl.when(is_item).then(pl.lit("eval")).otherwise(pl.lit("train")).alias("side"),
        pl.lit(False).alias("template"),
        pl.lit(False).alias("alone"),
    )
    reps = nodes.group_by("content", "side").agg(pl.col("node").min().alias("rep"))
    side = {s: reps.filter(pl.col("side") == s).select("content", "rep").sort("content") for s in ("train", "eval")}
    none = np.zeros(len(corpus.contents), dtype=bool)
    sides = Sides(nodes=nodes, train=side["train"], eval=side["eval"], template=none, look_alike=none, alone=none)
    found = []
    for layer in make_layers(scan):
        if layer.family != "text":
            continue
        with clock.layer(f"external_{layer.name}"):
            layer.prepare(corpus, clock)
            cross = layer.across(corpus, sides)
        found.append(cross.edges.select(pl.col("a").alias("item"), pl.col("b").alias("record"), pl.col("kind")))
    texts = corpus.texts
    n_record_contents = len(corpus.contents) - items.height
    record_grams = ngram_hashes(texts.head(n_record_contents), cfg.external_ngram)
    item_grams = ngram_hashes(items["text"], cfg.external_ngram)
    shared = record_grams.join(item_grams.rename({"doc": "item_doc"}), on="gram").select("doc", "item_doc").unique()
    found.append(
        shared.join(side["train"].rename({"content": "doc"}), on="doc").select(
            (pl.col("item_doc").cast(pl.UInt32) + n_records).alias("item"),
            pl.col("rep").alias("record"),
            pl.lit(f"ngram{cfg.external_ngram}").alias("kind"),
        )
    )
    links = pl.concat([f.cast({"item": pl.UInt32, "record": pl.UInt32}) for f in found])
    # a content link names one representative record: every record with that text is contaminated
    record_content = corpus.cases.filter(~is_item).select(pl.col("node").alias("record"), "content")
    per_record = (
        links.join(record_content, on="record")
        .select("item", "kind", "content")
        .join(corpus.cases.filter(~is_item).select("content", "case_id"), on="content")
    )
    item_meta = items.select("source", "item_id").with_row_index("item").with_columns(pl.col("item") + n_records)
    result = (
        per_record.join(item_meta.cast({"item": pl.UInt32}), on="item")
        .select("case_id", "source", "item_id", pl.col("kind").alias("layer"))
        .unique()
        .sort("case_id", "source", "item_id", "layer")
    )
    if result.filter(pl.col("case_id").str.starts_with("external:")).height:
        raise StageError("internal error: decontamination linked an eval item to itself")
    return Contamination(links=result, items=sizes)

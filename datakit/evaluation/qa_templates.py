"""Templated questions outside radiology: MedQuAD's questions repeat ("What are the symptoms of X ?"). This scores
a run of `recipes/medical-qa-medquad.toml` on two kinds of cross-document pairs:

- **template pairs**: two items of different documents whose questions are the same once each document's focus
  (the disease) is written X. They share a question form and nothing else, so the leakage layers must not link
  them, and they should not end up in one leakage group unless something else ties them;
- **copied answers**: two items of different documents whose answers are the same text (normalised: case and
  spacing). Training on one and evaluating on the other leaks the answer, so they must be linked and grouped.

Reported per kind: pairs, directly linked by a binding content layer (exact, near, cosine, words; the template_*
forms are reported apart: they group nothing), in one leakage group, straddling train and eval; for linked template
pairs, how many have answers sharing at least half their words (the link comes from the answers, not the question
form). Counts only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from datakit.rundir import LINKS, RunDir

CONTENT_KINDS = ("exact", "near", "cosine", "words")
ANSWER_OVERLAP = 0.5  # word-set Jaccard of two answers above which a link is explained by the answers
WORD = r"[a-z0-9]+"


def question_templates(items: pl.DataFrame) -> pl.Series:
    """Each item's question with its document's focus written X (the focus varies per row: a row-wise replace)."""
    return pl.Series(
        "template",
        [
            (q or "").replace(f, "X") if f else (q or "")
            for q, f in zip(items["question"].to_list(), items["focus"].to_list(), strict=True)
        ],
    )


def _cross_document_pairs(items: pl.DataFrame, key: str) -> pl.DataFrame:
    """(a, b): every pair of items of different documents sharing `key` (a < b)."""
    left = items.select(pl.col("case_id").alias("a"), pl.col("document").alias("doc_a"), key)
    right = items.select(pl.col("case_id").alias("b"), pl.col("document").alias("doc_b"), key)
    return (
        left.join(right, on=key)
        .filter((pl.col("a") < pl.col("b")) & (pl.col("doc_a") != pl.col("doc_b")))
        .select("a", "b")
    )


def score(items: pl.DataFrame, run_dir: Path) -> dict[str, Any]:
    """items: (case_id, document, question, answer, focus) as the source holds them (before de-identification)."""
    rd = RunDir(run_dir)
    stage = rd.stage_dir("leakage")
    grouped = pl.read_parquet(stage / "part-*.parquet", columns=["case_id", "leakage_group", "split"])
    links = pl.read_parquet(stage / LINKS)

    def both_ways(frame: pl.DataFrame) -> pl.DataFrame:
        return pl.concat(
            [
                frame.select(pl.col("case_a").alias("a"), pl.col("case_b").alias("b")),
                frame.select(pl.col("case_b").alias("a"), pl.col("case_a").alias("b")),
            ]
        ).unique()

    linked = both_ways(links.filter(pl.col("kind").is_in(CONTENT_KINDS)))
    exempt = both_ways(links.filter(pl.col("kind").str.strip_prefix("template_").is_in(CONTENT_KINDS)))
    exempt = exempt.join(linked, on=["a", "b"], how="anti")
    kept = items.join(grouped, on="case_id")
    kept = kept.with_columns(
        question_templates(kept),
        pl.col("answer").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars().alias("answer_key"),
    )
    group = kept.select("case_id", "leakage_group", "split")
    out: dict[str, Any] = {"items": kept.height}
    for name, key in (("template_pairs", "template"), ("copied_answer_pairs", "answer_key")):
        pairs = _cross_document_pairs(kept.filter(pl.col(key) != ""), key)
        scored = (
            pairs.join(linked.with_columns(pl.lit(True).alias("linked")), on=["a", "b"], how="left")
            .join(exempt.with_columns(pl.lit(True).alias("exempt")), on=["a", "b"], how="left")
            .join(group.rename({"case_id": "a", "leakage_group": "g_a", "split": "s_a"}), on="a")
            .join(group.rename({"case_id": "b", "leakage_group": "g_b", "split": "s_b"}), on="b")
        )
        out[name] = {
            "pairs": scored.height,
            "linked": int(scored["linked"].fill_null(False).sum()),
            "template_links_only": int(scored["exempt"].fill_null(False).sum()),
            "grouped": int((scored["g_a"] == scored["g_b"]).sum()),
            "straddling_train_eval": int(((scored["s_a"] == "train") != (scored["s_b"] == "train")).sum()),
        }
        if name == "template_pairs":
            words = kept.select("case_id", pl.col("answer_key").str.extract_all(WORD).list.unique().alias("w"))
            hit = scored.filter(pl.col("linked").fill_null(False)).select("a", "b")
            overlap = (
                hit.join(words.rename({"case_id": "a", "w": "w_a"}), on="a")
                .join(words.rename({"case_id": "b", "w": "w_b"}), on="b")
                .select(
                    (
                        pl.col("w_a").list.set_intersection("w_b").list.len()
                        / pl.col("w_a").list.set_union("w_b").list.len()
                    ).alias("jaccard")
                )
            )
            out[name]["linked_with_overlapping_answers"] = int((overlap["jaccard"] >= ANSWER_OVERLAP).sum())
    out["template_pairs"]["templates"] = int(kept["template"].n_unique())
    return out

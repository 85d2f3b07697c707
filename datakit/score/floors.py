"""Floors a model must beat, computed from the run's own data without a model, as raw outputs scored like one.

- `retrieval_vote`: what the prompt already shows. Coding: as many top CPT and ICD-10-CM candidates as the first
  few-shot example has CPT and ICD codes (at least one each; the candidate lists are the retrieved neighbours'
  votes), with that example's modifiers. Impression: the first few-shot example's impression.
- `majority`: the most frequent answer among the train split's base examples with the same exam description
  (ties: the alphabetically first answer); the most frequent train answer where the description is unseen.
"""

from __future__ import annotations

import polars as pl

from datakit.assemble.formats import answer_line_expr, parse_answers
from datakit.content import description_key
from datakit.score.inputs import gold_text, user_message

FLOORS = ("retrieval_vote", "majority")


def retrieval_vote(examples: pl.DataFrame, task: str) -> pl.Series:
    if task != "coding":
        shot = user_message().str.extract(r"(?s)\nImpression: (.*?)\n\n###", 1)
        return examples.select(shot.alias("retrieval_vote")).to_series()
    first_shot = parse_answers(examples.select(user_message().str.extract(r"\nAnswer: ([^\n]*)", 1)).to_series())
    n_cpt = pl.col("cpt_codes").list.len().fill_null(1).clip(lower_bound=1)
    n_icd = pl.col("icd10_codes").list.len().fill_null(1).clip(lower_bound=1)
    answer = pl.concat([examples.select("cpt_candidates", "icd_candidates"), first_shot], how="horizontal").select(
        pl.col("cpt_candidates").list.head(n_cpt).alias("cpt_codes"),
        pl.col("modifiers").fill_null(pl.lit([], pl.List(pl.String))),
        pl.col("icd_candidates").list.head(n_icd).alias("icd10_codes"),
    )
    usable = pl.col("cpt_codes").list.len().fill_null(0) > 0  # no candidate list: no output (scored as empty)
    return answer.select(pl.when(usable).then(answer_line_expr()).alias("retrieval_vote")).to_series()


def _description() -> pl.Expr:
    return description_key(pl.col("exam_description").fill_null(""))


def majority(examples: pl.DataFrame, train: pl.DataFrame) -> pl.Series:
    base = train.filter(pl.col("pair_of").is_null()).select(_description().alias("_d"), gold_text().alias("_a"))
    if base.is_empty():
        return pl.Series("majority", [None] * examples.height, dtype=pl.String)
    counts = base.group_by("_d", "_a").agg(pl.len().alias("_n"))
    best = counts.sort(["_d", "_n", "_a"], descending=[False, True, False]).unique("_d", keep="first")
    overall = base.group_by("_a").agg(pl.len().alias("_n")).sort(["_n", "_a"], descending=[True, False])["_a"][0]
    picked = examples.select(_description().alias("_d")).join(
        best.select("_d", "_a"), on="_d", how="left", maintain_order="left"
    )
    return picked.select(pl.col("_a").fill_null(overall).alias("majority")).to_series()

"""Impression metrics per example: ROUGE-L (rouge-score), corpus BLEU (sacrebleu), and contradictions of the
findings: a side (left/right) the findings do not name, or a finding negated where the findings state it (or
stated where they negate it).

An output is the text after an optional `Impression:` prefix; an empty or missing output scores zero on ROUGE-L
and adds nothing but its reference length to BLEU. Contradiction rates are over non-empty outputs.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from datakit.score.inputs import gold_text
from datakit.score.metrics import Metric, mean_metric

NEGATION = r"\b(?:no|without|negative for|free of|resolution of|resolved)\b[^.;\n]{0,60}?"
FINDINGS = (
    "pneumothorax",
    "effusion",
    "consolidation",
    "pneumonia",
    "edema",
    "cardiomegaly",
    "fracture",
    "nodule",
    "mass",
    "atelectasis",
    "infiltrate",
    "opacity",
    "hemorrhage",
    "dislocation",
    "obstruction",
)
BLEU_STATS = 10  # sys_len, ref_len, matches of 1-4 grams, totals of 1-4 grams
_BLEU = BLEU(effective_order=True)  # statistics only (counts do not depend on it); no per-sentence warning


def _bleu(sums: np.ndarray) -> np.ndarray:
    flat = sums.reshape(-1, BLEU_STATS)
    scores = [
        BLEU.compute_bleu(
            correct=row[2:6].round().astype(int).tolist(),
            total=row[6:10].round().astype(int).tolist(),
            sys_len=int(row[0].round()),
            ref_len=int(row[1].round()),
            smooth_method="exp",
        ).score
        / 100
        for row in flat
    ]
    return np.asarray(scores, dtype=np.float64).reshape(sums.shape[:-1])


IMPRESSION_METRICS: tuple[Metric, ...] = (
    mean_metric("rouge_l", "ROUGE-L F1 (rouge-score, no stemming)"),
    Metric(
        "bleu", "corpus BLEU (sacrebleu defaults, 0-1)", tuple(pl.col(f"_bleu{i}") for i in range(BLEU_STATS)), _bleu
    ),
    mean_metric("contradiction", "outputs contradicting the findings (lower is better)", "parsed", True),
    mean_metric("laterality_contradiction", "... by side (lower is better)", "parsed", True),
    mean_metric("negation_contradiction", "... by a negated or stated finding (lower is better)", "parsed", True),
)


def _assertions(text: pl.Expr, term: str) -> tuple[pl.Expr, pl.Expr]:
    """(stated without negation at least once, negated at least once)."""
    mentions = text.str.count_matches(rf"\b{term}")
    negated = text.str.count_matches(rf"{NEGATION}\b{term}")
    return mentions > negated, negated > 0


def contradictions(prediction: pl.Expr, findings: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(laterality, negation) contradiction of each prediction by its findings."""
    pred, found = prediction.str.to_lowercase(), findings.str.to_lowercase()
    p_left, p_right = pred.str.contains(r"\bleft\b"), pred.str.contains(r"\bright\b")
    f_left, f_right = found.str.contains(r"\bleft\b"), found.str.contains(r"\bright\b")
    side = (p_left & ~p_right & f_right & ~f_left) | (p_right & ~p_left & f_left & ~f_right)
    clashes = []
    for term in FINDINGS:
        p_stated, p_negated = _assertions(pred, term)
        f_stated, f_negated = _assertions(found, term)
        clashes.append(
            (p_negated & ~p_stated & f_stated & ~f_negated) | (p_stated & ~p_negated & f_negated & ~f_stated)
        )
    return side, pl.any_horizontal(clashes)


def impression_rows(frame: pl.DataFrame, output: str) -> pl.DataFrame:
    """The frame with one column per IMPRESSION_METRICS statistic, `parse_error` and `parsed`."""
    text = pl.col(output).str.strip_chars().str.replace(r"(?i)^impression\s*:\s*", "").str.strip_chars()
    rows = frame.with_columns(
        text.fill_null("").alias("_pred"),
        gold_text().fill_null("").alias("_gold"),
        pl.when(pl.col(output).is_null())
        .then(pl.lit("missing"))
        .when(text == "")
        .then(pl.lit("empty"))
        .alias("parse_error"),
    )
    preds, golds = rows["_pred"].to_list(), rows["_gold"].to_list()
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [scorer.score(g, p)["rougeL"].fmeasure if p else 0.0 for g, p in zip(golds, preds, strict=True)]
    stats = np.zeros((len(preds), BLEU_STATS))
    for i, (g, p) in enumerate(zip(golds, preds, strict=True)):
        s = _BLEU.sentence_score(p, [g])
        stats[i] = [s.sys_len, s.ref_len, *s.counts, *s.totals]
    side, negation = contradictions(pl.col("_pred"), pl.col("report_text").fill_null(""))
    ok = pl.col("parse_error").is_null()
    rows = rows.with_columns(
        pl.Series("rouge_l", rouge, dtype=pl.Float64),
        *(pl.Series(f"_bleu{i}", stats[:, i]) for i in range(BLEU_STATS)),
        ok.alias("parsed"),
        (ok & side).cast(pl.Float64).alias("laterality_contradiction"),
        (ok & negation).cast(pl.Float64).alias("negation_contradiction"),
    )
    return rows.with_columns(
        pl.max_horizontal("laterality_contradiction", "negation_contradiction").alias("contradiction")
    ).drop("_pred", "_gold")

"""Planted benchmark contamination: public eval items pasted into training records (tests and bench only).

`pubmedqa_test` reads the official PubMedQA test split (500 items: question + abstract contexts); `plant` pastes
items into real records in four ways: the whole item as the record's text; the whole item edited (two of
`paraphrase_leaks`' edits: reordered, merged or dropped sentences, typing errors...); the whole item reworded (a
typing error in every third word or so, which leaves few word 13-grams intact); or a 40-word span of its abstract
appended to the record's own text. The truth table says which record got which item and how.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl

from datakit.evaluation.paraphrase_leaks import edit, typos

KINDS = ("whole", "edited", "reworded", "fragment")


def pubmedqa_test(real_data: Path) -> pl.DataFrame:
    """(pmid, question, context) of the official test split, in pmid order."""
    items = json.loads((real_data / "pubmedqa" / "ori_pqal.json").read_text())
    test_ids = json.loads((real_data / "pubmedqa" / "test_ground_truth.json").read_text())
    return pl.DataFrame(
        [
            {"pmid": pmid, "question": items[pmid]["QUESTION"], "context": " ".join(items[pmid]["CONTEXTS"])}
            for pmid in sorted(test_ids)
        ]
    )


def plant(
    records: pl.DataFrame, items: pl.DataFrame, n: int, seed: int = 5, column: str = "report_text"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records with `n` items pasted into `column`, truth: case_id, pmid, kind); kinds cycle through `KINDS`."""
    rng = random.Random(seed)
    chosen = rng.sample(range(records.height), n)
    texts = records[column].to_list()
    truth = []
    for k, i in enumerate(chosen):
        item = items.row(k % items.height, named=True)
        whole = f"{item['question']} {item['context']}"
        kind = KINDS[k % len(KINDS)]
        if kind == "whole":
            texts[i] = whole
        elif kind == "edited":
            texts[i] = edit("combined_2", whole, rng)[0]
        elif kind == "reworded":
            texts[i] = typos(whole, rng, rate=0.3)
        else:
            texts[i] = f"{texts[i]} {' '.join(item['context'].split()[20:60])}"
        truth.append({"case_id": records["case_id"][i], "pmid": item["pmid"], "kind": kind})
    return records.with_columns(pl.Series(column, texts)), pl.DataFrame(truth)

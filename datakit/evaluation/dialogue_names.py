"""Names said in real conversations, scored after de-identification: ACI-Bench's per-encounter metadata.

ACI-Bench ships, for every encounter, the patient's first and family name and (for some) the doctor's name
(`*_metadata.csv`); the conversation (`hi , martha .`, lower case, ASR-style) and the note (`Martha Collins is a
50-year-old female`) say them. Nobody on the team wrote or tuned on these. `score` counts, per kind of name,
the occurrences in the original texts (whole words, any case) and those still there after de-identification,
and checks that speaker tags (`[doctor]`, `[patient]`) survive one for one. Counts only, never text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from spacy.lang.en.stop_words import STOP_WORDS

from datakit.deid.truecase import english_words

FREQUENT_ZIPF = 5.0  # "good" 6.1, "price" 5.0: words first; "scott" 4.6, "logan" 4.0 are scored
NAME_KINDS = ("patient_firstname", "patient_familyname", "doctor_name")
SPEAKER_TAG = r"(?m)^\[[a-z_]+\]"  # [doctor], [patient], [patient_guest], ...


def aci_names(aci_dir: Path) -> pl.DataFrame:
    """(case_id, kind, name): one row per name word in the metadata (the doctor's title dropped)."""
    frames = [
        pl.read_csv(p, infer_schema=False).select(
            pl.col("encounter_id").alias("case_id"), *[pl.col(k) for k in NAME_KINDS]
        )
        for p in sorted(aci_dir.glob("*_metadata.csv"))
    ]
    meta = pl.concat(frames).unique("case_id", keep="first")
    return (
        meta.unpivot(index="case_id", on=list(NAME_KINDS), variable_name="kind", value_name="name")
        .drop_nulls("name")
        .with_columns(pl.col("name").str.replace(r"(?i)^\s*dr\.?\s+", "").str.extract_all(r"[A-Za-z][A-Za-z'-]+"))
        .explode("name")
        .drop_nulls("name")
        # a metadata name split into words: one that is a stop word or a very frequent English word ("scott good")
        # cannot be scored by matching words, and is left out
        .filter(
            (pl.col("name").str.len_chars() >= 2)
            & ~pl.col("name").str.to_lowercase().is_in(sorted(STOP_WORDS | english_words(FREQUENT_ZIPF)))
        )
        .unique(maintain_order=True)
    )


def _occurrences(texts: pl.DataFrame, names: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """(case_id, kind, name, column, n): whole-word, case-blind occurrences of each name in each column."""
    joined = names.join(texts, on="case_id")
    return pl.concat(
        [
            joined.select(
                "case_id",
                "kind",
                "name",
                pl.lit(c).alias("column"),
                pl.col(c)
                .fill_null("")
                .str.count_matches(pl.concat_str([pl.lit(r"(?i)\b"), pl.col("name"), pl.lit(r"\b")]))
                .alias("n"),
            )
            for c in columns
        ]
    )


def score(
    original: pl.DataFrame, deidentified: pl.DataFrame, names: pl.DataFrame, columns: list[str]
) -> dict[str, Any]:
    """Per name kind and column: occurrences before, left after, share removed; speaker tags kept.
    `deidentified` holds the records the de-id stage kept (its quarantined ones are not scored)."""
    kept = original.join(deidentified.select("case_id"), on="case_id", how="semi")
    before = _occurrences(kept, names, columns).rename({"n": "before"})
    after = _occurrences(deidentified, names, columns).rename({"n": "after"})
    both = before.join(after, on=["case_id", "kind", "name", "column"], how="left").with_columns(
        pl.col("after").fill_null(0)
    )
    table = (
        both.group_by("kind", "column")
        .agg(pl.col("before").sum(), pl.col("after").sum(), (pl.col("after") > 0).sum().alias("names_left"))
        .with_columns((1 - pl.col("after") / pl.col("before")).round(4).alias("removed"))
        .sort("kind", "column")
    )
    total_before = int(both["before"].sum())
    total_after = int(both["after"].sum())
    tags = {}
    for c in columns:
        n_before = kept.select(pl.col(c).fill_null("").str.count_matches(SPEAKER_TAG).sum()).item()
        n_after = deidentified.select(pl.col(c).fill_null("").str.count_matches(SPEAKER_TAG).sum()).item()
        tags[c] = {"before": int(n_before), "after": int(n_after)}
    return {
        "records": kept.height,
        "by_kind": table.to_dicts(),
        "occurrences_before": total_before,
        "occurrences_left": total_after,
        "removed": round(1 - total_after / total_before, 4) if total_before else None,
        "speaker_tags": tags,
    }

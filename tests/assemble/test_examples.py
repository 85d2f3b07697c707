from __future__ import annotations

from pathlib import Path

import polars as pl

from datakit.assemble.formats import parse_answer


def test_examples_carry_the_report_and_the_coder_answer(sample_run: Path) -> None:
    rows = pl.read_parquet(sample_run / "stages" / "leakage" / "part-*.parquet")
    examples = pl.read_parquet(sample_run / "stages" / "assemble" / "part-*.parquet")
    assert examples.height == rows.height and examples["example_id"].n_unique() == examples.height
    cases = rows.filter(pl.col("example_key") == "base")
    joined = examples.filter(pl.col("pair_of").is_null()).join(cases, on="case_id", suffix="_case")
    for row in joined.head(200).iter_rows(named=True):
        system, user = row["prompt"]
        assert system["role"] == "system" and "certified radiology coder" in system["content"]
        assert user["role"] == "user" and row["report_text"] in user["content"]
        report = user["content"].split("### Report to code\n", 1)[1]  # the record's own report comes last
        if row["prompt_format"] == "explicit":
            assert report.startswith(f"Exam Description: {row['exam_description']}\nReason for Exam: ")
        else:
            assert report == f"Report:\n{row['report_text']}"
        answer = parse_answer(row["completion"][0]["content"])
        assert list(answer.cpt_codes) == row["cpt_codes"] and list(answer.icd10_codes) == row["icd10_codes"]
        assert list(answer.modifiers) == row["modifiers"]
        assert row["split"] == row["split_case"] and row["sample_weight"] == 1.0
        assert row["n_prompt_tokens"] >= len(user["content"]) // 4
    assert set(examples["tags"].explode().unique()) >= {"task:coding", "modality:CT", "modality:XR"}


def test_specificity_examples_show_the_unspecified_code_and_answer_the_specific_one(sample_run: Path) -> None:
    examples = pl.read_parquet(sample_run / "stages" / "assemble" / "part-*.parquet")
    pairs = examples.filter(pl.col("pair_of").is_not_null())
    assert pairs.height > 50
    for row in pairs.head(100).iter_rows(named=True):
        user = row["prompt"][1]["content"]
        candidates = user.split("ICD-10-CM candidates: ", 1)[1].split("\n", 1)[0].split(", ")
        answer = parse_answer(row["completion"][0]["content"])
        assert row["from_code"] in candidates and row["to_code"] in answer.icd10_codes
        assert row["from_code"] not in answer.icd10_codes
        assert row["sample_weight"] == 3.0 and "specificity_pair" in row["tags"]
        assert row["pair_of"] == row["case_id"] and f"pair_kind:{row['pair_kind']}" in row["tags"]
    base_ids = set(examples.filter(pl.col("pair_of").is_null())["case_id"])
    assert set(pairs["pair_of"]) <= base_ids
    # a pair and its source case are always in the same split
    split_of = dict(examples.filter(pl.col("pair_of").is_null()).select("case_id", "split").iter_rows())
    assert all(split_of[c] == s for c, s in pairs.select("pair_of", "split").iter_rows())

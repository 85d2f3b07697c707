from __future__ import annotations

from pathlib import Path

import polars as pl

from datakit.assemble.formats import parse_answer


def test_examples_carry_the_report_and_the_coder_answer(sample_run: Path) -> None:
    cases = pl.read_parquet(sample_run / "stages" / "split" / "part-*.parquet")
    examples = pl.read_parquet(sample_run / "stages" / "assemble" / "part-*.parquet")
    assert examples.height == cases.height and examples["example_id"].n_unique() == examples.height
    joined = examples.join(cases, on="case_id", suffix="_case")
    for row in joined.head(200).iter_rows(named=True):
        system, user = row["prompt"]
        assert system["role"] == "system" and "certified radiology coder" in system["content"]
        assert user["role"] == "user" and row["report_text"] in user["content"]
        assert f"Exam Description: {row['exam_description']}" in user["content"]
        answer = parse_answer(row["completion"][0]["content"])
        assert list(answer.cpt_codes) == row["cpt_codes"] and list(answer.icd10_codes) == row["icd10_codes"]
        assert list(answer.modifiers) == row["modifiers"]
        assert row["split"] == row["split_case"] and row["sample_weight"] == 1.0
        assert row["n_prompt_tokens"] >= len(user["content"]) // 4
    assert set(examples["tags"].explode().unique()) >= {"task:coding", "modality:CT", "modality:XR"}

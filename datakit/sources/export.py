"""`datakit sample-export`: the embedded sample written the way a hospital's export looks, to practise bringing
your own data: its own column names, US month/day dates, `;` code lists, a review-status column, CSV."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from datakit.sources.sample import generate_cases

# schema column -> the export's column name (what a recipe's [source.columns] maps back)
EXPORT_COLUMNS = {
    "case_id": "AccessionNo",
    "patient_id": "MRN",
    "exam_date": "StudyDate",
    "exam_description": "ExamName",
    "reason_for_exam": "Indication",
    "report_text": "ReportText",
    "cpt_codes": "CPT",
    "modifiers": "Modifiers",
    "icd10_codes": "ICD10",
    "review_status": "CoderStatus",
}
DATE_FORMAT = "%m/%d/%Y"


def sample_export(n: int, seed: int = 17) -> pl.DataFrame:
    cases = generate_cases(n=n, seed=seed).cases
    exprs = []
    for name, column in EXPORT_COLUMNS.items():
        col = pl.col(name)
        if name == "exam_date":
            col = col.dt.strftime(DATE_FORMAT)
        elif isinstance(cases.schema[name], pl.List):
            col = col.list.join(";")
        exprs.append(col.alias(column))
    return cases.select(exprs)


def write_sample_export(path: Path, n: int, seed: int = 17) -> int:
    frame = sample_export(n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return frame.height

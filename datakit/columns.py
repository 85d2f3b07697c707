"""The case schema's column names, the tasks, and the columns each task cannot do without: constants the recipe,
the schema validation and the sources share (this module imports nothing of datakit's)."""

from __future__ import annotations

from typing import Literal

Task = Literal["coding", "impression", "text"]
SCHEMA_COLUMNS = (
    "case_id",
    "patient_id",
    "accession",
    "exam_date",
    "exam_description",
    "reason_for_exam",
    "report_text",
    "impression",
    "cpt_codes",
    "modifiers",
    "icd10_codes",
    "initial_icd10_codes",
    "review_status",
    "updated_at",
)

# Columns whose absence or emptiness quarantines a row, per built-in task (a text task names its own).
REQUIRED: dict[str, tuple[str, ...]] = {
    "coding": ("case_id", "patient_id", "exam_date", "report_text", "cpt_codes", "icd10_codes"),
    "impression": ("case_id", "report_text", "impression"),
}

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datakit.errors import SourceError
from datakit.recipe import FilesSource
from datakit.schema import conform, validate
from datakit.sources.files import read_files

SOURCE_ROWS = [
    {
        "id": "1",
        "mrn": "0042",
        "exam": "XR CHEST 2 VIEWS",
        "body": "Clear lungs.",
        "cpt": "71046",
        "dx": "R05.1;R06.02",
        "dos": "2024-01-05",
        "status": "final",
    },
    {
        "id": "2",
        "mrn": "0042",
        "exam": "CT HEAD WO CONTRAST",
        "body": "No bleed.",
        "cpt": "70450",
        "dx": "R51.9",
        "dos": "2024-02-01",
        "status": "final",
    },
]
MAPPING = {
    "case_id": "id",
    "patient_id": "mrn",
    "exam_description": "exam",
    "report_text": "body",
    "cpt_codes": "cpt",
    "icd10_codes": "dx",
    "exam_date": "dos",
    "review_status": "status",
}


def write_all_formats(tmp_path: Path) -> dict[str, Path]:
    frame = pl.DataFrame(SOURCE_ROWS)
    paths = {
        "csv": tmp_path / "cases.csv",
        "parquet": tmp_path / "cases.parquet",
        "jsonl": tmp_path / "cases.jsonl",
    }
    frame.write_csv(paths["csv"])
    frame.write_parquet(paths["parquet"])
    paths["jsonl"].write_text("\n".join(json.dumps(r) for r in SOURCE_ROWS) + "\n")
    return paths


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_format_maps_onto_the_schema(tmp_path: Path, fmt: str) -> None:
    path = write_all_formats(tmp_path)[fmt]
    cfg = FilesSource(path=str(path), columns=MAPPING)
    out = validate(conform(read_files(cfg)), "coding", ["final"])
    assert out.quarantine.height == 0
    assert out.cases["icd10_codes"].to_list() == [["R05.1", "R06.02"], ["R51.9"]]
    assert out.cases["patient_id"].to_list() == ["0042", "0042"]  # leading zeros survive CSV


def test_globs_read_every_file(tmp_path: Path) -> None:
    paths = write_all_formats(tmp_path)
    (tmp_path / "more").mkdir()
    pl.DataFrame(SOURCE_ROWS).with_columns(pl.col("id") + "b").write_csv(tmp_path / "more" / "cases2.csv")
    cfg = FilesSource(path=str(tmp_path / "**" / "*.csv"), columns=MAPPING)
    assert read_files(cfg).height == 2 * len(SOURCE_ROWS)
    assert paths


def test_defaults_fill_missing_columns(tmp_path: Path) -> None:
    path = write_all_formats(tmp_path)["csv"]
    mapping = {k: v for k, v in MAPPING.items() if k != "review_status"}
    cfg = FilesSource(path=str(path), columns=mapping, defaults={"review_status": "reviewed"})
    assert read_files(cfg)["review_status"].to_list() == ["reviewed", "reviewed"]


def test_missing_mapped_column_names_it_and_lists_the_columns(tmp_path: Path) -> None:
    path = write_all_formats(tmp_path)["csv"]
    cfg = FilesSource(path=str(path), columns={**MAPPING, "report_text": "findngs"})
    with pytest.raises(SourceError, match=r"source.columns.report_text names column 'findngs'.*columns there: id, mrn"):
        read_files(cfg)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="matches no file"):
        read_files(FilesSource(path=str(tmp_path / "nope*.csv")))
    bad = tmp_path / "cases.txt"
    bad.write_text("x")
    with pytest.raises(SourceError, match="cannot tell the format"):
        read_files(FilesSource(path=str(bad)))
    broken = tmp_path / "broken.parquet"
    broken.write_text("SECRET PATIENT TEXT")
    with pytest.raises(SourceError, match="cannot read") as info:
        read_files(FilesSource(path=str(broken)))
    assert "SECRET" not in str(info.value)

"""Bringing your own data, table-driven: a 40-row export of radiology cases under its own column names (US dates,
15 patients, one case not reviewed), fed through `datakit run` / `datakit pull` in the shapes users have. Each row
states the exit code, a piece of the one-line message, and the rows kept and quarantined."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.sources.sample import generate_cases

runner = CliRunner()
MAPPING = {
    "case_id": "AccNo",
    "patient_id": "MRN",
    "exam_date": "StudyDate",
    "exam_description": "Exam",
    "reason_for_exam": "Indication",
    "report_text": "Report",
    "cpt_codes": "CPT",
    "icd10_codes": "ICD",
    "review_status": "Status",
}
RECIPE = """name = "byod"
task = "coding"
[source]
kind = "{kind}"
{path}
[source.columns]
{columns}
[keys]
demo = true
[prompt]
system = "Code the report."
"""
ROWS = 40
KEPT = 38  # one case not reviewed (filtered), one with no ICD code (quarantined at pull: empty:icd10_codes)
SPLIT = ["--set", "split.train=0.7", "--set", "split.val=0.15", "--set", "split.test=0.15"]
US = ["--set", "source.date_format=%m/%d/%Y"]


def export(rows: int = ROWS) -> pl.DataFrame:
    """A hospital's export: own column names, US month/day dates, ';' code lists, 15 patients."""
    cases = generate_cases(n=200, seed=3).cases
    patients = cases["patient_id"].unique(maintain_order=True).head(15).to_list()
    cases = cases.head(rows).with_columns(pl.Series("patient_id", [patients[i % 15] for i in range(rows)]))
    cases = cases.with_columns(  # one case a coder has not reviewed yet
        pl.when(pl.int_range(pl.len()) == 7)
        .then(pl.lit("pending"))
        .otherwise(pl.lit("reviewed"))
        .alias("review_status")
    )
    return cases.select(
        pl.col("case_id").alias("AccNo"),
        pl.col("patient_id").alias("MRN"),
        pl.col("exam_date").dt.strftime("%m/%d/%Y").alias("StudyDate"),
        pl.col("exam_description").alias("Exam"),
        pl.col("reason_for_exam").alias("Indication"),
        pl.col("report_text").alias("Report"),
        pl.col("cpt_codes").list.join(";").alias("CPT"),
        pl.col("icd10_codes").list.join(";").alias("ICD"),
        pl.col("review_status").alias("Status"),
    )


def write_csv(frame: pl.DataFrame, path: Path, delimiter: str = ",", terminator: str = "\n") -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, fieldnames=frame.columns, delimiter=delimiter, lineterminator=terminator)
        out.writeheader()
        out.writerows(frame.iter_rows(named=True))


@dataclass
class Case:
    name: str
    make: Callable[[pl.DataFrame, Path], str]  # writes the input under the folder, returns source.path
    args: list[str] = field(default_factory=list)
    command: str = "pull"
    exit_code: int = 0
    message: str = ""  # a piece of the output (the error line, or a warning)
    kept: int | None = None  # rows out of the last stage that ran
    quarantined: dict[str, int] = field(default_factory=dict)  # stage -> rows quarantined there
    kind: str = "files"
    mapping: dict[str, str] = field(default_factory=lambda: dict(MAPPING))


def plain(frame: pl.DataFrame, folder: Path) -> str:
    write_csv(frame, folder / "cases.csv")
    return "cases.csv"


def _dates(fmt: str) -> pl.Expr:
    return pl.col("StudyDate").str.to_date("%m/%d/%Y").dt.strftime(fmt)


def mixed(frame: pl.DataFrame, folder: Path) -> str:
    half = pl.when(pl.int_range(pl.len()) < 20).then(_dates("%Y-%m-%d")).otherwise("StudyDate")
    write_csv(frame.with_columns(half), folder / "c.csv")
    return "c.csv"


def iso(frame: pl.DataFrame, folder: Path) -> str:
    write_csv(frame.with_columns(_dates("%Y-%m-%d")), folder / "cases.csv")
    return "cases.csv"


def in_folder(frame: pl.DataFrame, folder: Path) -> str:
    (folder / "export" / "2024").mkdir(parents=True)
    write_csv(frame.head(25), folder / "export" / "a.csv")
    write_csv(frame.slice(25), folder / "export" / "2024" / "b.csv")
    (folder / "export" / "notes.txt").write_text("not data\n")  # another format in the folder is left out
    return "export"


def globbed(frame: pl.DataFrame, folder: Path) -> str:
    (folder / "parts").mkdir()
    for i in range(4):
        frame.slice(i * 10, 10).write_parquet(folder / "parts" / f"part{i}.parquet")
    (folder / "parts" / "sub.parquet").mkdir()  # a folder the glob matches is not a file to read
    return "parts/*.parquet"


def gz_csv(frame: pl.DataFrame, folder: Path) -> str:
    write_csv(frame, folder / "raw.csv")
    (folder / "cases.csv.gz").write_bytes(gzip.compress((folder / "raw.csv").read_bytes()))
    (folder / "raw.csv").unlink()
    return "cases.csv.gz"


def gz_jsonl(frame: pl.DataFrame, folder: Path) -> str:
    lines = "".join(json.dumps(r) + "\n" for r in frame.iter_rows(named=True))
    (folder / "cases.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    return "cases.jsonl.gz"


def semicolons(frame: pl.DataFrame, folder: Path) -> str:
    write_csv(frame, folder / "cases.csv", delimiter=";")
    return "cases.csv"


def crlf(frame: pl.DataFrame, folder: Path) -> str:
    write_csv(frame, folder / "cases.csv", terminator="\r\n")
    return "cases.csv"


def excel(frame: pl.DataFrame, folder: Path) -> str:
    (folder / "cases.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    return "cases.xlsx"


def comma_codes(frame: pl.DataFrame, folder: Path) -> str:
    write_csv(frame.with_columns(pl.lit("R10.11,K80.20").alias("ICD")), folder / "cases.csv")
    return "cases.csv"


def huge_report(frame: pl.DataFrame, folder: Path) -> str:
    big = pl.when(pl.int_range(pl.len()) == 3).then(pl.col("Report") + " Findings stable." * 300_000)
    write_csv(frame.with_columns(big.otherwise(pl.col("Report")).alias("Report")), folder / "cases.csv")
    return "cases.csv"


CASES = [
    Case("us_dates_without_format", plain, command="run", exit_code=2, message="'%m/%d/%Y' (40 of 40)"),
    Case("us_dates_with_format", plain, US, kept=KEPT),
    Case("iso_dates", iso, kept=KEPT),
    Case(
        "wrong_format_quarantines_most",
        plain,
        ["--set", "source.date_format=%d/%m/%Y"],
        exit_code=2,
        message="over validation.max_quarantined_share",
    ),
    Case("mixed_iso_and_us", mixed, exit_code=2, message="mixes 20 ISO values with 20 others"),
    Case("folder", in_folder, US, kept=KEPT),
    Case("glob_of_parquet", globbed, US, kept=KEPT),
    Case("csv_gz", gz_csv, US, kept=KEPT),
    Case("jsonl_gz", gz_jsonl, US, kept=KEPT),
    Case("semicolons_without_separator", semicolons, US, exit_code=2, message="source.csv.separator = ';'"),
    Case("semicolons_with_separator", semicolons, [*US, "--set", "source.csv.separator=;"], kept=KEPT),
    Case("crlf_in_quoted_cells", crlf, US, kept=KEPT),  # 'Status\r' as a header would not match the mapping
    Case("excel", excel, US, exit_code=2, message="spreadsheet workbook (.xlsx)"),
    Case(
        "comma_separated_codes",
        comma_codes,
        [*US, "-q"],  # the warning prints even with --quiet
        kept=KEPT + 1,  # every row has codes now
        message="--set source.list_separator=','",
    ),
    Case(
        "no_mapped_column_matches",
        plain,
        US,
        exit_code=2,
        message="none of the 9 columns source.columns maps",
        mapping={k: v.lower() for k, v in MAPPING.items()},
    ),
    Case(
        "columns_before_kind",  # --set order does not matter: kind first, then the rest
        plain,
        [
            *(x for k, v in MAPPING.items() for x in ("--set", f"source.columns.{k}={v}")),
            *("--set", "source.kind=files", "--set", "source.path=cases.csv", *US),
        ],
        kept=KEPT,
        kind="sample",
        mapping={},
    ),
    Case("tiny_corpus_default_split", iso, command="run", exit_code=2, message="split is empty"),
    Case(
        "one_huge_report",
        huge_report,
        [*US, *SPLIT, "--debug"],  # --debug after the command is accepted
        command="run",
        quarantined={"pull": 1, "deid": 1},
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bring_your_own_data(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAKIT_DEBUG", "")  # a case's --debug sets it for the process: undone after it
    path = case.make(export(), tmp_path)
    columns = "\n".join(f'{k} = "{v}"' for k, v in case.mapping.items())
    where = f'path = "{path}"' if case.kind == "files" else ""
    (tmp_path / "byod.toml").write_text(RECIPE.format(kind=case.kind, path=where, columns=columns))
    args = [case.command, "byod.toml", "--out", "run", "--allow-demo-key", *case.args]
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code == case.exit_code, output
    assert case.message in " ".join(output.split()), output
    if case.exit_code == 2:
        assert output.count("error:") == 1 and "Traceback" not in output
    records = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "run" / "stages").glob("*/_stage.json")}
    if case.kept is not None:
        assert records[case.command if case.command != "run" else "shard"]["rows_out"] == case.kept
    for stage, n in case.quarantined.items():
        assert records[stage]["rows_quarantined"] == n, stage
    if case.name == "one_huge_report":  # only the huge one is quarantined, with its own reason
        reasons = pl.read_parquet(tmp_path / "run" / "quarantine" / "deid.parquet")["reason"].to_list()
        assert reasons == ["too_long"]
        removed = json.loads((tmp_path / "run" / "reports" / "removed.json").read_text())
        assert removed["stages"]["deid"]["by_reason"]["too_long"]["rows"] == 1
        assert removed["stages"]["pull"]["by_reason"]["filtered:review_status"]["rows"] == 1
        keyed = removed["stages"]["pull"]["by_reason"]["filtered:review_status"]["case_ids"][0]
        assert keyed not in set(export()["AccNo"]) and len(keyed) == 32  # the page shows keyed ids only
        cert = json.loads((tmp_path / "run" / "reports" / "certificate.json").read_text())
        assert cert["passed"] is True and cert["records"]["test"]["rows"] > 0
    shutil.rmtree(tmp_path / "run", ignore_errors=True)

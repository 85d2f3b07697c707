"""The case schema every recipe reads, type conforming, and row validation with quarantine.

`conform` turns any source frame (already renamed to schema names) into the typed schema; `validate` splits
it into valid rows, quarantined rows (with a reason), and rows filtered out by review status. All checks are
Polars expressions; no row loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from datakit.columns import REQUIRED, SCHEMA_COLUMNS, Task
from datakit.errors import SourceError
from datakit.sources.dates import ISO_TIMESTAMP, iso_date

CASE_SCHEMA: dict[str, pl.DataType] = {
    "case_id": pl.String(),
    "patient_id": pl.String(),
    "accession": pl.String(),
    "exam_date": pl.Date(),
    "exam_description": pl.String(),
    "reason_for_exam": pl.String(),
    "report_text": pl.String(),
    "impression": pl.String(),
    "cpt_codes": pl.List(pl.String()),
    "modifiers": pl.List(pl.String()),
    "icd10_codes": pl.List(pl.String()),
    "initial_icd10_codes": pl.List(pl.String()),
    "review_status": pl.String(),
    "updated_at": pl.Datetime("us"),
}
assert tuple(CASE_SCHEMA) == SCHEMA_COLUMNS

LIST_COLUMNS = tuple(c for c, t in CASE_SCHEMA.items() if isinstance(t, pl.List))
TEXT_COLUMNS = tuple(c for c, t in CASE_SCHEMA.items() if t == pl.String())

# Columns whose absence or emptiness quarantines a row, per task.

# Everything but the bookkeeping columns: two rows with the same case_id and different content conflict.
CONTENT_COLUMNS = tuple(c for c in SCHEMA_COLUMNS if c not in ("updated_at", "review_status"))


@dataclass
class Validated:
    cases: pl.DataFrame
    quarantine: pl.DataFrame
    # (case_id, review_status) of the rows validation.review_status left out: ids for the auditor's removed page
    filtered_rows: pl.DataFrame
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def filtered(self) -> int:
        return self.filtered_rows.height


def _to_list(name: str, dtype: pl.DataType, separator: str) -> pl.Expr:
    col = pl.col(name)
    if dtype == pl.String:
        col = col.str.split(separator)
    elif not isinstance(dtype, pl.List):
        raise SourceError(f"column '{name}' must hold a list of codes or delimited text, not {dtype}")
    items = col.cast(pl.List(pl.String)).list.eval(pl.element().str.strip_chars())
    return items.list.eval(pl.element().filter(pl.element().is_not_null() & (pl.element() != "")))


def _to_date(name: str, dtype: pl.DataType, fmt: str | None) -> pl.Expr:
    col = pl.col(name)
    if dtype == pl.Date:
        return col
    if isinstance(dtype, pl.Datetime):
        return col.dt.date()
    if dtype == pl.String:
        return col.str.strip_chars().str.to_date(fmt, strict=False) if fmt else iso_date(col)
    if dtype == pl.Null:
        return col.cast(pl.Date)
    raise SourceError(f"column '{name}' must be a date or date text, not {dtype}")


def _to_datetime(name: str, dtype: pl.DataType, fmt: str | None = None) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        # An aware timestamp is brought to UTC first; naive ones are taken as UTC already.
        utc = col.dt.convert_time_zone("UTC") if dtype.time_zone else col
        return utc.dt.replace_time_zone(None).cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    if dtype == pl.String:
        # Text with an offset (PostgREST's JSON) lands in UTC; text without one is taken as UTC. Without a format
        # only ISO 8601 text is read (a guess reads US month/day as day/month): the rest is null, then quarantined.
        text = col.str.strip_chars()
        if fmt:
            return text.str.to_datetime(fmt, time_unit="us", strict=False)
        iso = pl.when(text.str.contains(ISO_TIMESTAMP)).then(text)
        return iso.str.to_datetime(time_unit="us", strict=False, time_zone="UTC").dt.replace_time_zone(None)
    if dtype == pl.Null:
        return col.cast(pl.Datetime("us"))
    raise SourceError(f"column '{name}' must be a timestamp or timestamp text, not {dtype}")


def text_expr(name: str, dtype: pl.DataType, joiner: str = "\n\n") -> pl.Expr:
    """A column as text: a list of strings (abstract sections, turns) is joined with `joiner`."""
    col = pl.col(name)
    if isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null):
        return col.list.eval(pl.element().str.strip_chars()).list.join(joiner).str.strip_chars()
    if isinstance(dtype, pl.List | pl.Struct | pl.Array):
        raise SourceError(f"column '{name}' must hold text, not {dtype}")
    return col.cast(pl.String).str.strip_chars()


def conform(
    frame: pl.DataFrame,
    list_separator: str = ";",
    date_format: str | None = None,
    extra: tuple[str, ...] = (),
    timestamp_format: str | None = None,
) -> pl.DataFrame:
    """Cast a frame whose columns already carry schema names to the case schema, plus the recipe's `extra` text
    columns (a text task's inputs and target, a split column; a list of strings there is joined into paragraphs).

    Missing schema columns become nulls. Values that cannot be parsed become null and are flagged in
    `_bad_exam_date` / `_bad_updated_at` so `validate` can quarantine them with a reason.
    """
    wanted = {**CASE_SCHEMA, **{name: pl.String() for name in extra}}
    frame = frame.with_columns(
        pl.lit(None, dtype=dtype).alias(name) for name, dtype in wanted.items() if name not in frame.columns
    )
    schema = frame.schema
    exprs: list[pl.Expr] = []
    for name in TEXT_COLUMNS:
        dtype = schema[name]
        if isinstance(dtype, pl.List | pl.Struct | pl.Array):
            raise SourceError(f"column '{name}' must hold text, not {dtype}")
        exprs.append(pl.col(name).cast(pl.String).str.strip_chars().alias(name))
    exprs += [text_expr(name, schema[name]).alias(name) for name in extra]
    exprs += [_to_list(name, schema[name], list_separator).alias(name) for name in LIST_COLUMNS]
    exprs.append(_to_date("exam_date", schema["exam_date"], date_format).alias("exam_date"))
    exprs.append(_to_datetime("updated_at", schema["updated_at"], timestamp_format).alias("updated_at"))
    flags = [
        (pl.col(name).is_not_null() & (pl.col(name).cast(pl.String).str.strip_chars() != "")).alias(f"_had_{name}")
        for name in ("exam_date", "updated_at")
    ]
    out = frame.with_columns(flags).with_columns(exprs)
    out = out.with_columns(
        (pl.col("_had_exam_date") & pl.col("exam_date").is_null()).alias("_bad_exam_date"),
        (pl.col("_had_updated_at") & pl.col("updated_at").is_null()).alias("_bad_updated_at"),
    )
    return out.select(*SCHEMA_COLUMNS, *extra, "_bad_exam_date", "_bad_updated_at")


def _is_empty(name: str, text: bool = False) -> pl.Expr:
    col = pl.col(name)
    if name in LIST_COLUMNS:
        return col.is_null() | (col.list.len() == 0)
    if name in TEXT_COLUMNS or text:
        return col.is_null() | (col == "")
    return col.is_null()


def _content_key(extra: tuple[str, ...]) -> pl.Expr:
    columns = (*CONTENT_COLUMNS, *extra)
    parts = [pl.col(c).list.join(",") if c in LIST_COLUMNS else pl.col(c).cast(pl.String) for c in columns]
    return pl.concat_str([p.fill_null("\x00") for p in parts], separator="\x1f")


def validate(
    frame: pl.DataFrame,
    task: Task | tuple[str, ...],
    review_status: list[str],
    extra: tuple[str, ...] = (),
    checks: tuple[pl.Expr, ...] = (),
) -> Validated:
    """Split conformed rows into valid cases, quarantined rows (with `reason`), and a filtered count.

    `task`: a task name, or the required columns themselves (a text task's); `extra`: the recipe's own text
    columns (kept, and part of a case's content); `checks`: more `when(...).then(reason)` expressions."""
    required = REQUIRED[task] if isinstance(task, str) else task
    frame = frame.with_row_index("_row")
    if review_status:
        keep = pl.col("review_status").is_in(review_status).fill_null(False)
        left_out = frame.filter(~keep).select("case_id", "review_status")
        frame = frame.filter(keep)
    else:
        left_out = frame.clear().select("case_id", "review_status")

    tests: list[pl.Expr] = [
        pl.when(pl.col("_bad_exam_date")).then(pl.lit("unparseable:exam_date")),
        pl.when(pl.col("_bad_updated_at")).then(pl.lit("unparseable:updated_at")),
    ]
    for name in required:
        bad = (
            _is_empty(name, name in extra)
            if name != "exam_date"
            else pl.col("exam_date").is_null() & ~pl.col("_bad_exam_date")
        )
        tests.append(pl.when(bad).then(pl.lit(f"empty:{name}")))
    tests += checks
    frame = frame.with_columns(pl.concat_str(tests, separator="; ", ignore_nulls=True).alias("reason"))
    frame = frame.with_columns(pl.when(pl.col("reason") != "").then(pl.col("reason")).alias("reason"))

    # Duplicate case ids among rows that passed the row checks.
    ok = frame.filter(pl.col("reason").is_null()).with_columns(_content_key(extra).alias("_content"))
    ok = ok.with_columns(
        pl.col("_content").n_unique().over("case_id").alias("_versions"),
        pl.col("_row").rank("ordinal").over("case_id").alias("_copy"),
    )
    ok = ok.with_columns(
        pl.when(pl.col("_versions") > 1)
        .then(pl.lit("duplicate_case_id:conflicting_content"))
        .when(pl.col("_copy") > 1)
        .then(pl.lit("duplicate_case_id:identical"))
        .alias("reason")
    ).drop("_content", "_versions", "_copy")

    rejected = pl.concat([frame.filter(pl.col("reason").is_not_null()), ok.filter(pl.col("reason").is_not_null())])
    rejected = rejected.sort("_row").drop("_bad_exam_date", "_bad_updated_at", "_row")
    cases = ok.filter(pl.col("reason").is_null()).sort("_row").select(*SCHEMA_COLUMNS, *extra)
    reasons = (
        rejected.select(pl.col("reason").str.split("; ").explode()).to_series().value_counts(sort=True)
        if rejected.height
        else None
    )
    counts = {} if reasons is None else dict(zip(reasons["reason"].to_list(), reasons["count"].to_list(), strict=True))
    return Validated(cases=cases, quarantine=rejected, filtered_rows=left_out, reasons=counts)

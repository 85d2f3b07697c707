"""Date and timestamp columns read as text: ISO 8601 unless the recipe names a format, never a guess.

A guess is how `03/12/2024` became 3 December: a reader that infers the format from the first value reads a US
month/day column as day/month wherever both parse, keeps those rows with swapped dates (date shifting and time
cut-offs then use them) and quarantines the rest. Here a text column without `source.date_format` is read as
ISO (`YYYY-MM-DD`, a time after it allowed); a column that is not ISO but reads under a common format is refused
with one line naming the formats that fit, so the user chooses. Messages carry counts and format names only,
never a value (dates are PHI).
"""

from __future__ import annotations

import polars as pl

from datakit.errors import SourceError

ISO_DATE = r"^\d{4}-\d{2}-\d{2}(?:$|[T ])"
ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}(?:$|[T ]\d{2}:\d{2})"
# Formats people export dates in; the refusal lists those under which every non-ISO value parses.
COMMON_DATE_FORMATS = (
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%Y/%m/%d",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%Y%m%d",
    "%d-%b-%Y",
    "%d %b %Y",
    "%b %d, %Y",
    "%m/%d/%y",
    "%d/%m/%y",
)
COMMON_TIMESTAMP_FORMATS = tuple(f"{d} %H:%M" for d in COMMON_DATE_FORMATS[:6]) + tuple(
    f"{d} %H:%M:%S" for d in COMMON_DATE_FORMATS[:6]
)


def iso_date(column: pl.Expr) -> pl.Expr:
    """ISO dates (a time after the date is dropped); anything else is null."""
    text = column.str.strip_chars()
    return pl.when(text.str.contains(ISO_DATE)).then(text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False))


def _fits(values: pl.Series, formats: tuple[str, ...], timestamp: bool) -> dict[str, int]:
    def parse(fmt: str) -> pl.Series:
        return values.str.to_datetime(fmt, strict=False) if timestamp else values.str.to_date(fmt, strict=False)

    return {f: int(parse(f).is_not_null().sum()) for f in formats}


def check_text_dates(values: pl.Series, label: str, knob: str, timestamp: bool = False) -> None:
    """Refuse a text column that is not ISO when a common format reads its values (or a column mixing ISO and
    such values): one line naming the candidates and the recipe key that settles it. Values no format reads are
    left to quarantine (`unparseable:<column>`), row by row."""
    if values.dtype != pl.String:
        return
    text = values.drop_nulls().str.strip_chars()
    text = text.filter(text != "")
    if text.is_empty():
        return
    iso = text.str.contains(ISO_TIMESTAMP if timestamp else ISO_DATE)
    others = text.filter(~iso)
    if others.is_empty():
        return
    fits = _fits(others, COMMON_TIMESTAMP_FORMATS if timestamp else COMMON_DATE_FORMATS, timestamp)
    best = max(fits.values())
    if best * 2 <= others.len():
        return  # mostly values no common format reads: they quarantine as unparseable, with their count
    candidates = sorted((f for f, n in fits.items() if n == best), key=list(fits).index)
    if len(candidates) == 1:
        near = sorted((f for f, n in fits.items() if n and f not in candidates), key=lambda f: -fits[f])[:1]
        candidates += near
    listed = " or ".join(f"'{f}' ({fits[f]:,} of {others.len():,})" for f in candidates[:3])
    iso_n = int(iso.sum())
    what = (
        f"mixes {iso_n:,} ISO values with {others.len():,} others"
        if iso_n
        else f"holds {others.len():,} values that are not ISO (YYYY-MM-DD)"
    )
    raise SourceError(
        f"{label} {what}, and {knob} is not set, so they are not guessed (03/12/2024 is March or December): "
        f"they read as {listed}; set {knob} to the one your export uses, e.g. --set {knob}='{candidates[0]}'"
        + (" (a mixed column must be exported in one format first)" if iso_n else "")
    )

"""Text dates: ISO unless the recipe names a format; a column in another format is refused, never guessed."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from datakit.errors import SourceError
from datakit.schema import conform
from datakit.sources.dates import check_text_dates


def test_iso_dates_pass_and_parse_with_or_without_a_time() -> None:
    values = pl.Series(["2024-03-12", " 2024-12-31 ", "2024-03-12T10:00:00", None, ""])
    check_text_dates(values, "exam_date", "source.date_format")
    frame = conform(pl.DataFrame({"case_id": ["a"] * 5, "exam_date": values}))
    assert frame["exam_date"].to_list()[:3] == [dt.date(2024, 3, 12), dt.date(2024, 12, 31), dt.date(2024, 3, 12)]


def test_us_dates_are_refused_naming_the_formats_that_fit_and_no_value() -> None:
    values = pl.Series(["03/12/2024", "12/31/2024", "1/2/2023"])
    with pytest.raises(SourceError) as err:
        check_text_dates(values, "exam_date (source column 'StudyDate')", "source.date_format")
    message = str(err.value)
    assert "'%m/%d/%Y' (3 of 3)" in message and "'%d/%m/%Y' (2 of 3)" in message
    assert "--set source.date_format='%m/%d/%Y'" in message
    assert not any(v in message for v in ("12/31/2024", "1/2/2023"))  # dates are PHI: counts and formats only


def test_a_column_mixing_iso_and_day_first_is_refused() -> None:
    values = pl.Series(["2024-03-12", "2024-03-13", "13.03.2024", "14.03.2024"])
    with pytest.raises(SourceError, match=r"mixes 2 ISO values with 2 others.*'%d\.%m\.%Y'"):
        check_text_dates(values, "exam_date", "source.date_format")


def test_values_no_format_reads_are_left_to_quarantine() -> None:
    check_text_dates(pl.Series(["2024-03-12", "unknown", "n/a"]), "exam_date", "source.date_format")
    frame = conform(pl.DataFrame({"case_id": ["a", "b", "c"], "exam_date": ["2024-03-12", "unknown", "n/a"]}))
    assert frame["_bad_exam_date"].to_list() == [False, True, True]


def test_a_named_format_is_used_and_the_guess_is_gone() -> None:
    us = pl.DataFrame({"case_id": ["a"], "exam_date": ["03/12/2024"]})
    assert conform(us, date_format="%m/%d/%Y")["exam_date"][0] == dt.date(2024, 3, 12)
    assert conform(us)["exam_date"][0] is None  # never read as 3 December
    stamps = pl.DataFrame({"case_id": ["a", "b"], "updated_at": ["2024-03-12T10:00:00+02:00", "03/12/2024 10:00"]})
    out = conform(stamps)["updated_at"].to_list()
    assert out[0] == dt.datetime(2024, 3, 12, 8, 0) and out[1] is None
    with pytest.raises(SourceError, match=r"source\.timestamp_format"):
        check_text_dates(
            pl.Series(["03/12/2024 10:00", "04/12/2024 11:00"]), "updated_at", "source.timestamp_format", True
        )

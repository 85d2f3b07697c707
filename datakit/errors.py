"""Errors a user can cause. The CLI prints their message in one line and exits non-zero.

Messages name the problem and the fix; they never contain record text (PHI discipline).
"""

from __future__ import annotations

import re


class DatakitError(Exception):
    """Base class for every error a user can cause and fix."""


class RecipeError(DatakitError):
    """The recipe (or a --set override) is invalid."""


class SourceError(DatakitError):
    """A source cannot be read: missing file, unknown format, missing mapped column."""


class SchemaError(DatakitError):
    """Rows break the case schema and the run is strict."""


class StageError(DatakitError):
    """A stage cannot run: its inputs are missing or a safety check failed."""


class RunLockedError(DatakitError):
    """Another process is writing the same run directory."""


class VerifyError(DatakitError):
    """Shards do not match their manifest."""


_HEADER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .#/()\-]{0,47}")


def looks_like_header(columns: list[str]) -> bool:
    """Whether column names read like a header: short, a letter first, at most four words, no date or number
    shapes. A header-less CSV's "header" is its first record, which must never reach a message."""
    return all(
        _HEADER_NAME.fullmatch(c) and len(c.split()) <= 4 and sum(ch.isdigit() for ch in c) <= 3 for c in columns
    )


def column_listing(columns: list[str]) -> str:
    """The columns of a file for a message: their names when they read like a header, else only their count."""
    if looks_like_header(columns):
        return f"columns there: {', '.join(columns)}"
    return (
        f"its {len(columns)} column names are not shown: they do not read like a header (digits, long text or more "
        "than four words), so the file may have no header row: add one"
    )

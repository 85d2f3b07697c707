"""Errors a user can cause. The CLI prints their message in one line and exits non-zero.

Messages name the problem and the fix; they never contain record text (PHI discipline).
"""

from __future__ import annotations


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


class VerifyError(DatakitError):
    """Shards do not match their manifest."""

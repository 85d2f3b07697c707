"""The `files` source: Parquet, CSV, JSONL, JSON and XML files mapped onto the case schema by the recipe.

JSON: an array of objects, or an object whose values are objects (PubMedQA's `ori_pqal.json`: the keys become
column `_key`). XML: one row per element `source.xml.record` finds under each document's root, columns read by
ElementTree paths (MedQuAD: `QAPairs/QAPair`, `Question`, `Question/@qtype`, and per document `@id`, `Focus`).
"""

from __future__ import annotations

import fnmatch
import glob
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import polars as pl

from datakit.errors import SourceError, column_listing
from datakit.recipe import SCHEMA_COLUMNS, FilesSource, Mapped, XmlRecords
from datakit.schema import text_expr

_SUFFIX_FORMAT = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".xml": "xml",
}
KEY_COLUMN = "_key"


def _format_of(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    fmt = _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(f"cannot tell the format of '{path}': set source.format to parquet, csv, jsonl, json or xml")
    return fmt


def _read_json(path: Path) -> pl.DataFrame:
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        raise SourceError(f"cannot read '{path}' as json: not a complete JSON document (truncated?)") from None
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        rows = [{KEY_COLUMN: key, **value} for key, value in data.items()]
    elif isinstance(data, list) and all(isinstance(v, dict) for v in data):
        rows = data
    else:
        raise SourceError(
            f"cannot read '{path}' as json: expected an array of objects or an object of objects (one per record)"
        )
    if not rows:
        raise SourceError(f"'{path}' holds no records")
    return pl.from_dicts(rows, infer_schema_length=None)


def _xml_value(element: ET.Element, path: str) -> str | None:
    """The text (all of it, nested elements included) at an ElementTree path, or an attribute (`a/b/@name`)."""
    where, _, attribute = path.rpartition("@") if "@" in path else (path, "", "")
    where = where.rstrip("/")
    found = element.find(where) if where else element
    if found is None:
        return None
    if attribute:
        return found.get(attribute)
    return "".join(found.itertext())


def _read_xml(path: Path, spec: XmlRecords | None) -> pl.DataFrame:
    if spec is None:
        raise SourceError(f"'{path}' is XML: give source.xml (record and field paths)")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise SourceError(f"cannot read '{path}' as xml: malformed at line {line}, column {column}") from None
    document = {name: _xml_value(root, where) for name, where in spec.document.items()}
    rows: list[dict[str, Any]] = [
        {**document, **{name: _xml_value(record, where) for name, where in spec.fields.items()}}
        for record in root.iterfind(spec.record)
    ]
    columns = [*spec.document, *spec.fields]
    return (
        pl.DataFrame(rows, schema={c: pl.String for c in columns})
        if rows
        else pl.DataFrame(schema={c: pl.String for c in columns})
    )


def _read_one(path: Path, fmt: str, xml: XmlRecords | None = None) -> pl.DataFrame:
    if path.stat().st_size == 0:
        raise SourceError(f"'{path}' is empty (0 bytes): export the cases again, or point source.path elsewhere")
    if fmt == "json":
        return _read_json(path)
    if fmt == "xml":
        return _read_xml(path, xml)
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "csv":
            # Text in, types decided by the schema: no inference surprises (leading zeros in MRNs, etc.).
            return pl.read_csv(path, infer_schema=False)
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        # Exception text from readers can quote cell content: the cause is found again here, by position only.
        raise SourceError(f"cannot read '{path}' as {fmt}: {diagnose(path, fmt)}") from None


def _first_bad_utf8(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def diagnose(path: Path, fmt: str) -> str:
    """Why a file that exists cannot be read, and the fix: by byte offset or line number, never by content."""
    data = path.read_bytes()
    if not data.strip():
        return "the file holds only whitespace (no rows, no header): export the cases again"
    if fmt == "parquet":
        if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
            return (
                "not a Parquet file (no PAR1 marker at its start and end): the file is truncated or of another "
                "format; set source.format to csv or jsonl if it is one of those"
            )
        return "the Parquet footer or a column chunk is corrupt (truncated copy?): export the file again"
    bad = _first_bad_utf8(data)
    if bad is not None:
        line = data.count(b"\n", 0, bad) + 1
        return (
            f"bytes that are not UTF-8 at byte offset {bad} (line {line}): re-export as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 '{path.name}' > fixed.{fmt}`"
        )
    if fmt == "jsonl":
        for number, text in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError:
                return f"line {number} is not a complete JSON object (truncated or malformed): fix or remove it"
            if not isinstance(value, dict):
                return f"line {number} is JSON but not an object (one case per line, as {{...}}): fix it"
        return "the lines are JSON objects but their fields have clashing types: check the column types"
    return (
        "the CSV rows do not parse (unbalanced quotes or a different separator?): check the file, or set "
        "source.format if it is not CSV"
    )


def resolve_paths(pattern: str, exclude: list[str] | None = None) -> list[Path]:
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    paths = [p for p in paths if not any(fnmatch.fnmatch(p.name, x) for x in exclude or ())]
    if not paths:
        raise SourceError(f"source.path '{pattern}' matches no file (paths are relative to the working directory)")
    return paths


def _missing(frame: pl.DataFrame, where: str, src: str, origin: str) -> SourceError:
    return SourceError(f"{where} names column '{src}', which {origin} does not have ({column_listing(frame.columns)})")


TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")


def template_expr(template: str, frame: pl.DataFrame, where: str, origin: str) -> pl.Expr:
    """`template` with each {column} replaced by that column's text (a list of strings joined in paragraphs)."""
    parts: list[pl.Expr] = []
    at = 0
    for m in TEMPLATE_FIELD.finditer(template):
        column = m.group(1)
        if column not in frame.columns:
            raise _missing(frame, where, column, origin)
        parts += [pl.lit(template[at : m.start()]), text_expr(column, frame.schema[column])]
        at = m.end()
    parts.append(pl.lit(template[at:]))
    return pl.concat_str(parts)


def map_columns(frame: pl.DataFrame, cfg: Mapped, origin: str, extra: tuple[str, ...] = ()) -> pl.DataFrame:
    """Rename source columns to schema names (and the recipe's `extra` columns), compose ids, add recipe
    constants, drop everything else."""
    templates = cfg.templates if isinstance(cfg, FilesSource) else {}
    exprs: list[pl.Expr] = []
    for name in (*SCHEMA_COLUMNS, *extra):
        if name in templates:
            exprs.append(template_expr(templates[name], frame, f"source.templates.{name}", origin).alias(name))
        elif name in cfg.columns:
            src = cfg.columns[name]
            if src not in frame.columns:
                raise _missing(frame, f"source.columns.{name}", src, origin)
            exprs.append(pl.col(src).alias(name))
        elif name in cfg.defaults:
            exprs.append(pl.lit(cfg.defaults[name]).alias(name))
        elif name in frame.columns:
            exprs.append(pl.col(name))
    if not exprs:
        raise SourceError(
            f"{origin} has none of the case schema's columns (case_id, report_text, …) and source.columns maps none "
            f"of its own: name them in source.columns ({column_listing(frame.columns)})"
        )
    return frame.select(exprs)


def read_table(pattern: str, fmt: str = "auto") -> pl.DataFrame:
    """Every file `pattern` matches, as read (no mapping): the readers and error messages of the files source."""
    frames = [_read_one(path, _format_of(path, fmt)) for path in resolve_paths(pattern)]
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def read_files(cfg: FilesSource, extra: tuple[str, ...] = ()) -> pl.DataFrame:
    frames = []
    for path in resolve_paths(cfg.path, cfg.exclude):
        raw = _read_one(path, _format_of(path, cfg.format), cfg.xml)
        if cfg.file_column is not None:
            raw = raw.with_columns(pl.lit(path.stem).alias(cfg.file_column))
        frames.append(map_columns(raw, cfg, f"'{path}'", extra))
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]

"""The `files` source: Parquet, CSV, JSONL, JSON and XML files mapped onto the case schema by the recipe.

JSON: an array of objects, or an object whose values are objects (PubMedQA's `ori_pqal.json`: the keys become
column `_key`). XML: one row per element `source.xml.record` finds under each document's root, columns read by
ElementTree paths (MedQuAD: `QAPairs/QAPair`, `Question`, `Question/@qtype`, and per document `@id`, `Focus`).
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import polars as pl

from datakit.errors import SourceError, column_listing
from datakit.recipe import SCHEMA_COLUMNS, CsvOptions, FilesSource, Mapped, XmlRecords
from datakit.schema import text_expr

COMPRESSED = (".gz", ".zst", ".zstd")  # polars decompresses CSV and JSONL itself; JSON .gz is read with gzip
EXCEL = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods", ".numbers")
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


def _data_suffix(path: Path) -> str:
    """The format suffix of a file name, under a compression suffix (`cases.csv.gz` → `.csv`)."""
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _format_of(path: Path, declared: str) -> str:
    suffix = _data_suffix(path)
    if suffix in EXCEL:
        raise SourceError(
            f"'{path}' is a spreadsheet workbook ({suffix}), which datakit does not read: save the sheet as CSV "
            "(UTF-8) and point source.path at that file"
        )
    if declared != "auto":
        return declared
    fmt = _SUFFIX_FORMAT.get(suffix)
    if fmt is None:
        raise SourceError(
            f"cannot tell the format of '{path}': set source.format to parquet, csv, jsonl, json or xml (csv and "
            "jsonl may also be .gz or .zst compressed)"
        )
    return fmt


def _read_json(path: Path) -> pl.DataFrame:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix.lower() == ".gz" else path.read_bytes()
        data = json.loads(raw)
    except (ValueError, OSError, EOFError):
        raise SourceError(f"cannot read '{path}' as json: not a complete JSON document (truncated?)") from None
    except RecursionError:
        raise SourceError(f"cannot read '{path}' as json: its objects nest too deeply to be records") from None
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


def _clean_header(frame: pl.DataFrame) -> pl.DataFrame:
    """Column names without a byte-order mark or the CR/LF a CRLF file inside quoted cells leaves on them."""
    clean = {c: c.strip("\r\n\ufeff ") for c in frame.columns}
    if all(k == v for k, v in clean.items()) or len(set(clean.values())) < len(clean):
        return frame
    return frame.rename(clean)


def _read_one(path: Path, fmt: str, xml: XmlRecords | None = None, csv: CsvOptions | None = None) -> pl.DataFrame:
    return _clean_header(_read_raw(path, fmt, xml, csv or CsvOptions()))


def _read_raw(path: Path, fmt: str, xml: XmlRecords | None, csv: CsvOptions) -> pl.DataFrame:
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
            return pl.read_csv(path, infer_schema=False, separator=csv.separator, quote_char=csv.quote_char)
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        # Exception text from readers can quote cell content: the cause is found again here, by position only.
        raise SourceError(f"cannot read '{path}' as {fmt}: {diagnose(path, fmt, csv.separator)}") from None


def _first_bad_utf8(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def _header_separator(data: bytes, separator: str) -> str | None:
    """Another separator the first line holds more of than the one the recipe names (only counts are read)."""
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    counts = {sep: first.count(sep) for sep in (",", ";", "\t", "|") if sep != separator}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] > max(1, first.count(separator)) else None


def diagnose(path: Path, fmt: str, separator: str = ",") -> str:
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
            except RecursionError:
                return f"line {number} nests objects too deeply to be a record: flatten it"
            if not isinstance(value, dict):
                return f"line {number} is JSON but not an object (one case per line, as {{...}}): fix it"
        return "the lines are JSON objects but their fields have clashing types: check the column types"
    other = _header_separator(data, separator) if path.suffix.lower() not in COMPRESSED else None
    if other is not None:
        spelled = "\\t" if other == "\t" else other
        return (
            f"its first line is separated by '{spelled}', not '{separator}': set source.csv.separator = "
            f"'{spelled}' (--set source.csv.separator='{spelled}')"
        )
    return (
        "the CSV rows do not parse (unbalanced quotes or a different separator?): check the file, set "
        "source.csv.separator, or set source.format if it is not CSV"
    )


def _readable(path: Path) -> bool:
    return _data_suffix(path) in _SUFFIX_FORMAT and not path.name.startswith(".")


def resolve_paths(pattern: str, exclude: list[str] | None = None) -> list[Path]:
    """The files a `source.path` names: a file, every readable file below a folder (hidden files and files of
    other formats left out), or what a glob matches (folders it matches left out)."""
    folder = Path(pattern)
    if folder.is_dir():
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and _readable(p))
        where = f"folder '{pattern}' holds no parquet, csv, jsonl, json or xml file (compressed .gz/.zst included)"
    else:
        paths = sorted(p for p in map(Path, glob.glob(pattern, recursive=True)) if p.is_file())
        where = f"source.path '{pattern}' matches no file (paths are relative to the working directory)"
    paths = [p for p in paths if not any(fnmatch.fnmatch(p.name, x) for x in exclude or ())]
    if not paths:
        raise SourceError(where)
    return paths


def _columns_seen(frame: pl.DataFrame) -> tuple[str, str]:
    """How a message shows the frame's columns, and a separator hint: a CSV read with the wrong separator has one
    column whose name holds the real separator (then only the column count is shown)."""
    found = next((sep for sep in (";", "\t", "|", ",") if sep in frame.columns[0]), None) if frame.width == 1 else None
    if found is None:
        return column_listing(frame.columns), ""
    spelled = "\\t" if found == "\t" else found
    hint = f"; the file reads as one column: is its separator '{spelled}'? set source.csv.separator = '{spelled}'"
    return f"{frame.width} column", hint


def _missing(frame: pl.DataFrame, where: str, src: str, origin: str) -> SourceError:
    listing, hint = _columns_seen(frame)
    return SourceError(f"{where} names column '{src}', which {origin} does not have ({listing}){hint}")


def check_mapping(frame: pl.DataFrame, cfg: Mapped, origin: str) -> None:
    """Every mapped source column is in the frame; when none is, say so once (the wrong file or separator)."""
    missing = {name: src for name, src in cfg.columns.items() if src not in frame.columns}
    if not missing:
        return
    if len(missing) == len(cfg.columns) > 1:
        listing, hint = _columns_seen(frame)
        hint = hint or (
            "; is source.path the right file, or are its columns named otherwise? "
            "`datakit recipe check` shows the mapping"
        )
        raise SourceError(f"none of the {len(missing)} columns source.columns maps is in {origin} ({listing}){hint}")
    name, src = next(iter(missing.items()))
    more = f" (and {len(missing) - 1} more mapped columns)" if len(missing) > 1 else ""
    raise SourceError(str(_missing(frame, f"source.columns.{name}", src, origin)) + more)


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
    check_mapping(frame, cfg, origin)
    exprs: list[pl.Expr] = []
    for name in (*SCHEMA_COLUMNS, *extra):
        if name in templates:
            exprs.append(template_expr(templates[name], frame, f"source.templates.{name}", origin).alias(name))
        elif name in cfg.columns:
            exprs.append(pl.col(cfg.columns[name]).alias(name))  # present: check_mapping ran first
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
        raw = _read_one(path, _format_of(path, cfg.format), cfg.xml, cfg.csv)
        if cfg.file_column is not None:
            raw = raw.with_columns(pl.lit(path.stem).alias(cfg.file_column))
        frames.append(map_columns(raw, cfg, f"'{path}'", extra))
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]

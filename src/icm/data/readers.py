"""Readers for JSON arrays, JSONL (optionally gzipped) and CSV that keep the 1-based line
of every record, so that a malformed record stops with "file:line: field 'x': ...", and the
field getters that name file, line and field the same way. Parsed files are cached per
process (keyed by path, size and mtime); callers must not mutate the records they get."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from icm.errors import DataError

Record = tuple[int, dict[str, Any]]  # (1-based line where the record starts, its fields)


def file_key(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError("not found", path=path) from None
    return (str(path), st.st_size, st.st_mtime_ns)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"not a readable gzip file ({e})", path=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError("not UTF-8 text", path=path, line=line) from None


class DuplicateKey(ValueError):
    """A JSON object names one key twice (json would silently keep the last value)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key '{key}'")
        self.key = key


class InvalidText(ValueError):
    """A JSON string holds a lone surrogate (`"\\ud800"`): valid JSON, but no Unicode
    text; it would fail far from the file (the C++ core, a UTF-8 write)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"field '{key}': not valid Unicode text")
        self.key = key


def is_valid_text(text: str) -> bool:
    """False for a string with a lone surrogate, which no UTF-8 encoder accepts."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _holds_invalid_text(value: Any) -> bool:
    # Objects inside are checked by their own hook call; lists are walked here.
    if isinstance(value, str):
        return not is_valid_text(value)
    if isinstance(value, list):
        return any(_holds_invalid_text(item) for item in value)
    return False


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook for json: an object with a key twice is an error, not a silent
    choice of the last value (which of two labels did the author mean?); a key or value
    that is not valid Unicode text (a lone surrogate) is an error too."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        if not is_valid_text(key):
            raise InvalidText(key.encode("ascii", "backslashreplace").decode("ascii"))
        if _holds_invalid_text(value):
            raise InvalidText(key)
        obj[key] = value
    return obj


def read_json_records(path: Path) -> list[Record]:
    """A JSON array of objects, each with the line it starts on."""
    return list(_read_json_records(*file_key(path)))


@functools.lru_cache(maxsize=16)
def _read_json_records(name: str, size: int, mtime: int) -> tuple[Record, ...]:
    path = Path(name)
    text = _read_text(path)
    lines = _LineCounter(text)
    decoder = json.JSONDecoder(object_pairs_hook=reject_duplicate_keys)
    n = len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    i = skip(0)
    if i == n:
        raise DataError("empty file", path=path)
    if text[i] != "[":
        raise DataError("expected a JSON array of objects", path=path, line=lines.at(i))
    i = skip(i + 1)
    out: list[Record] = []
    if i < n and text[i] == "]":
        return ()
    while True:
        line = lines.at(i)
        try:
            obj, i = decoder.raw_decode(text, i)
        except DuplicateKey as e:
            raise DataError("duplicate key", path=path, line=line, field=e.key) from None
        except InvalidText as e:
            raise DataError("not valid Unicode text", path=path, line=line, field=e.key) from None
        except json.JSONDecodeError as e:
            msg = f"bad JSON: {e.msg} (column {e.colno})"
            raise DataError(msg, path=path, line=e.lineno) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {_json_type(obj)}", path=path, line=line)
        out.append((line, obj))
        i = skip(i)
        if i < n and text[i] == ",":
            i = skip(i + 1)
            continue
        if i < n and text[i] == "]":
            break
        raise DataError("bad JSON: expected ',' or ']'", path=path, line=lines.at(min(i, n)))
    end = skip(i + 1)
    if end != n:
        raise DataError("bad JSON: extra data after the array", path=path, line=lines.at(end))
    return tuple(out)


def read_jsonl_records(path: Path) -> list[Record]:
    """One JSON object per line (.jsonl or .jsonl.gz); blank lines are skipped."""
    return list(_read_jsonl_records(*file_key(path)))


@functools.lru_cache(maxsize=16)
def _read_jsonl_records(name: str, size: int, mtime: int) -> tuple[Record, ...]:
    path = Path(name)
    text = _read_text(path)
    out: list[Record] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=reject_duplicate_keys)
        except DuplicateKey as e:
            raise DataError("duplicate key", path=path, line=lineno, field=e.key) from None
        except InvalidText as e:
            raise DataError("not valid Unicode text", path=path, line=lineno, field=e.key) from None
        except json.JSONDecodeError as e:
            raise DataError(
                f"bad JSON: {e.msg} (column {e.colno})", path=path, line=lineno
            ) from None
        if not isinstance(obj, dict):
            raise DataError(
                f"expected a JSON object, got {_json_type(obj)}", path=path, line=lineno
            )
        out.append((lineno, obj))
    if not out:
        raise DataError("empty file (no JSON lines)", path=path)
    return tuple(out)


def read_csv_records(
    path: Path, *, required: Sequence[str] = (), header: Sequence[str] | None = None
) -> list[Record]:
    """CSV rows as dicts keyed by the header (or by `header` for header-less files).

    A missing required column stops at line 1; a row with the wrong number of fields
    stops at its line. Values are strings, exactly as in the file.
    """
    records = list(_read_csv_records(*file_key(path), tuple(header) if header else None))
    columns = tuple(header) if header else _csv_header(path)
    for name in required:
        if name not in columns:
            raise DataError(
                # escaped: a quoted header cell may hold a line break
                f"missing column (the header has: {', '.join(map(_escaped, columns))})",
                path=path,
                line=1,
                field=name,
            )
    return records


def _escaped(name: str) -> str:
    """A column name fit for a one-line message (line breaks and the like escaped)."""
    return name if name.isprintable() else json.dumps(name)[1:-1]


def _csv_header(path: Path) -> tuple[str, ...]:
    return _read_csv_all(*file_key(path), None)[0]


def _read_csv_records(
    name: str, size: int, mtime: int, header: tuple[str, ...] | None
) -> tuple[Record, ...]:
    return _read_csv_all(name, size, mtime, header)[1]


@functools.lru_cache(maxsize=16)
def _read_csv_all(
    name: str, size: int, mtime: int, header: tuple[str, ...] | None
) -> tuple[tuple[str, ...], tuple[Record, ...]]:
    path = Path(name)
    text = _read_text(path)
    if not text.strip():
        raise DataError("empty file", path=path)
    reader = csv.reader(io.StringIO(text, newline=""))
    out: list[Record] = []
    try:
        columns = tuple(c.strip() for c in next(reader)) if header is None else header
        # csv.DictReader-style reading would keep the last of two same-named columns.
        for i, name in enumerate(columns):
            if name in columns[:i]:
                raise DataError(
                    f"duplicate column (columns {columns.index(name) + 1} and {i + 1})",
                    path=path,
                    line=1,
                    field=_escaped(name),
                )
        start = reader.line_num + 1
        for row in reader:
            if row:  # csv gives [] for a blank line
                if len(row) != len(columns):
                    raise DataError(
                        f"expected {len(columns)} fields (the header's), got {len(row)}",
                        path=path,
                        line=start,
                    )
                out.append((start, dict(zip(columns, row, strict=True))))
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"bad CSV: {e}", path=path, line=reader.line_num) from None
    return columns, tuple(out)


class _LineCounter:
    """1-based line of a character offset, for offsets that mostly increase."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, offset: int) -> int:
        if offset < self.pos:
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, offset)
        self.pos = offset
        return self.line


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def get_str(
    row: Mapping[str, Any],
    name: str,
    *,
    path: Path | str,
    line: int,
    optional: bool = False,
    allow_empty: bool = False,
) -> str | None:
    """A string field; numbers are not silently turned into text."""
    if name not in row or row[name] is None:
        if optional:
            return None
        raise DataError("missing", path=path, line=line, field=name)
    value = row[name]
    if not isinstance(value, str):
        raise DataError(
            f"expected a string, got {_json_type(value)}", path=path, line=line, field=name
        )
    if not allow_empty and not value.strip():
        if optional:
            return None
        raise DataError("empty", path=path, line=line, field=name)
    return value


def req_str(row: Mapping[str, Any], name: str, *, path: Path | str, line: int) -> str:
    value = get_str(row, name, path=path, line=line)
    assert value is not None
    return value


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def parse_bool(value: Any, name: str, *, path: Path | str, line: int) -> bool:
    """true/false, 1/0 (JSON), or their spellings in CSV cells."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise DataError(
        f"expected true/false (or 1/0), got {json.dumps(value)}", path=path, line=line, field=name
    )


def req_bool(row: Mapping[str, Any], name: str, *, path: Path | str, line: int) -> bool:
    if name not in row or row[name] is None:
        raise DataError("missing", path=path, line=line, field=name)
    return parse_bool(row[name], name, path=path, line=line)


def req_id(row: Mapping[str, Any], name: str, *, path: Path | str, line: int) -> str:
    """An identifier: a string, or an integer written as text."""
    if name not in row or row[name] is None:
        raise DataError("missing", path=path, line=line, field=name)
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(
            f"expected a string or an integer, got {_json_type(value)}",
            path=path,
            line=line,
            field=name,
        )
    text = str(value).strip()
    if not text:
        raise DataError("empty", path=path, line=line, field=name)
    return text

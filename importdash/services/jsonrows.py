"""Read contact rows from JSON: an array of objects (streamed with ijson) or NDJSON (one object per line).

The header is every key the records use, in order of first appearance, found by the check pass that reads the
whole file once (and refuses JSON nested deeper than a limit, or that is not an array). A record is numbered
by its place in the file from 1: the array's nth object, or the NDJSON file's line. A value that is itself an
object or an array is kept as compact JSON text in its cell, so no column is lost; a record that is not an
object is one bad row, as is an NDJSON line that is not JSON.
"""

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import ijson

from ..errors import InvalidFile
from .mapping import ColumnMapping
from .rows import FileSource, TableSource, Unreadable, open_binary

# One decoder for every line (json.loads would build one per call); floats keep their written digits.
_decode = json.JSONDecoder(parse_float=Decimal).decode


@dataclass(frozen=True)
class JsonLimits:
    """How deep a JSON file may nest and how many keys its records may use between them."""

    max_depth: int  # levels of arrays and objects, the top-level array counted
    max_columns: int


def check_json(source: FileSource, limits: JsonLimits) -> list[str]:
    """Read a JSON array of records once and return its header; InvalidFile if it is not one, or nests too deep."""
    columns: dict[str, None] = {}  # an ordered set
    records = 0
    depth = 0
    with open_binary(source) as binary:
        events = ijson.basic_parse(_WithoutByteOrderMark(binary))
        try:
            first = next(events, None)
            if first is None:
                raise InvalidFile("The file is empty.")
            if first[0] != "start_array":
                raise InvalidFile(
                    f"The file is JSON but holds {_described_event(first)}, not an array of objects; a JSON import "
                    'is one array, [{"name": ..., "email": ...}, ...] (choose ndjson for one object per line).'
                )
            depth = 1
            for event, value in events:
                if event == "map_key":
                    if depth == 2 and value not in columns:
                        columns[value] = None
                        if len(columns) > limits.max_columns:
                            raise _too_many_columns(limits.max_columns)
                elif event in ("start_map", "start_array"):
                    if depth == 1:
                        records += 1
                    depth += 1
                    if depth > limits.max_depth:
                        raise _too_deep(f"Record {records}", limits.max_depth)
                elif event in ("end_map", "end_array"):
                    depth -= 1
                elif depth == 1:
                    records += 1  # a record that is a plain value: one bad row when read
        except ijson.JSONError as error:
            raise InvalidFile(f"The file is not valid JSON (after record {records}): {_first_line(error)}.") from None
    if not columns:
        raise InvalidFile(
            "The JSON array holds no object with a key: there is nothing to import."
            if records
            else "The JSON array is empty: there is nothing to import."
        )
    return list(columns)


def check_ndjson(source: FileSource, limits: JsonLimits, *, max_line_length: int) -> list[str]:
    """Read an NDJSON file once and return its header; InvalidFile for a line too long or nested too deep, or no
    object at all. A line that is not a JSON object is left to be one bad row."""
    columns: dict[str, None] = {}
    with open_binary(source) as binary:
        number = 0
        while line := binary.readline(max_line_length + 1):
            number += 1
            if len(line) > max_line_length and not line.endswith(b"\n"):
                raise InvalidFile(
                    f"Line {number} is longer than {max_line_length:,} bytes, the most one line may hold. "
                    "Is this an NDJSON file, one object per line?"
                )
            # Counting brackets is cheap; only a line with enough of them is measured properly.
            if line.count(b"[") + line.count(b"{") > limits.max_depth and _depth(line) > limits.max_depth:
                raise _too_deep(f"The record on line {number}", limits.max_depth)
            record = _loaded(line)
            if record.__class__ is dict:
                for key in record:
                    if key not in columns:
                        columns[key] = None
                        if len(columns) > limits.max_columns:
                            raise _too_many_columns(limits.max_columns)
    if not columns:
        raise InvalidFile(
            "No line of the file is a JSON object with a key: there is nothing to import. NDJSON is one object "
            'per line, {"name": ..., "email": ...}.'
        )
    return list(columns)


class JsonSource(TableSource):
    """Iterate the records of a JSON array under the header its check found."""

    def __init__(self, source: FileSource, columns: list[str], mapping: ColumnMapping | None):
        self.source = source
        self._bind(list(columns), mapping)

    def numbered_cells(self, start_after: int) -> Iterator[tuple[int, list[str] | Unreadable]]:
        columns = self.columns
        with open_binary(self.source) as binary:
            records = ijson.items(_WithoutByteOrderMark(binary), "item")
            for number, record in enumerate(records, start=1):
                if number > start_after:
                    yield number, _cells(record, columns, f"record {number} (counting the array's records from 1)")


class NdjsonSource(TableSource):
    """Iterate the lines of an NDJSON file, one record each, under the header its check found."""

    def __init__(self, source: FileSource, columns: list[str], mapping: ColumnMapping | None):
        self.source = source
        self._bind(list(columns), mapping)

    def numbered_cells(self, start_after: int) -> Iterator[tuple[int, list[str] | Unreadable]]:
        columns = self.columns
        with open_binary(self.source) as binary:
            for number, line in enumerate(binary, start=1):
                if number <= start_after:
                    continue
                if not line.strip():
                    yield number, []
                    continue
                record = _loaded(line)
                if record.__class__ is Unreadable:
                    yield number, Unreadable(f"line {number} is not JSON ({record.problem})")
                else:
                    yield number, _cells(record, columns, f"line {number}")


def json_text(value: object) -> str:
    """A JSON value as a cell's text: strings verbatim, numbers as written, true/false, null empty, and an object
    or array as compact JSON."""
    kind = value.__class__
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind in (int, Decimal, float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=float)


def _cells(record, columns, where):
    if record.__class__ is not dict:
        return Unreadable(f"{where} is {_described(record)}, not an object with the columns as keys")
    get = record.get
    return [json_text(get(column)) for column in columns]


def _loaded(line):
    """The line's JSON value, or Unreadable saying why it is not JSON."""
    try:
        return _decode(line.decode("utf-8-sig"))  # -sig: the first line may start with a byte order mark
    except UnicodeDecodeError:
        return Unreadable("not UTF-8 text")
    except ValueError as error:
        return Unreadable(error.msg if isinstance(error, json.JSONDecodeError) else str(error))
    except RecursionError:
        return Unreadable("nested too deep")


def _depth(line):
    """How deep the line's JSON nests (0 for a plain value); a line that is not JSON counts as 0."""
    depth = deepest = 0
    try:
        for event, _value in ijson.basic_parse(line, multiple_values=True):
            if event in ("start_map", "start_array"):
                depth += 1
                deepest = max(deepest, depth)
            elif event in ("end_map", "end_array"):
                depth -= 1
    except ijson.JSONError:
        pass
    return deepest


class _WithoutByteOrderMark:
    """The binary stream without the UTF-8 byte order mark some tools write first (ijson refuses it)."""

    def __init__(self, binary):
        self._binary = binary
        self._head = binary.read(len(codecs.BOM_UTF8))
        if self._head == codecs.BOM_UTF8:
            self._head = b""

    def read(self, size=-1):
        if self._head and size != 0:  # ijson reads 0 bytes first to learn whether the stream gives bytes
            head, self._head = self._head, b""
            return head
        return self._binary.read(size)


def _described(value):
    if isinstance(value, bool):
        return f"the value {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a number"


def _described_event(event):
    kind, value = event
    return {"start_map": "an object", "start_array": "an array", "string": "a string", "null": "null"}.get(
        kind, "a number" if kind == "number" else f"the value {str(value).lower()}"
    )


def _too_deep(what, limit):
    return InvalidFile(
        f"{what} nests objects and arrays deeper than {limit} levels, the most a JSON import may; flatten the records."
    )


def _too_many_columns(limit):
    return InvalidFile(
        f"The records use more than {limit:,} different keys between them, the most a JSON import may; "
        "is every record keyed by the same column names?"
    )


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__

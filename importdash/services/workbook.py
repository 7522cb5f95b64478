"""Read contact rows from one sheet of an Excel .xlsx workbook, streamed with openpyxl's read-only mode.

Memory stays flat in the number of rows: read-only mode parses the sheet's XML as it goes. The one part
openpyxl loads whole is the shared-strings table, so its size is capped before the workbook is opened, as is
what the archive unpacks to (a zip bomb is refused before any of it is read).

Cells come through as text, never as Excel would render them: dates in ISO 8601, numbers in their shortest
exact form (0.1, not 0.1000000000000001; 42, not 42.0), booleans as TRUE or FALSE, strings verbatim.
Row numbers are the sheet's own.
"""

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import BinaryIO

from openpyxl import load_workbook
from openpyxl.utils import coordinate_to_tuple
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet._reader import DATA_TAG, INLINE_STRING, ROW_TAG, WorkSheetParser
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse

from ..errors import ApiError, InvalidFile
from .mapping import ColumnMapping
from .rows import FileSource, TableSource, Unreadable, open_binary

WORKBOOK_PART = "xl/workbook.xml"  # the part every .xlsx workbook has, whatever wrote it
_TEXT_TAG = f"{{{SHEET_MAIN_NS}}}t"
_RUN_TAG = f"{{{SHEET_MAIN_NS}}}r"
_EXACT_INTEGERS = 2**53  # floats below this that are whole print as integers; beyond, as Python's repr


# openpyxl's read-only mode keeps, of each row it has read, an emptied XML element under the sheet's data
# (about 85 bytes a row: 85 MB for a million rows, against flat memory for CSV). Two places do it, each
# replaced here: the look for the sheet's <dimension> as the workbook opens, which parses a sheet without
# one (as openpyxl's own write-only mode saves them) to its end, before one row is read; the dimension is not
# used here, so it is not looked for. And the sheet's rows, which _RowParser reads with openpyxl's own cell
# parsing (types, shared strings, dates) but lets go of each row once read.
ReadOnlyWorksheet._get_size = lambda worksheet: None


class _RowParser(WorkSheetParser):
    """Yield a sheet's rows as openpyxl's parser does, (row number, cells), holding none of them after."""

    def parse(self):
        sheet_data = None
        for event, element in iterparse(self.source, events=("start", "end")):
            if event == "start":
                if element.tag == DATA_TAG:
                    sheet_data = element
            elif element.tag == ROW_TAG:
                row = self.parse_row(element)
                if sheet_data is not None:
                    sheet_data.clear()  # the row read, and its cells
                self.row_dimensions.clear()  # a row's height or style, which nothing here uses
                yield row

    def parse_cell(self, element):
        """openpyxl's cell, but an inline string (as openpyxl and other tools save text) read without building
        openpyxl's rich-text objects, which took half the time of reading such a sheet. Only the cell's column
        and value are used here."""
        if element.get("t") != "inlineStr":
            return super().parse_cell(element)
        coordinate = element.get("r")
        if coordinate:
            self.col_counter = coordinate_to_tuple(coordinate)[1]
        else:
            self.col_counter += 1
        inline = element.find(INLINE_STRING)
        return {"column": self.col_counter, "value": None if inline is None else _inline_text(inline)}


def _inline_text(inline):
    """An inline string's text as openpyxl's Text.content gives it: its own text, then its rich-text runs'."""
    runs = [run.findtext(_TEXT_TAG) or "" for run in inline.iterfind(_RUN_TAG)]
    return (inline.findtext(_TEXT_TAG) or "") + "".join(runs)


@dataclass(frozen=True)
class WorkbookLimits:
    """What an uploaded workbook may unpack to; over any of them it is refused before it is read."""

    max_uncompressed_bytes: int  # every part of the archive together
    max_compression_ratio: int  # unpacked size over packed size, for the archive as a whole
    max_shared_strings_bytes: int  # the shared-strings table's XML, which openpyxl loads whole


def is_workbook(archive: zipfile.ZipFile) -> bool:
    return WORKBOOK_PART in archive.NameToInfo


def check_archive(source: FileSource, limits: WorkbookLimits) -> None:
    """Refuse a workbook whose archive is broken or unpacks to more than the limits allow, reading none of it."""
    try:
        with _seekable(source) as file, zipfile.ZipFile(file) as archive:
            members = archive.infolist()
            if not is_workbook(archive):
                raise InvalidFile("The file is a ZIP archive but not an Excel .xlsx workbook (it has no workbook).")
    except (zipfile.BadZipFile, OSError, EOFError):
        raise InvalidFile("The file is not a readable Excel .xlsx workbook: its ZIP archive is damaged.") from None
    # zipfile stops at each part's declared size and checks its CRC, so the declared sizes bound what is read.
    unpacked = sum(member.file_size for member in members)
    packed = sum(member.compress_size for member in members)
    if unpacked > limits.max_uncompressed_bytes:
        raise InvalidFile(
            f"The workbook unpacks to {_megabytes(unpacked)}, more than the "
            f"{_megabytes(limits.max_uncompressed_bytes)} a workbook may. Split it, or export the sheet as CSV."
        )
    if unpacked > limits.max_compression_ratio * max(packed, 1):
        raise InvalidFile(
            f"The workbook unpacks to {unpacked // max(packed, 1):,} times its size, more than the "
            f"{limits.max_compression_ratio}:1 a workbook may; it is refused as a "
            "possible zip bomb."
        )
    strings = sum(member.file_size for member in members if member.filename.lower().endswith("sharedstrings.xml"))
    if strings > limits.max_shared_strings_bytes:
        raise InvalidFile(
            f"The workbook's shared-strings table is {_megabytes(strings)}, more than the "
            f"{_megabytes(limits.max_shared_strings_bytes)} a workbook may hold; "
            "split it, or export the sheet as CSV."
        )


class XlsxSource(TableSource):
    """Open one sheet of a workbook (the active one by default), read its header, and iterate its data rows."""

    def __init__(self, source: FileSource, sheet: str | None, mapping: ColumnMapping | None):
        """Open the workbook and read the sheet's header; without a mapping, match_columns must find one."""
        self.source = source
        self._file = _seekable(source)
        try:
            try:
                self._workbook = load_workbook(self._file, read_only=True, data_only=True, keep_links=False)
            except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, SyntaxError) as error:
                # SyntaxError: the XML parser's ParseError; KeyError: a part the workbook names is missing.
                kind = type(error).__name__
                raise InvalidFile(f"The file cannot be read as an Excel .xlsx workbook ({kind}).") from None
            self.sheet = self._choose_sheet(sheet)
            self._header_row, columns = self._read_header()
            self._bind(columns, mapping)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        workbook = getattr(self, "_workbook", None)
        if workbook is not None:
            workbook.close()
        self._file.close()

    def numbered_cells(self, start_after: int) -> Iterator[tuple[int, list[str] | Unreadable]]:
        width = len(self.columns)
        skip = max(self._header_row, start_after)
        for row, values in self._sheet_rows():
            if row <= skip:
                continue
            cells = [cell_text(value) for value in values]
            if not any(cells):
                yield row, []
                continue
            # Excel leaves empty cells out, so a row may end early; empty cells past the header are not data.
            while len(cells) > width and not cells[-1]:
                cells.pop()
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            yield row, cells

    def _sheet_rows(self):
        """Yield each row of the sheet that holds a cell: its number in the sheet, and its values from column A."""
        workbook = self._workbook
        worksheet = workbook[self.sheet]
        with workbook._archive.open(worksheet._worksheet_path) as source:
            parser = _RowParser(
                source,
                worksheet._shared_strings,
                data_only=True,
                epoch=workbook.epoch,
                date_formats=workbook._date_formats,
                timedelta_formats=workbook._timedelta_formats,
            )
            number = 0
            try:
                for number, cells in parser.parse():
                    values = [None] * max((cell["column"] for cell in cells), default=0)
                    for cell in cells:
                        values[cell["column"] - 1] = cell["value"]
                    yield number, values
            except (SyntaxError, ValueError, LookupError, zipfile.BadZipFile) as error:
                # SyntaxError: the XML parser's ParseError; LookupError: a shared string that is not in the table.
                raise InvalidFile(
                    f'The sheet "{self.sheet}" cannot be read after row {number}: the workbook is damaged '
                    f"({type(error).__name__}). Save it again, or export the sheet as CSV."
                ) from None

    def _choose_sheet(self, sheet):
        names = self._workbook.sheetnames
        if sheet is None:
            active = self._workbook.active
            sheet = active.title if active is not None else (names[0] if names else None)
        if sheet not in names:
            listed = ", ".join(f'"{name}"' for name in names)
            message = f"The workbook has no sheet named {sheet!r}; its sheets are {listed}."
            raise ApiError(message, code="invalid_parameter")
        if not hasattr(self._workbook[sheet], "iter_rows"):
            raise InvalidFile(f'The sheet "{sheet}" is a chart, not a table of rows; choose another sheet.')
        return sheet

    def _read_header(self):
        for row, values in self._sheet_rows():
            cells = [cell_text(value).strip() for value in values]
            if any(cells):
                while cells and not cells[-1]:
                    cells.pop()
                return row, cells
        raise InvalidFile(f'The sheet "{self.sheet}" is empty.')


def cell_text(value: object) -> str:
    """A cell's value as text: ISO 8601 dates, the shortest exact number, TRUE/FALSE, strings verbatim."""
    kind = value.__class__
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() and abs(value) < _EXACT_INTEGERS else repr(value)
    if kind is datetime:
        return value.date().isoformat() if value.time() == time() and value.tzinfo is None else value.isoformat()
    if kind in (date, time):
        return value.isoformat()
    if kind is timedelta:
        return _duration(value)
    return str(value)


def _duration(value):
    """A time span (a cell in an [h]:mm format) in ISO 8601, e.g. PT36H30M."""
    seconds = value.total_seconds()
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}PT{int(hours)}H{int(minutes)}M"
    if seconds:
        text += f"{seconds:g}S"
    return text


def _seekable(source) -> BinaryIO:
    """The file as a seekable binary stream, which a ZIP archive needs; a stored upload that is not is copied."""
    binary = open_binary(source)
    if binary.seekable():
        return binary
    with binary:
        copy = tempfile.TemporaryFile()
        shutil.copyfileobj(binary, copy, 1 << 20)
    copy.seek(0)
    return copy


def _megabytes(size):
    return f"{size / (1 << 20):,.0f} MB" if size >= 1 << 20 else f"{size:,} bytes"

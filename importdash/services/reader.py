"""Read contact rows from a file in any format the app reads, after checking the file once at upload.

CSV (delimited text, read with the stdlib csv module) lives here; Excel workbooks in workbook.py and JSON in
jsonrows.py. Every format gives a TableSource (rows.py): numbered rows of text cells under a header, turned
into SourceRows through the job's column mapping the same way. check_file says which format a file is (the one
named, else its content's signature, else its name's extension, else CSV) and how to read it, a CheckedFile;
CheckedFile.open opens it that way again, which is what a job's run does from the options the job stored.

A file is given as a path, or as a function that opens it as a binary stream from the start (a stored upload,
which may be in the database or a bucket): reading is sequential, and reading again opens it again.
"""

import codecs
import csv
import io
import itertools
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import ApiError, InvalidFile
from ..models import DEFAULT_ENCODING, FileFormat
from .jsonrows import JsonLimits, JsonSource, NdjsonSource, check_json, check_ndjson
from .mapping import ColumnMapping
from .rows import (
    EXTRA_KEY,
    FileSource,
    SourceRow,
    TableSource,
    Unreadable,
    check_header,
    is_blank,
    open_binary,
)
from .workbook import WorkbookLimits, XlsxSource, check_archive, is_workbook

__all__ = [  # SourceRow and EXTRA_KEY are rows.py's, named here too for the modules that read files through this one
    "EXTRA_KEY",
    "CheckedFile",
    "CsvSource",
    "FileLimits",
    "FileSource",
    "SourceRow",
    "TableSource",
    "check_file",
    "count_rows",
    "detect_format",
    "open_binary",
    "open_source",
    "parse_delimiter",
    "parse_encoding",
    "read_header",
]

REQUIRED_COLUMNS = ("name", "email")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}  # the ones detected or accepted by name
_SCAN_CHUNK_BYTES = 1 << 20  # read size while checking a file
_SNIFF_BYTES = 4096  # the start of a file, looked at for signs of what it is
# A file name's extension names its format when its content does not say.
_EXTENSIONS = {
    ".xlsx": FileFormat.XLSX,
    ".json": FileFormat.JSON,
    ".ndjson": FileFormat.NDJSON,
    ".jsonl": FileFormat.NDJSON,
}
_ZIP_SIGNATURE = b"PK\x03\x04"

# A byte order mark names its encoding; the UTF-32 marks come first because UTF-32-LE's begins with UTF-16-LE's.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# What people upload instead of a CSV file, recognised by its first bytes.
_BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (_ZIP_SIGNATURE, "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel .xls workbook or another old Office document"),
    (b"\x1f\x8b", "a gzip-compressed file"),
)
# The line breaks the csv reader sees in a file opened with newline="".
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class FileLimits:
    """What a file of each format may hold beyond the line length; over a limit it is refused at upload."""

    workbook: WorkbookLimits
    json: JsonLimits

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FileLimits":
        megabyte = 1 << 20
        return cls(
            workbook=WorkbookLimits(
                max_uncompressed_bytes=config["XLSX_MAX_UNCOMPRESSED_MB"] * megabyte,
                max_compression_ratio=config["XLSX_MAX_COMPRESSION_RATIO"],
                max_shared_strings_bytes=config["XLSX_MAX_SHARED_STRINGS_MB"] * megabyte,
            ),
            json=JsonLimits(max_depth=config["JSON_MAX_DEPTH"], max_columns=config["JSON_MAX_COLUMNS"]),
        )


def _open_text(source, encoding):
    """Open the file as text the way the csv module wants it (newline=""); LookupError for an unknown encoding."""
    binary = open_binary(source)
    try:
        return io.TextIOWrapper(binary, encoding=encoding, newline="")
    except BaseException:
        binary.close()
        raise


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """Say how to read a file that check_file accepted (and a job stored): everything open_source needs."""

    encoding: str
    delimiter: str
    columns: list[str] | None  # the header as read (a job from before they were kept: None, its CSV's own)
    mapping: ColumnMapping | None  # None: match_columns decides (a job from before mappings)
    file_format: FileFormat = FileFormat.CSV
    sheet: str | None = None  # the workbook sheet read (xlsx)

    def open(self, source: FileSource) -> TableSource:
        """Open the file this way and read its header."""
        return open_source(
            source,
            file_format=self.file_format,
            encoding=self.encoding,
            delimiter=self.delimiter,
            sheet=self.sheet,
            columns=self.columns,
            mapping=self.mapping,
        )


def open_source(
    source: FileSource,
    *,
    file_format: FileFormat,
    encoding: str,
    delimiter: str,
    sheet: str | None,
    columns: list[str] | None,
    mapping: ColumnMapping | None,
) -> TableSource:
    """Open a checked file the way check_file found (a job's stored options) and read its header."""
    if file_format is FileFormat.XLSX:
        return XlsxSource(source, sheet, mapping)
    if file_format is FileFormat.JSON:
        return JsonSource(source, columns, mapping)
    if file_format is FileFormat.NDJSON:
        return NdjsonSource(source, columns, mapping)
    return CsvSource(source, encoding, delimiter, mapping)


class CsvSource(TableSource):
    """Open a contact CSV file, check its header, and iterate its data rows."""

    def __init__(
        self,
        source: FileSource,
        encoding: str = DEFAULT_ENCODING,
        delimiter: str = ",",
        mapping: ColumnMapping | None = None,
    ):
        """Open the file and read its header; without a mapping, match_columns must find one confidently."""
        self.source = source
        self.encoding = encoding
        self.delimiter = delimiter
        try:
            self._file = _open_text(source, encoding)
        except LookupError:
            raise InvalidFile(f'"{encoding}" is not a known text encoding.') from None
        try:
            self._header_row, columns = self._read_header()
            self._bind(columns, mapping)
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        """Close the underlying file."""
        self._file.close()

    def numbered_cells(self, start_after: int) -> Iterator[tuple[int, list[str] | Unreadable]]:
        reader, row = self._reader_after(start_after)
        # zip draws each row's number before its record, so a record that raises has used its number up.
        numbers = itertools.count(row + 1)
        while True:
            try:
                yield from zip(numbers, reader, strict=False)
                return
            except csv.Error as error:
                # One unreadable record (a field over the csv module's limit) is one bad row; reading goes on
                # at the next line.
                row = next(numbers) - 1
                yield row, Unreadable(_record_problem(row, error))
                numbers = itertools.count(row + 1)
            except UnicodeError as error:
                raise self._undecodable(error) from None

    def _read_header(self):
        reader = csv.reader(self._file, delimiter=self.delimiter)
        row = 0
        try:
            for cells in reader:
                row += 1
                if not is_blank(cells):
                    columns = [cell.strip() for cell in cells]
                    # Files read as plain "utf-8" keep their byte order mark in the first name.
                    columns[0] = columns[0].lstrip("\ufeff").strip()
                    return row, columns
        except csv.Error as error:
            raise InvalidFile(f"The header (row {row + 1}) cannot be read as CSV: {error}.") from None
        except UnicodeError as error:
            raise self._undecodable(error) from None
        raise InvalidFile("The file is empty.")

    def _reader_after(self, start_after):
        """Return a reader positioned after the header and any row up to start_after, and the last row number read."""
        # Re-reading from the top lets rows() and count() be called again on the same source; a stream that
        # cannot seek (a stored upload) is opened again.
        if self._file.seekable():
            self._file.seek(0)
        else:
            self._file.close()
            self._file = _open_text(self.source, self.encoding)
        reader = csv.reader(self._file, delimiter=self.delimiter)
        records = _records(reader)
        row = 0
        last = max(self._header_row, start_after)
        try:
            while row < last:
                if next(records, None) is None:
                    break
                row += 1
        except UnicodeError as error:
            raise self._undecodable(error) from None
        return reader, row

    def _undecodable(self, error):
        """Explain a decoding failure met while reading, locating the bad byte with a scan of the file."""
        for _text in _text_blocks(self.source, self.encoding):
            pass  # raises InvalidFile naming the first undecodable byte
        return InvalidFile(f"The file is not valid {_label(self.encoding)} text: {error}.")


def detect_format(path: FileSource, file_name: str | None) -> FileFormat:
    """The file's format by its content's signature (a workbook; a JSON array or object first), else by its
    name's extension, else CSV."""
    signature = _signature(path)
    if signature is not None:
        return signature
    extension = os.path.splitext(file_name or "")[1].lower()
    return _EXTENSIONS.get(extension, FileFormat.CSV)


def check_file(
    path: FileSource,
    *,
    file_format: FileFormat | None = None,
    file_name: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    mapping: ColumnMapping | None = None,
    max_line_length: int,
    limits: FileLimits,
) -> CheckedFile:
    """Check that a file can be imported and say how to read it; raise InvalidFile naming what is wrong.

    Without a file_format the file's content (else file_name's extension) decides it; a format named for a file
    whose content is another is refused. Without a mapping the columns must match confidently
    (MappingRequired, with suggestions, otherwise). Each format has its own checks, each a pass over the file
    in blocks (memory stays flat): see _check_csv, workbook.check_archive and jsonrows.check_json.
    """
    if file_format is None:
        file_format = detect_format(path, file_name)
    else:
        _check_content_is(file_format, path)
    columns = None
    if file_format is FileFormat.CSV:
        encoding, delimiter = _check_csv(path, encoding, delimiter, max_line_length)
    else:
        # The encoding and delimiter are CSV's; a workbook or JSON names its own (JSON is UTF-8, RFC 8259).
        encoding, delimiter = DEFAULT_ENCODING, ","
        if file_format is FileFormat.XLSX:
            check_archive(path, limits.workbook)
        elif file_format is FileFormat.JSON:
            columns = check_json(path, limits.json)
        else:
            columns = check_ndjson(path, limits.json, max_line_length=max_line_length)
    with CheckedFile(encoding, delimiter, columns, mapping, file_format, sheet).open(path) as source:
        if next(source.rows(), None) is None:
            raise InvalidFile("The file has a header but no data rows: there is nothing to import.")
        sheet = getattr(source, "sheet", None)  # the workbook's active sheet when none was named
        return CheckedFile(encoding, delimiter, source.columns, source.mapping, file_format, sheet)


def _check_csv(path, encoding, delimiter, max_line_length):
    """Check a CSV file and return its encoding and delimiter.

    One pass over the file in blocks refuses binary files, text that does not decode in the encoding (a byte
    order mark decides it; otherwise the one named, or UTF-8) and lines longer than max_line_length. The
    delimiter is the one named, or the one that splits the header into the needed columns.
    """
    encoding = _choose_encoding(path, encoding)
    _scan(path, encoding, max_line_length)
    delimiter = parse_delimiter(delimiter) if delimiter else _detect_delimiter(path, encoding)
    return encoding, delimiter


def _signature(path):
    """The format the file's first bytes show (a workbook, a JSON array, an object first), or None."""
    with open_binary(path) as file:
        start = file.read(_SNIFF_BYTES)
        if start.startswith(_ZIP_SIGNATURE):
            try:
                file.seek(0)
                with zipfile.ZipFile(file) as archive:
                    return FileFormat.XLSX if is_workbook(archive) else None
            except (zipfile.BadZipFile, OSError, EOFError):
                return None
    first = start.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    return {b"[": FileFormat.JSON, b"{": FileFormat.NDJSON}.get(first)


def _check_content_is(file_format, path):
    """Refuse a file whose content is plainly another format than the one named."""
    found = _signature(path)
    # Text that starts like JSON may still be CSV when named so; an NDJSON file's bad first line is one bad row.
    if found is file_format or (file_format is FileFormat.CSV and found in (None, FileFormat.JSON, FileFormat.NDJSON)):
        return
    if found is None and file_format is FileFormat.NDJSON:
        return
    if file_format is FileFormat.XLSX:
        raise InvalidFile(
            "The file is not an Excel .xlsx workbook"
            + (f" but looks like {found.value.upper()}; choose that format" if found else "")
            + ", or leave the format out to have it detected."
        )
    if found is FileFormat.XLSX:
        raise InvalidFile(
            f"The file is an Excel .xlsx workbook, not {file_format.value.upper()}: choose the format xlsx, or "
            "leave the format out to have it detected."
        )
    if file_format is FileFormat.JSON:
        hint = " (it starts with {: for one object per line choose ndjson)" if found is FileFormat.NDJSON else ""
        raise InvalidFile(f"The file is not a JSON array of objects: it does not start with [{hint}.")
    if file_format is FileFormat.NDJSON:
        raise InvalidFile(
            "The file is one JSON array, not NDJSON (one object per line): choose the format json, or leave the "
            "format out to have it detected."
        )


def read_header(path: FileSource, encoding: str = DEFAULT_ENCODING, delimiter: str = ",") -> list[str]:
    """Return the header of a CSV file, raising InvalidFile if it has none or its names are unusable."""
    try:
        file = _open_text(path, encoding)
    except LookupError:
        raise InvalidFile(f'"{encoding}" is not a known text encoding.') from None
    with file:
        for cells in csv.reader(file, delimiter=delimiter):
            if not is_blank(cells):
                columns = [cell.strip() for cell in cells]
                columns[0] = columns[0].lstrip("\ufeff").strip()
                check_header(columns)
                return columns
    raise InvalidFile("The file is empty.")


def count_rows(
    path: FileSource, encoding: str = DEFAULT_ENCODING, delimiter: str = ",", mapping: ColumnMapping | None = None
) -> int:
    """Count the data rows of a contact CSV file."""
    with CsvSource(path, encoding, delimiter, mapping) as source:
        return source.count()


def parse_encoding(name: str) -> str:
    """Return the canonical name of a text encoding given by a user; 400 naming it if Python has no such one."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        info = None
    # Codecs such as rot13 or base64 turn bytes into bytes; open() refuses them, and so do we.
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise ApiError(
            f"encoding {name!r} is not a text encoding Python knows (try utf-8, cp1252, latin-1 or shift_jis).",
            code="invalid_parameter",
        )
    return DEFAULT_ENCODING if info.name == "utf-8" else info.name


def parse_delimiter(value: str) -> str:
    """Return the delimiter a user named, as a character or by name; 400 listing the choices otherwise."""
    for character, name in DELIMITERS.items():
        if value in (character, name):
            return character
    choices = ", ".join(f'"{name}"' for name in DELIMITERS.values())
    raise ApiError(
        f"delimiter must be one of , ; | or a tab, or its name ({choices}); got {value!r}.", code="invalid_parameter"
    )


def _choose_encoding(path, requested):
    """A byte order mark decides the encoding; without one it is the requested encoding, or UTF-8."""
    encoding = parse_encoding(requested) if requested else DEFAULT_ENCODING
    with open_binary(path) as file:
        start = file.read(_SNIFF_BYTES)
    for signature, description in _BINARY_SIGNATURES:
        if start.startswith(signature):
            raise InvalidFile(f"The file is {description}, not CSV text. Export the contacts as CSV and upload that.")
    for mark, marked in _BYTE_ORDER_MARKS:
        if start.startswith(mark):
            return marked
    # Without a mark or a named encoding, NUL bytes mean binary data or UTF-16 (whose NULs UTF-8 reading
    # might not reach before some other byte fails to decode).
    nul = start.find(b"\x00")
    if not requested and nul >= 0:
        raise _not_text(encoding, 1 + _count_breaks(start[:nul].decode("latin-1")))
    return encoding


def _scan(path, encoding, max_line_length):
    """Read the whole file as text once, refusing it at the first NUL character or over-long line."""
    line = 1  # the line the scan has reached
    length = 0  # characters of that line seen so far
    for text in _text_blocks(path, encoding):
        nul = text.find("\x00")
        if nul >= 0:
            raise _not_text(encoding, line + _count_breaks(text[:nul]))
        breaks = _count_breaks(text)
        if breaks:
            first = min(index for index in (text.find("\n"), text.find("\r")) if index >= 0)
            if length + first > max_line_length:
                raise _line_too_long(line, max_line_length)
            if len(text) > max_line_length:  # only then can a line inside this block be too long
                for number, segment in enumerate(_LINE_BREAK.split(text)[1:-1], start=line + 1):
                    if len(segment) > max_line_length:
                        raise _line_too_long(number, max_line_length)
            line += breaks
            length = len(text) - 1 - max(text.rfind("\n"), text.rfind("\r"))
        else:
            length += len(text)
        if length > max_line_length:
            raise _line_too_long(line, max_line_length)


def _text_blocks(path, encoding, end=None):
    """Yield the file's text (up to byte `end`) in blocks, each CRLF whole in one block.

    Raises InvalidFile at the first byte that does not decode, naming its position and line.
    """
    codec = codecs.lookup(encoding).name
    with open_binary(path) as file:
        offset = 0
        head = b""  # bytes read ahead that belong to the first block
        # The utf-8-sig decoder drops the byte order mark from its input, which would shift error offsets.
        if codec == "utf-8-sig":
            codec = "utf-8"
            head = file.read(len(codecs.BOM_UTF8))
            if head == codecs.BOM_UTF8:
                offset, head = len(codecs.BOM_UTF8), b""
        decoder = codecs.getincrementaldecoder(codec)()
        after_cr = False
        while True:
            size = _SCAN_CHUNK_BYTES if end is None else min(_SCAN_CHUNK_BYTES, end - offset)
            block, head = head[: max(size, 0)], head[max(size, 0) :]
            if size > len(block):
                block += file.read(size - len(block))
            final = not block
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final)
            except UnicodeDecodeError as error:
                position = offset - pending + error.start
                raise _undecodable_byte(path, encoding, position, error.object[error.start]) from None
            except UnicodeError as error:
                raise InvalidFile(f"The file cannot be decoded as {_label(encoding)}: {error}.") from None
            if after_cr and text.startswith("\n"):
                text, after_cr = text[1:], False  # the rest of a CRLF whose CR ended the previous block
            if text:
                after_cr = text.endswith("\r")
                yield text
            if final:
                return
            offset += len(block)


def _count_breaks(text):
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _undecodable_byte(path, encoding, position, value):
    line = 1 + sum(_count_breaks(text) for text in _text_blocks(path, encoding, end=position))
    label = _label(encoding)
    return InvalidFile(
        f"The file is not valid {label} text: byte 0x{value:02X} at byte position {position} (line {line}) "
        f'cannot be decoded. Save it as UTF-8, or name the encoding it was saved in with the "encoding" field '
        f"(for example cp1252, latin-1 or shift_jis)."
    )


def _not_text(encoding, line):
    hint = ""
    if _label(encoding) == "UTF-8":
        hint = ' If it is UTF-16 text without a byte order mark, name its encoding ("utf-16-le" or "utf-16-be").'
    return InvalidFile(
        f"The file is not text: it has a NUL character on line {line}. Export the contacts as CSV and upload that."
        + hint
    )


def _line_too_long(line, limit):
    return InvalidFile(
        f"Line {line} is longer than {limit:,} characters, the most one line may hold. "
        "Is this a CSV file, and does every line end?"
    )


def _detect_delimiter(path, encoding):
    """Pick the delimiter that splits the first non-blank line into the needed columns (else the most columns)."""
    with _open_text(path, encoding) as file:
        header = next((line for line in file if line.strip()), "")
    best, best_count = ",", 0
    for delimiter in DELIMITERS:
        names = {cell.strip().lower() for cell in next(csv.reader([header], delimiter=delimiter), [])}
        if names.issuperset(REQUIRED_COLUMNS):
            return delimiter
        if len(names) > best_count:
            best, best_count = delimiter, len(names)
    return best


def _records(reader):
    """Yield each record's cells, or the csv.Error a record raised, so one bad record never ends the file."""
    while True:
        try:
            yield from reader
            return
        except csv.Error as error:
            yield error


def _record_problem(row, error):
    if "field limit" in str(error):
        return f"row {row} has a field longer than {csv.field_size_limit():,} characters (is a quote left open?)"
    return f"row {row} cannot be read as CSV ({error})"


def _label(encoding):
    name = codecs.lookup(encoding).name
    return "UTF-8" if name in ("utf-8", "utf-8-sig") else name


def estimate_rows(file: BinaryIO) -> int:
    """Estimate a file's data rows from its line breaks, reading it in blocks without decoding it.

    A quoted cell spanning lines or a blank line counts as a row of its own, so this is an estimate, never a total.
    """
    newlines = returns = 0
    last = b""
    while block := file.read(_SCAN_CHUNK_BYTES):
        newlines += block.count(b"\n")
        returns += block.count(b"\r")
        last = block
    lines = max(newlines, returns) + (1 if last and last[-1:] not in (b"\n", b"\r") else 0)
    return max(lines - 1, 0)  # the header is no data row

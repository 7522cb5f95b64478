"""Read contact rows from a CSV file with the stdlib csv module."""
import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InvalidFile

REQUIRED_COLUMNS = ("name", "email")
KNOWN_COLUMNS = ("name", "email", "company")
EXTRA_KEY = "_extra"  # where a row's cells beyond the header go in SourceRow.data
_SCAN_CHUNK_BYTES = 1 << 20  # read size when locating an undecodable byte


@dataclass(frozen=True, slots=True)
class SourceRow:
    """Hold one data row as read from the file, numbered as a spreadsheet would number it."""

    row: int
    name: str | None
    email: str | None
    company: str | None
    data: dict
    problem: str | None


class CsvSource:
    """Open a contact CSV file, check its header, and iterate its data rows."""

    def __init__(self, path, encoding="utf-8-sig"):
        self.path = path
        self.encoding = encoding
        try:
            self._file = open(path, encoding=encoding, newline="")
        except LookupError:
            raise InvalidFile(f'"{encoding}" is not a known text encoding.') from None
        try:
            self._header_row, self.columns = self._read_header()
            self._indexes = _column_indexes(self.columns)
            self._keys = _unique_keys(self.columns)
        except BaseException:
            self._file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the underlying file."""
        self._file.close()

    def rows(self, start_after: int = 0) -> Iterator[SourceRow]:
        """Yield the data rows numbered above start_after, in file order."""
        reader, row = self._reader_after(start_after)
        name_at, email_at, company_at = self._indexes
        keys = self._keys
        width = len(keys)
        try:
            for cells in reader:
                row += 1
                if len(cells) == width:
                    yield SourceRow(
                        row,
                        cells[name_at],
                        cells[email_at],
                        None if company_at is None else cells[company_at],
                        dict(zip(keys, cells)),
                        None,
                    )
                elif not _is_blank(cells):
                    yield self._ragged_row(row, cells)
        except (UnicodeDecodeError, csv.Error) as error:
            raise self._unreadable(error, row + 1) from None

    def count(self) -> int:
        """Count the data rows that rows() would yield."""
        reader, row = self._reader_after(0)
        count = 0
        try:
            for cells in reader:
                row += 1
                if not _is_blank(cells):
                    count += 1
        except (UnicodeDecodeError, csv.Error) as error:
            raise self._unreadable(error, row + 1) from None
        return count

    def _read_header(self):
        reader = csv.reader(self._file)
        row = 0
        try:
            for cells in reader:
                row += 1
                if not _is_blank(cells):
                    columns = [cell.strip() for cell in cells]
                    # Files saved as plain "utf-8" keep their byte order mark in the first name.
                    columns[0] = columns[0].lstrip("\ufeff").strip()
                    return row, columns
        except (UnicodeDecodeError, csv.Error) as error:
            raise self._unreadable(error, row + 1) from None
        raise InvalidFile("The file is empty.")

    def _reader_after(self, start_after):
        """Return a reader positioned after the header and any row up to start_after, and the last row number read."""
        # Re-reading from the top lets rows() and count() be called again on the same source.
        self._file.seek(0)
        reader = csv.reader(self._file)
        row = 0
        last = max(self._header_row, start_after)
        try:
            while row < last:
                if next(reader, None) is None:
                    break
                row += 1
        except (UnicodeDecodeError, csv.Error) as error:
            raise self._unreadable(error, row + 1) from None
        return reader, row

    def _ragged_row(self, row, cells):
        name_at, email_at, company_at = self._indexes
        width = len(self._keys)
        size = len(cells)
        data = dict(zip(self._keys, cells))
        if size > width:
            data[EXTRA_KEY] = cells[width:]
        fields = "field" if size == 1 else "fields"
        return SourceRow(
            row,
            cells[name_at] if name_at < size else None,
            cells[email_at] if email_at < size else None,
            cells[company_at] if company_at is not None and company_at < size else None,
            data,
            f"row {row} has {size} {fields}, expected {width}",
        )

    def _unreadable(self, error, row):
        if isinstance(error, UnicodeDecodeError):
            return _undecodable(self.path, self.encoding, error)
        return InvalidFile(f"The file cannot be read as CSV at row {row}: {error}.")


def read_header(path, encoding="utf-8-sig") -> list[str]:
    """Return the checked header of a contact CSV file, raising InvalidFile if it cannot be imported."""
    with CsvSource(path, encoding) as source:
        return source.columns


def count_rows(path, encoding="utf-8-sig") -> int:
    """Count the data rows of a contact CSV file."""
    with CsvSource(path, encoding) as source:
        return source.count()


def _is_blank(cells):
    return not cells or (len(cells) == 1 and not cells[0].strip())


def _column_indexes(columns):
    """Return the indexes of the name, email and company columns, raising InvalidFile if the header is unusable."""
    found = {}
    for index, column in enumerate(columns):
        key = column.lower()
        if key in KNOWN_COLUMNS:
            if key in found:
                raise InvalidFile(f'The header has more than one "{key}" column.')
            found[key] = index
    missing = [column for column in REQUIRED_COLUMNS if column not in found]
    if missing:
        needed = " and ".join(f'"{column}"' for column in missing)
        noun = "column" if len(missing) == 1 else "columns"
        listed = ", ".join(f'"{column}"' for column in columns)
        raise InvalidFile(f"The header has no {needed} {noun}. Columns found: {listed}.")
    return found["name"], found["email"], found.get("company")


def _unique_keys(columns):
    """Return the data keys for the columns: the names as written, numbered when a name repeats."""
    keys = []
    seen = set()
    for column in columns:
        key = column
        number = 1
        while key in seen:
            number += 1
            key = f"{column} ({number})"
        seen.add(key)
        keys.append(key)
    return keys


def _undecodable(path, encoding, error):
    label = "UTF-8" if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") else encoding
    found = _find_undecodable(path, encoding)
    if found is None:
        return InvalidFile(f"The file is not valid {label} text: {error.reason}.")
    position, line, bad_bytes = found
    return InvalidFile(
        f"The file is not valid {label} text: byte 0x{bad_bytes[0]:02X} at byte position {position} "
        f"(line {line}) cannot be decoded. Save it as {label} and try again."
    )


def _find_undecodable(path, encoding):
    """Return the file offset, line number and bytes of the first undecodable sequence, or None."""
    codec = codecs.lookup(encoding).name
    with open(path, "rb") as file:
        offset = 0
        # The utf-8-sig decoder drops the byte order mark from its input, which would shift error offsets.
        if codec == "utf-8-sig":
            codec = "utf-8"
            if file.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
                offset = len(codecs.BOM_UTF8)
            else:
                file.seek(0)
        decoder = codecs.getincrementaldecoder(codec)()
        final = False
        while not final:
            chunk = file.read(_SCAN_CHUNK_BYTES)
            final = not chunk
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as decode_error:
                position = offset - pending + decode_error.start
                line = _count_newlines(file, position) + 1
                return position, line, decode_error.object[decode_error.start : decode_error.end]
            offset += len(chunk)
    return None


def _count_newlines(file, end):
    file.seek(0)
    newlines = 0
    while end > 0:
        chunk = file.read(min(_SCAN_CHUNK_BYTES, end))
        if not chunk:
            break
        newlines += chunk.count(b"\n")
        end -= len(chunk)
    return newlines

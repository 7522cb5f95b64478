"""What every format's reader shares: a header of column names, numbered rows of text cells, and the mapping
that turns each row's cells into a contact's fields (services/mapping.py).

A format's source yields (row number, cells) pairs, or (row number, Unreadable) for a record it cannot read;
TableSource turns them into SourceRows the same way for CSV, Excel and JSON, so ragged rows, blank rows and
problems are judged alike whatever the file was.
"""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import InvalidFile, MappingRequired
from .mapping import REQUIRED_FIELDS, ColumnMapping, match_columns

EXTRA_KEY = "_extra"  # where a row's cells beyond the header go in SourceRow.data
_LISTED_COLUMNS = 20  # header names quoted in an error message

# A path on this machine, or a function that opens the file as a binary stream read from its start.
FileSource = str | os.PathLike[str] | Callable[[], BinaryIO]


def open_binary(source: FileSource) -> BinaryIO:
    """Open the file as a binary stream at its start."""
    return source() if callable(source) else open(source, "rb")


@dataclass(frozen=True, slots=True)
class SourceRow:
    """Hold one data row as read from the file, numbered as the file numbers it (a sheet's row, a JSON record)."""

    row: int
    name: str | None
    email: str | None
    company: str | None
    data: dict
    problem: str | None
    extra: dict | None = None  # the kept columns not mapped to name, email or company: column -> value


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that could not be read as cells, and why (in words for the people who import the file)."""

    problem: str


class TableSource:
    """Iterate a file's data rows under its header; each format supplies its numbered cells."""

    columns: list[str]
    mapping: ColumnMapping

    def _bind(self, columns: list[str], mapping: ColumnMapping | None) -> None:
        """Check the header and bind the mapping to it; without a mapping, match_columns must find one."""
        check_header(columns)
        self.columns = columns
        self.mapping = mapping or matched(columns)
        self._bound = self.mapping.bind(columns)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        """Close what the source holds open."""

    def numbered_cells(self, start_after: int) -> Iterator[tuple[int, list[str] | Unreadable]]:
        """Yield each data row's number and cells (a blank row's are []) after row start_after, in file order."""
        raise NotImplementedError

    def rows(self, start_after: int = 0) -> Iterator[SourceRow]:
        """Yield the data rows numbered above start_after, in file order; blank rows are left out."""
        assemble = self._bound.assemble
        keys = self.columns
        width = len(keys)
        for row, cells in self.numbered_cells(start_after):
            if cells.__class__ is Unreadable:
                yield SourceRow(row, None, None, None, {}, cells.problem)
            elif len(cells) == width:
                name, email, company, extra = assemble(cells)
                yield SourceRow(row, name, email, company, dict(zip(keys, cells, strict=False)), None, extra)
            elif not is_blank(cells):
                yield self._ragged_row(row, cells)

    def count(self) -> int:
        """Count the data rows that rows() would yield."""
        return sum(1 for _row, cells in self.numbered_cells(0) if cells.__class__ is Unreadable or not is_blank(cells))

    def _ragged_row(self, row, cells):
        width = len(self.columns)
        size = len(cells)
        data = dict(zip(self.columns, cells, strict=False))
        if size > width:
            data[EXTRA_KEY] = cells[width:]
        fields = "field" if size == 1 else "fields"
        name, email, company, extra = self._bound.assemble(cells)
        return SourceRow(row, name, email, company, data, f"row {row} has {size} {fields}, expected {width}", extra)


def is_blank(cells: list[str]) -> bool:
    """True for a row with no cells, or one empty or blank cell."""
    return not cells or (len(cells) == 1 and not cells[0].strip())


def check_header(columns: list[str]) -> None:
    """Raise InvalidFile if a column of the header has no name, or two share one."""
    unnamed = [str(number) for number, column in enumerate(columns, start=1) if not column]
    if unnamed:
        noun = "Column" if len(unnamed) == 1 else "Columns"
        raise InvalidFile(
            f"{noun} {', '.join(unnamed)} of the header {'has' if len(unnamed) == 1 else 'have'} no name; every "
            f"column needs one. Columns found: {listed(columns)}."
        )
    seen, repeated = set(), {}
    for column in columns:
        key = column.lower()
        if key in seen:
            repeated.setdefault(key, column)
        seen.add(key)
    if repeated:
        names = ", ".join(f'"{name}"' for name in repeated.values())
        raise InvalidFile(
            f"The header repeats the column {'name' if len(repeated) == 1 else 'names'} {names}; "
            "every column needs its own name."
        )


def matched(columns: list[str]) -> ColumnMapping:
    """The mapping match_columns finds for the header; MappingRequired, with its suggestions, when it is unsure."""
    match = match_columns(columns)
    if match.mapping is None:
        missing = [name for name in REQUIRED_FIELDS if not match.suggestions.get(name)] or list(REQUIRED_FIELDS)
        needed = " and ".join(f'"{name}"' for name in missing)
        noun, pronoun = ("column", "it") if len(missing) == 1 else ("columns", "them")
        raise MappingRequired(
            f"The header has no {needed} {noun}, nor one that clearly holds {pronoun}. Columns found: "
            f"{listed(columns)}. Map the columns (a mapping or a template) to say which hold {pronoun}.",
            details=match.to_json(),
        )
    return match.mapping


def listed(columns: list[str]) -> str:
    """The first columns' names quoted for a message, saying how many more there are."""
    text = ", ".join(f'"{column}"' for column in columns[:_LISTED_COLUMNS])
    if len(columns) > _LISTED_COLUMNS:
        text += f" and {len(columns) - _LISTED_COLUMNS} more"
    return text

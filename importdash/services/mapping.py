"""Which source columns give a contact's name, email and company, and which are kept as extra fields.

A ColumnMapping names columns; bound to a file's header it turns each row's cells into the contact's fields.
match_columns suggests a mapping for a header, with a confidence per field.
"""

import json
from dataclasses import dataclass, field

from ..errors import ApiError, InvalidFile

FIELDS = ("name", "email", "company")  # the contact's own fields; every other kept column is an extra field
REQUIRED_FIELDS = ("name", "email")
CONFIDENT = 0.9  # a suggestion at least this sure is used without asking
# The columns errors.csv puts before the file's own (services/export.py). A header that starts with them is a
# corrected errors.csv imported again: they describe the error and are never kept as extra fields.
REPORT_COLUMNS = ("row", "category", "message")


@dataclass(frozen=True)
class ColumnMapping:
    """Name the source columns of each contact field; name may be several columns (first and last name)."""

    name: tuple[str, ...]  # joined with a space, blank parts left out
    email: str
    company: str | None = None
    extra: tuple[str, ...] | None = None  # the columns kept as extra fields; None: every column not mapped above

    def to_json(self) -> dict:
        return {
            "name": list(self.name),
            "email": self.email,
            "company": self.company,
            "extra": None if self.extra is None else list(self.extra),
        }

    @classmethod
    def from_json(cls, data: dict | None) -> "ColumnMapping | None":
        """The mapping a job or template stored; None for none (a job from before mappings: match_columns decides)."""
        if data is None:
            return None
        name = data["name"]
        extra = data.get("extra")
        return cls(
            name=(name,) if isinstance(name, str) else tuple(name),
            email=data["email"],
            company=data.get("company"),
            extra=None if extra is None else tuple(extra),
        )

    @classmethod
    def parse(cls, text: str) -> "ColumnMapping":
        """Read a mapping a user sent as JSON; 400 saying what shape it needs otherwise.

        {"name": "Full Name" or ["First name", "Last name"], "email": "E-mail", "company": "Org" (optional),
        "extra": ["Phone", "Title"] (optional: the extra columns kept; without it every other column is kept)}
        """
        shape = (
            'a mapping is JSON like {"name": "Full Name", "email": "E-mail Address", "company": "Company", '
            '"extra": ["Phone"]}; name may be a list of columns (first and last name), company and extra are optional'
        )
        try:
            data = json.loads(text)
        except ValueError:
            raise ApiError(f"The mapping is not valid JSON: {shape}.", code="invalid_parameter") from None
        name = data.get("name") if isinstance(data, dict) else None
        names = [name] if isinstance(name, str) else name
        extra = data.get("extra") if isinstance(data, dict) else None
        valid = (
            isinstance(data, dict)
            and set(data) <= {*FIELDS, "extra"}
            and isinstance(names, list)
            and names
            and all(isinstance(column, str) and column for column in names)
            and isinstance(data.get("email"), str)
            and data["email"]
            and (data.get("company") is None or isinstance(data["company"], str))
            and (extra is None or (isinstance(extra, list) and all(isinstance(column, str) for column in extra)))
        )
        if not valid:
            raise ApiError(f"The mapping cannot be used: {shape}.", code="invalid_parameter")
        return cls.from_json({**data, "name": names})

    def bind(self, columns: list[str]) -> "BoundMapping":
        """Find the mapped columns in a header (exactly, else ignoring case); InvalidFile names any it lacks."""
        exact = {column: index for index, column in enumerate(columns)}
        folded = {}
        for index, column in enumerate(columns):
            folded.setdefault(column.casefold(), index)

        def find(column):
            index = exact.get(column, folded.get(column.casefold()))
            if index is None:
                raise InvalidFile(
                    f'The mapping names the column "{column}", which the file does not have. '
                    f"Columns found: {', '.join(repr(name) for name in columns[:20])}."
                )
            return index

        name_at = tuple(find(column) for column in self.name)
        email_at = find(self.email)
        company_at = None if self.company is None else find(self.company)
        mapped = {*name_at, email_at, company_at}
        if self.extra is None:
            report = len(REPORT_COLUMNS) if tuple(columns[: len(REPORT_COLUMNS)]) == REPORT_COLUMNS else 0
            extra = tuple(
                (column, index) for index, column in enumerate(columns) if index not in mapped and index >= report
            )
        else:
            extra = tuple((columns[find(column)], find(column)) for column in self.extra)
        return BoundMapping(name_at, email_at, company_at, extra)


@dataclass(frozen=True, slots=True)
class BoundMapping:
    """A mapping's columns as indexes into one header's cells."""

    name_at: tuple[int, ...]
    email_at: int
    company_at: int | None
    extra: tuple[tuple[str, int], ...]  # (column, index) of each kept extra column

    def assemble(self, cells: list[str]) -> tuple[str | None, str | None, str | None, dict | None]:
        """Return the name, email, company and extra fields of one row's cells (None for a cell it lacks, and for
        no extra fields)."""
        size = len(cells)
        if len(self.name_at) == 1:
            name = cells[self.name_at[0]] if self.name_at[0] < size else None
        else:  # first and last name: their trimmed, non-blank parts joined with a space
            parts = [cells[index].strip() for index in self.name_at if index < size]
            name = " ".join(part for part in parts if part) if parts else None
        email = cells[self.email_at] if self.email_at < size else None
        company = cells[self.company_at] if self.company_at is not None and self.company_at < size else None
        extra = {column: cells[index] for column, index in self.extra if index < size} if self.extra else None
        return name, email, company, extra


@dataclass(frozen=True)
class Suggestion:
    column: str
    confidence: float  # 0 to 1


@dataclass(frozen=True)
class Match:
    """What match_columns found: a mapping when every required field matched confidently, and its suggestions."""

    columns: list[str]
    mapping: ColumnMapping | None
    suggestions: dict[str, list[Suggestion]] = field(default_factory=dict)  # field -> best first

    @property
    def confident(self) -> bool:
        return self.mapping is not None

    def to_json(self) -> dict:
        return {
            "columns": self.columns,
            "mapping": None if self.mapping is None else self.mapping.to_json(),
            "suggestions": {
                name: [{"column": s.column, "confidence": s.confidence} for s in suggestions]
                for name, suggestions in self.suggestions.items()
            },
        }


def match_columns(columns: list[str]) -> Match:
    """Suggest which columns give each field; a mapping only when name and email are both matched confidently.

    Today's rule: a column named exactly like the field, ignoring case.
    """
    suggestions = {}
    for name in FIELDS:
        found = [column for column in columns if column.strip().casefold() == name]
        suggestions[name] = [Suggestion(column, 1.0) for column in found[:1]]
    confident = all(suggestions[name] and suggestions[name][0].confidence >= CONFIDENT for name in REQUIRED_FIELDS)
    mapping = None
    if confident:
        company = suggestions["company"]
        mapping = ColumnMapping(
            name=(suggestions["name"][0].column,),
            email=suggestions["email"][0].column,
            company=company[0].column if company else None,
        )
    return Match(list(columns), mapping, suggestions)

"""Which source columns give a contact's name, email and company, and which are kept as extra fields.

A ColumnMapping names columns; bound to a file's header it turns each row's cells into the contact's fields.
match_columns suggests a mapping for a header, with a confidence per field.
"""

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field

from ..errors import ApiError, InvalidFile, MappingRequired

FIELDS = ("name", "email", "company")  # the contact's own fields; every other kept column is an extra field
REQUIRED_FIELDS = ("name", "email")
CONFIDENT = 0.9  # a suggestion at least this sure is used without asking
# The columns errors.csv puts before the file's own (services/export.py). A header that starts with them is a
# corrected errors.csv imported again: they describe the error and are never kept as extra fields.
REPORT_COLUMNS = ("row", "category", "message")

_SHAPE = (
    'a mapping is JSON like {"name": "Full Name", "email": "E-mail Address", "company": "Company", '
    '"extra": ["Phone"]}; name may be a list of columns (first and last name), company and extra are optional'
)


def _is_column(value):
    """A column name as a mapping may give it: text of 1 to 1,000 characters with no NUL."""
    return isinstance(value, str) and 0 < len(value) <= 1000 and "\x00" not in value


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

    def columns_used(self) -> list[str]:
        """Every column the mapping names, in the order name, email, company, extra."""
        named = [*self.name, self.email, *([self.company] if self.company else []), *(self.extra or ())]
        return list(dict.fromkeys(named))

    def for_columns(self, columns: list[str]) -> "ColumnMapping | None":
        """The same mapping naming this header's own spelling of each column ("E-mail" for "e_mail"); None when
        the header lacks one of them or spells two of them alike."""
        spellings = {}
        for column in columns:
            spellings.setdefault(normalise(column), []).append(column)

        def spelled(column):
            found = spellings.get(normalise(column), [])
            return found[0] if len(found) == 1 else None

        renamed = {column: spelled(column) for column in self.columns_used()}
        if None in renamed.values():
            return None
        return ColumnMapping(
            name=tuple(renamed[column] for column in self.name),
            email=renamed[self.email],
            company=renamed[self.company] if self.company else None,
            extra=None if self.extra is None else tuple(renamed[column] for column in self.extra),
        )

    @classmethod
    def parse(cls, text: str) -> "ColumnMapping":
        """Read a mapping a user sent as JSON text; 400 saying what shape it needs otherwise."""
        try:
            data = json.loads(text)
        except ValueError:
            raise ApiError(f"The mapping is not valid JSON: {_SHAPE}.", code="invalid_parameter") from None
        return cls.validated(data)

    @classmethod
    def validated(cls, data) -> "ColumnMapping":
        """Read a mapping a user sent, already decoded from JSON; 400 saying what shape it needs otherwise.

        {"name": "Full Name" or ["First name", "Last name"], "email": "E-mail", "company": "Org" (optional),
        "extra": ["Phone", "Title"] (optional: the extra columns kept; without it every other column is kept)}
        """
        name = data.get("name") if isinstance(data, dict) else None
        names = [name] if isinstance(name, str) else name
        extra = data.get("extra") if isinstance(data, dict) else None
        valid = (
            isinstance(data, dict)
            and set(data) <= {*FIELDS, "extra"}
            and isinstance(names, list)
            and names
            and all(_is_column(column) for column in names)
            and _is_column(data.get("email"))
            and (data.get("company") is None or _is_column(data["company"]))
            and (extra is None or (isinstance(extra, list) and all(_is_column(column) for column in extra)))
        )
        if not valid:
            raise ApiError(f"The mapping cannot be used: {_SHAPE}.", code="invalid_parameter")
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


# Matching a header.
#
# A header is compared as its words: accents, case, punctuation and camelCase do not matter ("E-Mail-Adresse" is
# e mail adresse, "firstName" is first name), and the words are joined, so "E-mail", "Email" and "e_mail" are one.
# A header matches a field only if it IS one of the field's aliases, perhaps with filler words left out ("address"
# in "E-mail Address", "name" in "Company Name"); merely containing one ("Email consent") is not a match.

EXACT = 1.0  # the header is an alias: "Email", "Full Name", "Courriel", "Firma"
WORDY = 0.95  # an alias once filler words are left out: "E-mail Address", "Company Name", "Adresse e-mail"
LOOSE = 0.9  # an alias other files use for something else too: "Mail", "Nom" alone
QUALIFIED = 0.75  # an alias with a qualifier: "Work Email", "Email 2"; another column may be the one meant
FIRST_NAME_ONLY = 0.5  # a first-name column with no last-name column to join it to
PARTIAL = 0.4  # an alias among other words, none of which says the column is about something else
MAX_SUGGESTIONS = 5

# Words left out everywhere, in aliases too: articles and prepositions ("Nom de famille", "Name of company").
_STOP_WORDS = frozenset("the of your de du des la le l el del di della do da der".split())

# fmt: off
_EMAIL = {
    EXACT: [
        "Email", "Courriel", "Correo electrónico", "Posta elettronica", "E-post", "Epost",
        "Emailaddress", "Emailadresse", "Emailadres", "Mailadresse", "Mailadres", "Mailaddress", "Emailaddr",
    ],
    WORDY: ["Contact email", "Email contact", "Correo-e"],
    LOOSE: ["Mail", "Mél", "Correo"],
}
_NAME = {
    EXACT: [
        "Name", "Full name", "Fullname", "Complete name", "Nom complet", "Nom et prénom", "Prénom et nom",
        "Prénom nom", "Nom prénom", "Vollständiger Name", "Vor- und Nachname", "Name Vorname", "Vorname Name",
        "Vorname Nachname", "Nombre completo", "Nombre y apellidos", "Nombre y apellido", "Nome completo",
        "Nome e cognome", "Nome e sobrenome", "Naam", "Volledige naam", "Voor- en achternaam",
    ],
    WORDY: ["Contact name", "Customer name", "Client name", "Contact person", "Ansprechpartner", "Kontaktperson"],
    LOOSE: ["Nom", "Nombre", "Nome"],
    QUALIFIED: ["Display name"],
}
_COMPANY = {
    EXACT: [
        "Company", "Companyname", "Organisation", "Organization", "Firma", "Firmenname", "Unternehmen", "Empresa",
        "Société", "Entreprise", "Azienda", "Bedrijf", "Bedrijfsnaam", "Organisatie", "Organización",
        "Organizzazione", "Organização",
    ],
    WORDY: ["Business name", "Raison sociale", "Ragione sociale", "Nome da empresa", "Employer"],
    LOOSE: ["Org", "Società", "Business"],
    QUALIFIED: ["Account name", "Account"],
}
_FIRST_NAME = {
    EXACT: [
        "First name", "Firstname", "Given name", "Forename", "Vorname", "Prénom", "Nombre de pila", "Primer nombre",
        "Nome proprio", "Nome di battesimo", "Primeiro nome", "Voornaam", "Roepnaam",
    ],
    WORDY: ["First", "Fname"],
}
_LAST_NAME = {
    EXACT: [
        "Last name", "Lastname", "Surname", "Family name", "Nachname", "Familienname", "Nom de famille", "Apellido",
        "Apellidos", "Primer apellido", "Cognome", "Achternaam", "Familienaam", "Sobrenome", "Último nome",
        "Apelido",
    ],
    WORDY: ["Last", "Lname"],
}
# fmt: on
# Bare words that name the other half of a first-name or last-name column beside it ("Prénom" and "Nom",
# "Vorname" and "Name", "Nombre" and "Apellidos"), and the whole name when alone.
_BARE_LAST_NAMES = frozenset({"nom", "name", "naam"})
_BARE_FIRST_NAMES = frozenset({"nombre", "nome", "name"})

# Filler words a header may add to an alias without changing what it holds.
_FILLER = {
    "email": frozenset("address adresse adres addr direccion indirizzo endereco id".split()),
    "company": frozenset("name nom nombre nome naam".split()),
}
# Words that qualify an alias: the column likely holds the field, but the file may have several such columns.
_QUALIFIERS = frozenset(
    """work home private personal primary main secondary alternate alternative other office billing privat privee
    prive geschaftlich dienstlich principal principale professionnel professionnelle personnel personnelle trabajo
    lavoro werk zakelijk""".split()
)
# Words that say a column is about something else than the alias it contains: "Email consent", "Company size",
# "Company address". (Filler words of the field itself are left out first: "Email address" is the email.)
_UNRELATED = frozenset(
    """consent opt optin optout opted in out subscribed subscription unsubscribed unsubscribe status verified
    verification valid bounce bounced size count type date time domain website url web industry revenue employees
    phone fax mobile referrer referral referred source campaign owner manager marketing newsletter permission
    preference preferences format frequency template sent opened clicked hash md5 sha256 code number no nr
    registration vat tax sector city country street zip postal logo linkedin twitter reference file id user
    username login middle nick nickname maiden prefix suffix title salutation product event list project job
    parent address adresse adres addr direccion indirizzo endereco anschrift einwilligung consentement
    consentimiento consenso toestemming abonniert groesse grosse taille tamano dimensione""".split()
)

_CAMEL_CASE = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORDS = re.compile(r"[^\W\d_]+|\d+")


def words(column: str) -> tuple[str, ...]:
    """The words of a header as matching compares them: no accents, case, punctuation; camelCase split."""
    text = unicodedata.normalize("NFKD", _CAMEL_CASE.sub(" ", column).casefold())
    text = "".join(character for character in text if not unicodedata.combining(character))
    return tuple(_WORDS.findall(text))


def normalise(column: str) -> str:
    """A header as matching and mapping memory compare it: its words, joined by spaces."""
    return " ".join(words(column))


def header_key(columns: list[str]) -> str:
    """The mapping memory's key of a header: a digest of its set of normalised columns, so their order does not
    matter, nor their spelling ("E-mail" or "email")."""
    digest = hashlib.sha256("\n".join(sorted({normalise(column) for column in columns})).encode())
    return digest.hexdigest()


def _key(column_words):
    return "".join(word for word in column_words if word not in _STOP_WORDS)


def _table(tiers):
    return {_key(words(alias)): confidence for confidence, aliases in tiers.items() for alias in aliases}


_ALIASES = {
    "name": _table(_NAME),
    "email": _table(_EMAIL),
    "company": _table(_COMPANY),
    "first_name": _table(_FIRST_NAME),
    "last_name": _table(_LAST_NAME),
}


def _confidence(column_words, kind):
    """How surely a header's words name a field (or first_name, last_name); 0 when they do not."""
    aliases = _ALIASES[kind]
    kept = [word for word in column_words if word not in _STOP_WORDS]
    if not kept:
        return 0.0
    key = "".join(kept)
    if key in aliases:
        return aliases[key]
    filler = _FILLER.get(kind, set())
    meant = [word for word in kept if word not in filler]
    if meant and len(meant) < len(kept) and "".join(meant) in aliases:
        return min(WORDY, aliases["".join(meant)])
    unqualified = [word for word in meant if word not in _QUALIFIERS and not word.isdigit()]
    if unqualified and len(unqualified) < len(meant) and "".join(unqualified) in aliases:
        return min(QUALIFIED, aliases["".join(unqualified)])
    if _UNRELATED.intersection(meant) or kind in ("first_name", "last_name"):
        return 0.0
    runs = ("".join(meant[start:end]) for start in range(len(meant)) for end in range(start + 1, len(meant) + 1))
    return PARTIAL if any(run in aliases for run in runs) else 0.0


@dataclass(frozen=True)
class Suggestion:
    """A column (or, for a name, the first-name and last-name columns joined) that may hold a field."""

    columns: tuple[str, ...]
    confidence: float  # 0 to 1; at least CONFIDENT is used without asking

    @property
    def column(self) -> str:
        return self.columns[0]

    def to_json(self) -> dict:
        return {"column": self.column, "columns": list(self.columns), "confidence": self.confidence}


@dataclass(frozen=True)
class Match:
    """What match_columns found: a mapping when every required field matched confidently, and its suggestions."""

    columns: list[str]
    mapping: ColumnMapping | None
    suggestions: dict[str, list[Suggestion]] = field(default_factory=dict)  # field -> best first
    remembered: bool = False  # the mapping is the one last used for a file with this set of columns

    @property
    def confident(self) -> bool:
        return self.mapping is not None

    def to_json(self) -> dict:
        return {
            "columns": self.columns,
            "mapping": None if self.mapping is None else self.mapping.to_json(),
            "suggestions": {
                name: [suggestion.to_json() for suggestion in suggestions]
                for name, suggestions in self.suggestions.items()
            },
            "remembered": self.remembered,
        }


def match_columns(columns: list[str], *, remembered: ColumnMapping | None = None) -> Match:
    """Suggest which columns give each field, with a confidence; a mapping only when name and email both match
    confidently and no other column matches either as surely.

    A remembered mapping (mapping memory: one a user gave for a file with this set of columns) is used as it is
    when every column it names is in the header: the user confirmed it before.
    """
    if remembered is not None and (renamed := remembered.for_columns(columns)) is not None:
        suggestions = {
            "name": [Suggestion(renamed.name, EXACT)],
            "email": [Suggestion((renamed.email,), EXACT)],
            "company": [Suggestion((renamed.company,), EXACT)] if renamed.company else [],
        }
        return Match(list(columns), renamed, suggestions, remembered=True)

    kinds = (*FIELDS, "first_name", "last_name")
    scores = {column: {kind: _confidence(words(column), kind) for kind in kinds} for column in columns}
    for column_scores in scores.values():
        best = max(column_scores, key=column_scores.get)
        if column_scores[best] >= CONFIDENT:  # a column surely holding one field is not offered for another
            for kind in kinds:
                if kind != best:
                    column_scores[kind] = 0.0

    def ranked(kind):
        found = [(columns_score[kind], column) for column, columns_score in scores.items() if columns_score[kind]]
        return [Suggestion((column,), confidence) for confidence, column in sorted(found, key=lambda x: -x[0])]

    suggestions = {kind: ranked(kind) for kind in FIELDS}
    suggestions["name"] = _name_suggestions(columns, suggestions["name"], ranked("first_name"), ranked("last_name"))
    for kind in FIELDS:
        suggestions[kind] = suggestions[kind][:MAX_SUGGESTIONS]

    chosen = {kind: _sure(suggestions[kind]) for kind in FIELDS}
    mapping = None
    if all(chosen[kind] for kind in REQUIRED_FIELDS):
        company = chosen["company"]
        mapping = ColumnMapping(
            name=chosen["name"].columns,
            email=chosen["email"].column,
            company=company.column if company and company.column not in chosen["name"].columns else None,
        )
    return Match(list(columns), mapping, suggestions)


def _name_suggestions(columns, whole, first, last):
    """The name's suggestions: whole-name columns, and first and last name joined, best first."""
    bare = {column: _key(words(column)) for column in columns}
    joined = None
    if first and last:
        joined = Suggestion((first[0].column, last[0].column), min(first[0].confidence, last[0].confidence))
    elif first:
        # "Prénom" and "Nom", "Vorname" and "Name": the bare word is the family name beside a first-name column.
        other = next((column for column in columns if bare[column] in _BARE_LAST_NAMES), None)
        if other is not None:
            joined = Suggestion((first[0].column, other), min(first[0].confidence, LOOSE))
    elif last:
        # "Nombre" and "Apellidos", "Name" and "Surname": the bare word is the given name beside a last-name column.
        other = next((column for column in columns if bare[column] in _BARE_FIRST_NAMES), None)
        if other is not None:
            joined = Suggestion((other, last[0].column), min(last[0].confidence, LOOSE))
    if joined is None:
        halves = [Suggestion(first[0].columns, FIRST_NAME_ONLY)] if first else []
        return sorted(whole + halves, key=lambda suggestion: -suggestion.confidence)
    whole = [suggestion for suggestion in whole if suggestion.column not in joined.columns]
    if whole and whole[0].confidence >= CONFIDENT:  # a whole-name column beside the halves is the one meant
        joined = Suggestion(joined.columns, min(joined.confidence, QUALIFIED))
    return sorted([*whole, joined], key=lambda suggestion: -suggestion.confidence)


def _sure(suggestions):
    """The best suggestion if it is confident and no other is as sure (two "Email" columns: ask), else None."""
    if not suggestions or suggestions[0].confidence < CONFIDENT:
        return None
    if len(suggestions) > 1 and suggestions[1].confidence >= suggestions[0].confidence:
        return None
    return suggestions[0]


def complete_mapping(given: dict, columns: list[str]) -> ColumnMapping:
    """A mapping of the fields a user gave (name: columns, email, company, extra) with the fields left out matched
    by match_columns among the other columns; MappingRequired when name or email is still unsure."""
    match = match_columns(columns)
    taken = {*given.get("name", ()), given.get("email"), given.get("company"), *(given.get("extra") or ())}

    def matched(kind):
        free = [suggestion for suggestion in match.suggestions[kind] if not taken.intersection(suggestion.columns)]
        sure = _sure(free)
        return None if sure is None else sure.columns

    name = tuple(given["name"]) if given.get("name") else matched("name")
    email = given.get("email") or (matched("email") or (None,))[0]
    if name is None or email is None:
        missing = " and ".join(kind for kind, found in (("name", name), ("email", email)) if found is None)
        raise MappingRequired(
            f"The columns holding the {missing} are not clear; map them too. Columns found: "
            f"{', '.join(repr(column) for column in columns[:20])}.",
            details=match.to_json(),
        )
    company = given.get("company")
    if company is None and "company" not in given:
        company = (matched("company") or (None,))[0]
        company = None if company in (email, *name) else company
    extra = given.get("extra")
    return ColumnMapping(name=name, email=email, company=company, extra=None if extra is None else tuple(extra))

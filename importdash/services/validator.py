"""Validate one source row into a contact, or reject it with a category and a readable message."""

import re
from dataclasses import dataclass, field

from ..models import ErrorCategory
from .reader import SourceRow

MAX_TEXT_LENGTH = 500  # longest name or company accepted, in characters
MAX_EMAIL_LENGTH = 254  # the longest address SMTP can carry (RFC 5321 path limit less the brackets)
_SHOWN_VALUE_LENGTH = 80  # longer values are cut short in messages

# A plausibility check, not RFC 5322: one @, a local part without whitespace, and a domain of
# letter/digit/hyphen labels ending in a top-level domain of two or more letters.
_match_email = re.compile(r"[^\s@]+@(?:(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)+[A-Za-z]{2,63}").fullmatch
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Contact:
    """Hold a valid row's trimmed values and the key its email is de-duplicated by."""

    row: int
    name: str
    email: str
    email_key: str
    company: str | None
    data: dict = field(compare=False, repr=False)  # the row as read, kept for an error row if it turns out a duplicate
    extra: dict | None = field(default=None, compare=False, repr=False)  # the kept columns beyond name/email/company


@dataclass(frozen=True, slots=True)
class Rejection:
    """Hold why a row cannot be imported, with the row as read."""

    row: int
    category: str
    message: str
    data: dict


def validate(source_row: SourceRow) -> Contact | Rejection:
    """Return the row as a Contact, or a Rejection naming the first kind of problem found."""
    if source_row.problem is not None:
        return _reject(source_row, ErrorCategory.INVALID_FORMAT, source_row.problem)

    name = (source_row.name or "").strip()
    email = (source_row.email or "").strip()
    if not name or not email:
        missing = [f"{field} is missing" for field, value in (("name", name), ("email", email)) if not value]
        return _reject(source_row, ErrorCategory.MISSING_VALUE, "; ".join(missing))

    company = (source_row.company or "").strip() or None
    if (
        len(email) > MAX_EMAIL_LENGTH
        or _match_email(email) is None
        or len(name) > MAX_TEXT_LENGTH
        or (company is not None and len(company) > MAX_TEXT_LENGTH)
    ):
        return _reject(source_row, ErrorCategory.INVALID_FORMAT, _format_problems(name, email, company))

    return Contact(source_row.row, name, email, email.lower(), company, source_row.data, source_row.extra or None)


def _reject(source_row, category, message):
    return Rejection(source_row.row, category.value, message, source_row.data)


def _format_problems(name, email, company):
    """Describe every format problem of a row that failed the fast checks."""
    problems = []
    reason = email_problem(email)
    if reason is not None:
        problems.append(f"email {_shown(email)} is not a valid address ({reason})")
    for column, value in (("name", name), ("company", company)):
        if value is not None and len(value) > MAX_TEXT_LENGTH:
            problems.append(f"{column} is too long ({len(value)} characters, at most {MAX_TEXT_LENGTH})")
    return "; ".join(problems)


def email_problem(email: str) -> str | None:
    """Return a short reason why a trimmed email is not a plausible address, or None if it is one."""
    if len(email) > MAX_EMAIL_LENGTH:
        return f"longer than {MAX_EMAIL_LENGTH} characters"
    if any(character.isspace() for character in email):
        return "contains a space"
    at_signs = email.count("@")
    if at_signs == 0:
        return "missing @"
    if at_signs > 1:
        return "more than one @"
    local, domain = email.split("@")
    if not local:
        return "nothing before the @"
    if not domain:
        return "missing domain after the @"
    if "." not in domain:
        return "no dot in the domain"
    labels = domain.split(".")
    if not all(labels):
        return "empty part in the domain"
    for label in labels[:-1]:
        if _LABEL.fullmatch(label) is None:
            return f'domain part "{label}" may only have letters, digits and inner hyphens'
        if len(label) > 63:
            return f'domain part "{label[:20]}…" is longer than 63 characters'
    top_level = labels[-1]
    if not (top_level.isascii() and top_level.isalpha() and 2 <= len(top_level) <= 63):
        return f'top-level domain "{top_level}" must be 2 or more letters'
    if _match_email(email) is None:
        return "not a plausible address"
    return None


def _shown(value):
    if len(value) > _SHOWN_VALUE_LENGTH:
        value = value[:_SHOWN_VALUE_LENGTH] + "…"
    return f'"{value}"'

"""Import templates: saved, named ways to read a kind of file (format, encoding, delimiter, sheet, mapping, the
columns kept, the duplicate policy) and whom to notify when its imports end, and what an import's options become
with one."""

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ApiError, Conflict, NotFound
from ..models import (
    ANONYMOUS_USER,
    DuplicatePolicy,
    Ending,
    FileFormat,
    ImportTemplate,
    Schedule,
    by_id_or_name,
    is_id,
    isoformat,
)
from .mapping import ColumnMapping
from .notifications import parse_addresses, parse_endings
from .reader import parse_delimiter, parse_encoding
from .validator import email_problem

# A template as the API shows and takes it: the upload form's own field names.
FIELDS = (
    "name",
    "format",
    "encoding",
    "delimiter",
    "sheet",
    "mapping",
    "duplicate_policy",
    "notify_webhook_url",
    "notify_email",
    "notify_on",
)
MAX_NAME_LENGTH = 100  # the column's size
MAX_SHEET_LENGTH = 255
MAX_URL_LENGTH = 2_000
MAX_ADDRESSES = 20  # email addresses one template notifies


def template_json(template: ImportTemplate) -> dict:
    """A template as the API shows it."""
    return {
        "id": template.id,
        "name": template.name,
        "format": template.file_format,
        "encoding": template.encoding,
        "delimiter": template.delimiter,
        "sheet": template.sheet,
        "mapping": template.mapping,
        "duplicate_policy": template.duplicate_policy,
        "notify_webhook_url": template.notify_webhook_url,
        "notify_email": template.notify_email or [],
        "notify_on": template.notify_on,
        "created_by": template.created_by,
        "created_at": isoformat(template.created_at),
        "updated_at": isoformat(template.updated_at),
    }


def list_templates(session: Session) -> list[ImportTemplate]:
    """Every template, by name."""
    return list(session.scalars(select(ImportTemplate).order_by(func.lower(ImportTemplate.name), ImportTemplate.id)))


def get_template(session: Session, reference: str | int) -> ImportTemplate:
    """The template with this id (a number) or name; NotFound otherwise. Names are never all digits."""
    template = by_id_or_name(session, ImportTemplate, reference)
    if template is None:
        raise NotFound(f"No template {reference!r}.")
    return template


def create_template(session: Session, data, *, created_by: str = ANONYMOUS_USER) -> ImportTemplate:
    """Check and save a new template from the API's JSON; 400 naming a bad field, 409 when the name is taken."""
    values = validated(data)
    template = ImportTemplate(**values, created_by=created_by)
    _save(session, template)
    return template


def update_template(session: Session, reference: str | int, data) -> ImportTemplate:
    """Replace a template's fields with the JSON given (a field left out goes back to "detect it")."""
    template = get_template(session, reference)
    values = validated(data)
    for name, value in values.items():
        setattr(template, name, value)
    _save(session, template)
    return template


def delete_template(session: Session, reference: str | int) -> None:
    """Delete a template; the imports started with it keep their settings and lose the link. A template that a
    schedule uses is kept (409 naming the schedule)."""
    template = get_template(session, reference)
    schedule = session.scalar(select(Schedule.name).where(Schedule.template_id == template.id).limit(1))
    if schedule is not None:
        raise Conflict(f"The schedule {schedule!r} uses template {template.name!r}; delete or change it first.")
    session.delete(template)
    session.commit()


def _save(session, template):
    same_name = select(ImportTemplate.id).where(func.lower(ImportTemplate.name) == template.name.lower())
    if template.id is not None:
        same_name = same_name.where(ImportTemplate.id != template.id)
    with session.no_autoflush:  # the template's new values are not written before the check
        taken = session.scalar(same_name) is not None
    if not taken:
        session.add(template)
        try:
            session.commit()
            return
        except IntegrityError:  # the same name saved at the same moment by another request
            pass
    session.rollback()
    raise Conflict(f"A template named {template.name!r} exists already; choose another name.")


def validated(data) -> dict:
    """The model's values for a template's JSON; 400 naming the first field that is wrong."""
    if not isinstance(data, dict):
        raise ApiError(f"Send a template as a JSON object with the fields {', '.join(FIELDS)}.", code="invalid_body")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ApiError(
            f"Unknown template field {unknown[0]!r}; a template has {', '.join(FIELDS)}.", code="invalid_parameter"
        )
    name = data.get("name")
    if not (isinstance(name, str) and name.strip()):
        raise ApiError("A template needs a name.", code="invalid_parameter")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not name.isprintable() or is_id(name):
        raise ApiError(
            f"A template's name is up to {MAX_NAME_LENGTH} printable characters, not only digits.",
            code="invalid_parameter",
        )
    file_format = _text(data, "format")
    if file_format is not None:
        file_format = _choice(FileFormat, "format", file_format)
    encoding = _text(data, "encoding")
    delimiter = _text(data, "delimiter", strip=False)
    sheet = _text(data, "sheet")
    if sheet is not None and (len(sheet) > MAX_SHEET_LENGTH or not sheet.isprintable()):
        raise ApiError(f"sheet is a sheet's name, up to {MAX_SHEET_LENGTH} characters.", code="invalid_parameter")
    mapping = data.get("mapping")
    policy = _text(data, "duplicate_policy")
    return {
        "name": name,
        "file_format": file_format,
        "encoding": None if encoding is None else parse_encoding(encoding),
        "delimiter": None if delimiter is None else parse_delimiter(delimiter),
        "sheet": sheet,
        "mapping": None if mapping is None else ColumnMapping.validated(mapping).to_json(),
        "duplicate_policy": _choice(DuplicatePolicy, "duplicate_policy", policy or DuplicatePolicy.SKIP.value),
        "notify_webhook_url": _webhook_url(_text(data, "notify_webhook_url")),
        "notify_email": _addresses(data.get("notify_email")),
        "notify_on": _endings(data.get("notify_on")),
    }


def _webhook_url(url):
    if url is None:
        return None
    parts = urlsplit(url)
    if len(url) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(
            f"notify_webhook_url must be an http:// or https:// URL of up to {MAX_URL_LENGTH} characters.",
            code="invalid_parameter",
        )
    return url


def _addresses(value):
    """notify_email: a list of addresses (or one comma-separated text); None when there are none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = parse_addresses(value)
    if not isinstance(value, list) or not all(isinstance(address, str) for address in value):
        raise ApiError("notify_email must be a list of email addresses.", code="invalid_parameter")
    addresses = list(dict.fromkeys(address.strip() for address in value if address.strip()))
    if len(addresses) > MAX_ADDRESSES:
        raise ApiError(f"notify_email holds at most {MAX_ADDRESSES} addresses.", code="invalid_parameter")
    for address in addresses:
        problem = email_problem(address)
        if problem is not None:
            raise ApiError(
                f"notify_email: {address[:80]!r} is not an email address ({problem}).", code="invalid_parameter"
            )
    return addresses or None


def _endings(value):
    """notify_on: a list of endings; None (the global NOTIFY_ON) when left out or null."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ApiError("notify_on must be a list of endings, or null for the global setting.", code="invalid_parameter")
    try:
        endings = parse_endings(value)
    except ValueError as error:
        raise ApiError(f"notify_on: {error}.", code="invalid_parameter") from None
    return [ending.value for ending in Ending if ending in endings]


def _text(data, field, strip=True):
    """An optional text field: None when left out, null or empty."""
    value = data.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ApiError(f"{field} must be text.", code="invalid_parameter")
    value = value.strip() if strip else value
    return value or None


def _choice(enum, field, value):
    try:
        return enum(value).value
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ApiError(f"{field} must be one of {choices}; got {value!r}.", code="invalid_parameter") from None


# Using a template.


@dataclass(frozen=True)
class ImportOptions:
    """How an import reads its file: the request's own options, else its template's, else "detect it"."""

    file_format: FileFormat | None
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    mapping: ColumnMapping | None  # explicit: the request's, else the template's
    duplicate_policy: DuplicatePolicy
    template_id: int | None


def import_options(
    session: Session,
    *,
    template: str | None,
    file_format: FileFormat | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    mapping: ColumnMapping | None,
    duplicate_policy: DuplicatePolicy | None,
) -> ImportOptions:
    """Fill the options a request left out from the template it names (NotFound when there is none)."""
    if template is None:
        return ImportOptions(
            file_format, encoding, delimiter, sheet, mapping, duplicate_policy or DuplicatePolicy.SKIP, None
        )
    if is_id(template):  # a name only: an upload's template field is never taken for an id
        raise NotFound(f"No template {template!r}: name a template, not its id.")
    saved = get_template(session, template)
    return ImportOptions(
        file_format=file_format or (FileFormat(saved.file_format) if saved.file_format else None),
        encoding=encoding or saved.encoding,
        delimiter=delimiter or saved.delimiter,
        sheet=sheet or saved.sheet,
        mapping=mapping or ColumnMapping.from_json(saved.mapping),
        duplicate_policy=duplicate_policy or DuplicatePolicy(saved.duplicate_policy),
        template_id=saved.id,
    )

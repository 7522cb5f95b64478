"""services/templates.py and services/memory.py without HTTP: a template's options fill the request's gaps, and
mapping memory keeps the latest mapping per set of columns."""

import pytest

from importdash.errors import ApiError, NotFound
from importdash.extensions import db
from importdash.models import DuplicatePolicy, FileFormat
from importdash.services import memory, templates
from importdash.services.mapping import ColumnMapping

NO_OPTIONS = dict(file_format=None, encoding=None, delimiter=None, sheet=None, mapping=None, duplicate_policy=None)


@pytest.fixture
def crm(app):
    return templates.create_template(
        db.session,
        {
            "name": "CRM",
            "format": "csv",
            "encoding": "latin-1",
            "delimiter": "tab",
            "sheet": "Contacts",
            "mapping": {"name": "Kontakt", "email": "Adresse"},
            "duplicate_policy": "update",
        },
    )


def test_a_template_fills_every_option_the_request_left_out(crm):
    options = templates.import_options(db.session, template="CRM", **NO_OPTIONS)

    assert options == templates.ImportOptions(
        file_format=FileFormat.CSV,
        encoding="iso8859-1",
        delimiter="\t",
        sheet="Contacts",
        mapping=ColumnMapping(name=("Kontakt",), email="Adresse"),
        duplicate_policy=DuplicatePolicy.UPDATE,
        template_id=crm.id,
    )


def test_the_requests_own_options_win(crm):
    mine = ColumnMapping(name=("Name",), email="Email")
    options = templates.import_options(
        db.session,
        template="CRM",
        file_format=FileFormat.XLSX,
        encoding="utf-8",
        delimiter=";",
        sheet="Other",
        mapping=mine,
        duplicate_policy=DuplicatePolicy.SKIP,
    )

    assert (options.file_format, options.encoding, options.delimiter, options.sheet) == (
        FileFormat.XLSX,
        "utf-8",
        ";",
        "Other",
    )
    assert (options.mapping, options.duplicate_policy, options.template_id) == (mine, DuplicatePolicy.SKIP, crm.id)


def test_without_a_template_the_options_are_the_requests_with_skip_by_default(app):
    options = templates.import_options(db.session, template=None, **NO_OPTIONS)

    assert options.duplicate_policy is DuplicatePolicy.SKIP and options.template_id is None


def test_an_upload_names_a_template_never_by_its_id(crm):
    with pytest.raises(NotFound):
        templates.import_options(db.session, template=str(crm.id), **NO_OPTIONS)
    with pytest.raises(NotFound):
        templates.import_options(db.session, template="crm ", **NO_OPTIONS)


def test_validated_normalises_what_it_keeps(app):
    values = templates.validated({"name": "  Shop  ", "encoding": "UTF8", "delimiter": "|", "format": ""})

    assert values == {
        "name": "Shop",
        "file_format": None,
        "encoding": "utf-8-sig",
        "delimiter": "|",
        "sheet": None,
        "mapping": None,
        "duplicate_policy": "skip",
        "notify_webhook_url": None,
        "notify_email": None,
        "notify_on": None,
    }
    with pytest.raises(ApiError, match="Send a template as a JSON object"):
        templates.validated(["Shop"])


def test_memory_keeps_the_latest_mapping_per_set_of_columns_in_each_files_spelling(app):
    columns = ["Kontakt", "Adresse", "Telefon"]
    assert memory.recall(db.session, columns) is None

    memory.remember(db.session, columns, ColumnMapping(name=("Kontakt",), email="Adresse"))
    memory.remember(db.session, columns, ColumnMapping(name=("Kontakt",), email="Adresse", extra=("Telefon",)))

    assert memory.recall(db.session, ["telefon", "KONTAKT", "adresse"]) == ColumnMapping(
        name=("KONTAKT",), email="adresse", extra=("telefon",)
    )
    assert memory.recall(db.session, ["Kontakt", "Adresse"]) is None  # another set of columns


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("notify_webhook_url", "ftp://example.com/hook", "must be an http:// or https:// URL"),
        ("notify_webhook_url", "https://", "must be an http:// or https:// URL"),
        ("notify_email", ["ops@example.com", "ops@"], "'ops@' is not an email address"),
        ("notify_email", [1], "must be a list of email addresses"),
        ("notify_on", ["failed", "finished"], "'finished' is not an ending"),
        ("notify_on", "failed", "must be a list of endings"),
    ],
)
def test_notification_fields_are_checked(app, field, value, message):
    with pytest.raises(ApiError, match=message):
        templates.validated({"name": "Feed", field: value})


def test_notification_fields_are_kept_tidy(app):
    values = templates.validated(
        {
            "name": "Feed",
            "notify_webhook_url": " https://hooks.example.com/in?token=x ",
            "notify_email": "ops@example.com, crm@example.com,ops@example.com",
            "notify_on": ["cancelled", "failed"],
        }
    )

    assert values["notify_webhook_url"] == "https://hooks.example.com/in?token=x"
    assert values["notify_email"] == ["ops@example.com", "crm@example.com"]
    assert values["notify_on"] == ["failed", "cancelled"]

import dataclasses

import pytest

from importdash.models import ErrorCategory
from importdash.services.reader import SourceRow
from importdash.services.validator import MAX_TEXT_LENGTH, Contact, Rejection, validate


def source_row(name="Ada Lovelace", email="ada@example.com", company="Acme", *, row=2, problem=None, data=None):
    if data is None:
        data = {"name": name, "email": email, "company": company}
    return SourceRow(row, name, email, company, data, problem)


def test_valid_row_becomes_a_contact():
    assert validate(source_row(row=7)) == Contact(7, "Ada Lovelace", "ada@example.com", "ada@example.com", "Acme", {})


def test_values_are_trimmed_and_email_key_is_lower_cased():
    contact = validate(source_row("  Ada Lovelace ", "  Ada.Lovelace@Example.COM\t", " Acme Ltd "))

    assert contact == Contact(2, "Ada Lovelace", "Ada.Lovelace@Example.COM", "ada.lovelace@example.com", "Acme Ltd", {})


@pytest.mark.parametrize("company", ["", "   ", None])
def test_empty_or_absent_company_is_none(company):
    assert validate(source_row(company=company)).company is None


def test_duplicates_are_not_decided_here():
    first = validate(source_row(email="ada@example.com"))
    second = validate(source_row(email="ADA@example.com ", row=3))

    assert isinstance(first, Contact) and isinstance(second, Contact)
    assert first.email_key == second.email_key


def test_results_are_frozen():
    contact = validate(source_row())

    with pytest.raises(dataclasses.FrozenInstanceError):
        contact.name = "Someone else"


def test_row_with_a_problem_is_invalid_format():
    data = {"name": "Ben", "email": "ben@example.com"}
    row = source_row("Ben", "ben@example.com", None, row=9, problem="row 9 has 2 fields, expected 3", data=data)

    assert validate(row) == Rejection(9, "invalid_format", "row 9 has 2 fields, expected 3", data)


def test_problem_comes_before_missing_values():
    rejection = validate(source_row("", None, None, problem="row 2 has 1 field, expected 3"))

    assert rejection.category == ErrorCategory.INVALID_FORMAT.value


@pytest.mark.parametrize(
    ("name", "email", "message"),
    [
        ("", "ada@example.com", "name is missing"),
        ("   ", "ada@example.com", "name is missing"),
        ("Ada", "", "email is missing"),
        ("Ada", " \t", "email is missing"),
        ("", "", "name is missing; email is missing"),
        ("", "not an email", "name is missing"),
    ],
)
def test_missing_values(name, email, message):
    row = source_row(name, email, "Acme", row=4)

    rejection = validate(row)

    assert rejection == Rejection(4, "missing_value", message, row.data)


def test_category_is_a_plain_string_value():
    category = validate(source_row(name="")).category

    assert type(category) is str
    assert category == ErrorCategory.MISSING_VALUE.value


@pytest.mark.parametrize(
    "email",
    [
        "a@b.co",
        "ada.lovelace+newsletter@mail.example.com",
        "o'brien@example.ie",
        "UPPER@EXAMPLE.COM",
        "x@my-host.example.org",
        "123@456.example",
        "first_last@corp.example",
        "a@" + "b" * 63 + ".com",
    ],
)
def test_plausible_emails(email):
    assert isinstance(validate(source_row(email=email)), Contact)


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("bobexample.com", "missing @"),
        ("bob@@example.com", "more than one @"),
        ("bob@example@com", "more than one @"),
        ("bob smith@example.com", "contains a space"),
        ("bob@exam ple.com", "contains a space"),
        ("bob@example", "no dot in the domain"),
        ("bob@example,com", "no dot in the domain"),
        ("bob@", "missing domain after the @"),
        ("@example.com", "nothing before the @"),
        ("bob@example..com", "empty part in the domain"),
        ("bob@.example.com", "empty part in the domain"),
        ("bob@example.com.", "empty part in the domain"),
        ("bob@-example.com", 'domain part "-example" may only have letters, digits and inner hyphens'),
        ("bob@example-.com", 'domain part "example-" may only have letters, digits and inner hyphens'),
        ("bob@exa_mple.com", 'domain part "exa_mple" may only have letters, digits and inner hyphens'),
        ("bob@" + "b" * 64 + ".com", "is longer than 63 characters"),
        ("bob@example.c", 'top-level domain "c" must be 2 or more letters'),
        ("bob@example.c0m", 'top-level domain "c0m" must be 2 or more letters'),
        ("bob@192.168.0.1", 'top-level domain "1" must be 2 or more letters'),
        ("bob@example.cöm", 'top-level domain "cöm" must be 2 or more letters'),
    ],
)
def test_implausible_emails_say_why(email, reason):
    rejection = validate(source_row(email=email))

    assert rejection.category == "invalid_format"
    assert rejection.message.startswith(f'email "{email}" is not a valid address (')
    assert reason in rejection.message


def test_invalid_email_message_shows_the_trimmed_value():
    rejection = validate(source_row(email="  bob@@x.com "))

    assert rejection.message == 'email "bob@@x.com" is not a valid address (more than one @)'


def test_email_longer_than_254_characters():
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"
    assert len(email) > 254

    rejection = validate(source_row(email=email))

    assert rejection.category == "invalid_format"
    assert "(longer than 254 characters)" in rejection.message
    assert len(rejection.message) < 160


def test_name_and_company_length_cap():
    at_cap = "n" * MAX_TEXT_LENGTH

    assert isinstance(validate(source_row(name=at_cap, company=at_cap)), Contact)
    assert validate(source_row(name=at_cap + "n")).message == "name is too long (501 characters, at most 500)"
    assert validate(source_row(company=at_cap + "c")).message == "company is too long (501 characters, at most 500)"


def test_every_format_problem_is_reported_together():
    rejection = validate(source_row(name="n" * 600, email="bob@", company="c" * 700))

    assert rejection.category == "invalid_format"
    assert rejection.message == (
        'email "bob@" is not a valid address (missing domain after the @); '
        "name is too long (600 characters, at most 500); "
        "company is too long (700 characters, at most 500)"
    )

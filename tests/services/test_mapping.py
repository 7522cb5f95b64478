"""Matching a file's header to name, email and company (services/mapping.py): real-world headers in several
languages, the false matches it must not make, and first and last names joined."""

import pytest

from importdash.errors import MappingRequired
from importdash.services.mapping import (
    CONFIDENT,
    ColumnMapping,
    complete_mapping,
    header_key,
    match_columns,
    normalise,
)

# (a header, the field it confidently holds): each is matched alone beside neutral columns.
CONFIDENT_HEADERS = [
    ("Email", "email"),
    ("email", "email"),
    ("EMAIL", "email"),
    ("E-mail", "email"),
    ("e_mail", "email"),
    ("E-mail Address", "email"),
    ("Email address", "email"),
    ("email_address", "email"),
    ("emailAddress", "email"),
    ("EmailAddress", "email"),
    ("Mail", "email"),
    ("E-Mail-Adresse", "email"),
    ("Mailadresse", "email"),
    ("Courriel", "email"),
    ("Adresse e-mail", "email"),
    ("Adresse électronique courriel", None),
    ("Mél", "email"),
    ("Correo electrónico", "email"),
    ("Dirección de correo electrónico", "email"),
    ("Correo", "email"),
    ("Indirizzo email", "email"),
    ("Posta elettronica", "email"),
    ("E-mailadres", "email"),
    ("Endereço de e-mail", "email"),
    ("Email ID", "email"),
    ("  Email  ", "email"),
    ("Contact email", "email"),
    ("Name", "name"),
    ("NAME", "name"),
    ("Full Name", "name"),
    ("full_name", "name"),
    ("fullName", "name"),
    ("Contact Name", "name"),
    ("Your name", "name"),
    ("Nom complet", "name"),
    ("Nom et prénom", "name"),
    ("Vollständiger Name", "name"),
    ("Vor- und Nachname", "name"),
    ("Nombre completo", "name"),
    ("Nombre y apellidos", "name"),
    ("Nome completo", "name"),
    ("Nome e cognome", "name"),
    ("Naam", "name"),
    ("Volledige naam", "name"),
    ("Ansprechpartner", "name"),
    ("Company", "company"),
    ("company_name", "company"),
    ("Company Name", "company"),
    ("companyName", "company"),
    ("Organisation", "company"),
    ("Organization", "company"),
    ("Organisation name", "company"),
    ("Firma", "company"),
    ("Firmenname", "company"),
    ("Unternehmen", "company"),
    ("Empresa", "company"),
    ("Nombre de la empresa", "company"),
    ("Société", "company"),
    ("Entreprise", "company"),
    ("Nom de l'entreprise", "company"),
    ("Raison sociale", "company"),
    ("Azienda", "company"),
    ("Ragione sociale", "company"),
    ("Bedrijf", "company"),
    ("Bedrijfsnaam", "company"),
    ("Organização", "company"),
    ("Business Name", "company"),
]

# Headers that must never be taken for a field, though they contain one of its aliases.
NEVER = [
    ("Email consent", "email"),
    ("Email opt-in", "email"),
    ("email_opt_out", "email"),
    ("Email Opt In Date", "email"),
    ("Email verified", "email"),
    ("Email status", "email"),
    ("Email bounced", "email"),
    ("Subscribed to email", "email"),
    ("Email domain", "email"),
    ("Email Marketing Consent", "email"),
    ("Newsletter email", "email"),
    ("E-Mail-Einwilligung", "email"),
    ("Consentement courriel", "email"),
    ("Company size", "company"),
    ("Company Domain", "company"),
    ("Company Phone", "company"),
    ("Company ID", "company"),
    ("Company Website", "company"),
    ("Company Industry", "company"),
    ("Taille de l'entreprise", "company"),
    ("Name of referrer", "name"),
    ("Referrer name", "name"),
    ("Username", "name"),
    ("User name", "name"),
    ("Middle name", "name"),
    ("Nickname", "name"),
    ("Campaign name", "name"),
    ("File name", "name"),
    ("Product name", "name"),
    ("Company Name", "name"),
    ("Email", "name"),
    ("Name", "email"),
    ("Phone", "email"),
    ("Mailing list", "email"),
    ("Mailing Address", "email"),
    ("Home Address", "email"),
    ("Company Address", "company"),
    ("Name and address", "name"),
]


@pytest.mark.parametrize(("header", "field"), CONFIDENT_HEADERS)
def test_a_known_header_is_matched_confidently(header, field):
    match = match_columns(["Phone", header, "Notes"])

    for kind in ("name", "email", "company"):
        best = match.suggestions[kind][0] if match.suggestions[kind] else None
        if kind == field:
            assert best is not None and best.column == header and best.confidence >= CONFIDENT, match.suggestions
        else:
            assert best is None or best.column != header or best.confidence < CONFIDENT, (kind, match.suggestions)


@pytest.mark.parametrize(("header", "field"), NEVER)
def test_a_header_that_only_contains_an_alias_is_never_a_match(header, field):
    match = match_columns(["Phone", header, "Notes"])

    assert header not in [suggestion.column for suggestion in match.suggestions[field]], match.suggestions


@pytest.mark.parametrize(
    ("columns", "name", "email", "company"),
    [
        (["Full Name", "E-mail Address", "Company"], ("Full Name",), "E-mail Address", "Company"),
        (["First Name", "Last Name", "Email", "Phone"], ("First Name", "Last Name"), "Email", None),
        (["first_name", "last_name", "email_address"], ("first_name", "last_name"), "email_address", None),
        (["Given name", "Surname", "Mail"], ("Given name", "Surname"), "Mail", None),
        (["Vorname", "Nachname", "E-Mail", "Firma"], ("Vorname", "Nachname"), "E-Mail", "Firma"),
        (["Vorname", "Name", "E-Mail-Adresse"], ("Vorname", "Name"), "E-Mail-Adresse", None),
        (["Prénom", "Nom", "Courriel", "Société"], ("Prénom", "Nom"), "Courriel", "Société"),
        (["Nom", "Prénom", "Adresse e-mail"], ("Prénom", "Nom"), "Adresse e-mail", None),
        (
            ["Nombre", "Apellidos", "Correo electrónico", "Empresa"],
            ("Nombre", "Apellidos"),
            "Correo electrónico",
            "Empresa",
        ),
        (["Nome", "Cognome", "Email", "Azienda"], ("Nome", "Cognome"), "Email", "Azienda"),
        (["Voornaam", "Achternaam", "E-mailadres", "Bedrijf"], ("Voornaam", "Achternaam"), "E-mailadres", "Bedrijf"),
        (["Primeiro nome", "Sobrenome", "E-mail", "Empresa"], ("Primeiro nome", "Sobrenome"), "E-mail", "Empresa"),
        (
            ["firstName", "lastName", "emailAddress", "companyName"],
            ("firstName", "lastName"),
            "emailAddress",
            "companyName",
        ),
        # A whole-name column wins over the halves, and the halves stay extra fields.
        (["First Name", "Last Name", "Full Name", "Email"], ("Full Name",), "Email", None),
        # The sure column wins over the one merely qualified or containing an alias.
        (["Name", "Email", "Work Email", "Email consent", "Company size"], ("Name",), "Email", None),
        (["Name", "Email", "Mail"], ("Name",), "Email", None),
        # Today's exact headers still import as they did.
        (["name", "email", "company"], ("name",), "email", "company"),
        (["email", "name"], ("name",), "email", None),
    ],
)
def test_a_header_whose_fields_all_match_gets_a_mapping(columns, name, email, company):
    match = match_columns(columns)

    assert match.mapping == ColumnMapping(name=name, email=email, company=company)
    assert match.confident


@pytest.mark.parametrize(
    ("columns", "field", "suggested"),
    [
        # Nothing sure: the best guesses come back, less confident, for the user to confirm.
        (["Name", "Work Email", "Phone"], "email", ["Work Email"]),
        (["Name", "Work Email", "Personal Email"], "email", ["Work Email", "Personal Email"]),
        (["Name", "Email 2"], "email", ["Email 2"]),
        (["Customer mail handle", "Name"], "email", ["Customer mail handle"]),
        (["First Name", "Email", "Phone"], "name", ["First Name"]),
        # Two columns as sure as each other: the user says which.
        (["Name", "Email", "E-mail"], "email", ["Email", "E-mail"]),
        (["Full Name", "Name", "Email"], "name", ["Full Name", "Name"]),
        # Nothing like a name at all.
        (["who", "Email"], "name", []),
        (["Name of referrer", "Email consent", "Company size"], "email", []),
    ],
)
def test_without_a_sure_match_there_is_no_mapping_only_suggestions(columns, field, suggested):
    match = match_columns(columns)

    assert match.mapping is None
    assert [suggestion.column for suggestion in match.suggestions[field]] == suggested
    assert all(suggestion.confidence < CONFIDENT for suggestion in match.suggestions[field]) or len(suggested) > 1


def test_partial_matches_are_ranked_below_sure_ones_with_a_lower_confidence():
    match = match_columns(["Name", "Work Email", "Customer mail handle"])

    confidences = [suggestion.confidence for suggestion in match.suggestions["email"]]
    assert confidences == sorted(confidences, reverse=True)
    assert 0 < confidences[-1] < confidences[0] < CONFIDENT


def test_the_json_shape_keeps_column_and_adds_every_column_of_a_joined_name():
    data = match_columns(["First Name", "Last Name", "Email", "Phone"]).to_json()

    assert data["columns"] == ["First Name", "Last Name", "Email", "Phone"]
    assert data["mapping"] == {"name": ["First Name", "Last Name"], "email": "Email", "company": None, "extra": None}
    assert data["suggestions"]["name"] == [
        {"column": "First Name", "columns": ["First Name", "Last Name"], "confidence": 1.0}
    ]
    assert data["suggestions"]["email"] == [{"column": "Email", "columns": ["Email"], "confidence": 1.0}]
    assert data["suggestions"]["company"] == []
    assert data["remembered"] is False


def test_a_remembered_mapping_is_used_as_confirmed_and_follows_the_files_spelling():
    remembered = ColumnMapping(name=("Kontakt",), email="Adresse", company=None, extra=("Telefon",))

    match = match_columns(["kontakt", "ADRESSE", "Telefon", "Notiz"], remembered=remembered)

    assert match.remembered and match.confident
    assert match.mapping == ColumnMapping(name=("kontakt",), email="ADRESSE", company=None, extra=("Telefon",))
    assert match.suggestions["email"][0].confidence == 1.0


def test_a_remembered_mapping_naming_a_missing_column_is_not_used():
    remembered = ColumnMapping(name=("Kontakt",), email="Adresse")

    match = match_columns(["Name", "Email"], remembered=remembered)

    assert not match.remembered
    assert match.mapping == ColumnMapping(name=("Name",), email="Email")


@pytest.mark.parametrize(
    ("header", "normalised"),
    [
        ("E-Mail-Adresse", "e mail adresse"),
        ("firstName", "first name"),
        ("  Prénom ", "prenom"),
        ("Straße", "strasse"),
        ("Email2", "email 2"),
        ("NAME_of_Company", "name of company"),
    ],
)
def test_normalise_ignores_case_accents_punctuation_and_camel_case(header, normalised):
    assert normalise(header) == normalised


def test_the_header_key_ignores_order_and_spelling_but_not_the_set_of_columns():
    key = header_key(["Full Name", "E-mail", "Phone"])

    assert header_key(["phone", "email", "full_name"]) != key  # "email" is not "e mail"
    assert header_key(["phone", "e_mail", "FULL NAME"]) == key
    assert header_key(["Full Name", "E-mail"]) != key
    assert len(key) == 64


def test_complete_mapping_keeps_the_fields_given_and_matches_the_rest_among_the_other_columns():
    columns = ["Full Name", "Email", "Backup Email", "Company"]

    mapping = complete_mapping({"email": "Backup Email"}, columns)

    assert mapping == ColumnMapping(name=("Full Name",), email="Backup Email", company="Company")
    assert complete_mapping({"name": ["Company"], "extra": []}, columns) == ColumnMapping(
        name=("Company",), email="Email", company=None, extra=()
    )


def test_complete_mapping_asks_when_a_required_field_is_still_unsure():
    with pytest.raises(MappingRequired) as raised:
        complete_mapping({"email": "Reach"}, ["Who", "Reach"])

    assert "name are not clear" in raised.value.message
    assert raised.value.details["columns"] == ["Who", "Reach"]

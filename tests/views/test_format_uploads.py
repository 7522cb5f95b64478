"""Excel, JSON and NDJSON uploads through the API: imported with row numbers from the file, their extra columns
kept; hostile ones refused with a clear 400 and nothing kept."""

import io
import json
import os
import zipfile

import pytest
from openpyxl import Workbook

PEOPLE = [
    {"Name": "Ada Lovelace", "Email": "ada@example.com", "Company": "Analytical", "Phone": "+44 1"},
    {"Name": "Bob", "Email": "not-an-email", "Company": "B", "Phone": "2"},
    {"Name": "Cy", "Email": "cy@example.com", "Company": None, "Phone": 3},
]


def workbook_bytes(rows, *, sheet="Contacts", other_sheets=()):
    workbook = Workbook()
    workbook.active.title = sheet
    for row in rows:
        workbook.active.append(row)
    for name in other_sheets:
        workbook.create_sheet(name).append(["name", "email"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def people_workbook():
    header = list(PEOPLE[0])
    return workbook_bytes([header, *[list(person.values()) for person in PEOPLE[:2]], [], list(PEOPLE[2].values())])


@pytest.fixture
def upload(client):
    def upload(content, name, **fields):
        return client.post("/api/import/batch", data={"file": (io.BytesIO(content), name), **fields})

    return upload


@pytest.fixture
def imported(upload, wait_for_job, client):
    """Upload, wait for the import to end, and return (job, records by row, errors by row)."""

    def imported(content, name, **fields):
        response = upload(content, name, **fields)
        assert response.status_code == 202, response.get_json()
        job = wait_for_job(response.get_json()["job"]["id"])
        assert job["status"] == "completed", job["error"]
        records = client.get(f"/api/records?job={job['id']}&limit=1000").get_json()["records"]
        errors = client.get(f"/api/import/{job['id']}/errors?limit=1000").get_json()["errors"]
        return job, {r["row"]: r for r in records}, {e["row"]: e for e in errors}

    return imported


@pytest.fixture
def refused(upload, client, app):
    """Upload, expect a 400 with the code, check no job and no file were kept, and return the message."""

    def refused(content, name, code="invalid_file", **fields):
        response = upload(content, name, **fields)
        assert response.status_code == 400, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == code
        assert client.get("/api/import").get_json()["total"] == 0
        assert os.listdir(app.config["UPLOAD_FOLDER"]) == []
        return error["message"]

    return refused


def test_an_xlsx_upload_is_imported_with_the_sheets_row_numbers(imported):
    job, records, errors = imported(people_workbook(), "people.xlsx")
    assert (job["file_format"], job["sheet"]) == ("xlsx", "Contacts")
    assert set(records) == {2, 5} and records[5]["email"] == "cy@example.com"
    assert errors[3]["category"] == "invalid_format"
    assert errors[3]["data"] == {"Name": "Bob", "Email": "not-an-email", "Company": "B", "Phone": "2"}


def test_a_json_upload_is_imported_with_record_numbers(imported):
    job, records, errors = imported(json.dumps(PEOPLE).encode(), "people.json")
    assert job["file_format"] == "json"
    assert (sorted(records), sorted(errors)) == ([1, 3], [2])
    assert errors[2]["data"] == {"Name": "Bob", "Email": "not-an-email", "Company": "B", "Phone": "2"}


def test_an_ndjson_upload_is_imported_with_line_numbers_and_a_bad_line_is_a_row_error(imported):
    lines = [json.dumps(PEOPLE[0]), "[1, 2]", json.dumps(PEOPLE[2])]
    job, records, errors = imported("\n".join(lines).encode(), "people.ndjson")
    assert job["file_format"] == "ndjson"
    assert sorted(records) == [1, 3]
    assert errors[2]["message"] == "line 2 is an array, not an object with the columns as keys"


def test_the_content_says_the_format_whatever_the_name_and_a_named_format_is_used(imported):
    job, records, _errors = imported(json.dumps(PEOPLE).encode(), "export.txt")
    assert job["file_format"] == "json" and sorted(records) == [1, 3]
    job, _records, errors = imported(people_workbook(), "upload", format="xlsx")
    # The same people again: rows 2 and 5 are duplicates now.
    assert job["file_format"] == "xlsx" and {row: error["category"] for row, error in errors.items()} == {
        2: "duplicate",
        3: "invalid_format",
        5: "duplicate",
    }


def test_a_named_sheet_is_read_and_an_unknown_one_is_refused_listing_the_sheets(imported, refused):
    content = workbook_bytes([["name", "email"]], sheet="Notes", other_sheets=["Clients"])
    message = refused(content, "book.xlsx", code="invalid_parameter", sheet="Contacts")
    assert message == 'The workbook has no sheet named \'Contacts\'; its sheets are "Notes", "Clients".'
    assert "no data rows" in refused(content, "book.xlsx")  # the active sheet, Notes, has only a header
    book = Workbook()
    book.active.title = "Notes"
    clients = book.create_sheet("Clients")
    clients.append(["name", "email"])
    clients.append(["Ada", "ada@example.com"])
    buffer = io.BytesIO()
    book.save(buffer)
    job, records, _errors = imported(buffer.getvalue(), "book.xlsx", sheet="Clients")
    assert job["sheet"] == "Clients" and [record["email"] for record in records.values()] == ["ada@example.com"]


@pytest.mark.parametrize("app_config", [{"XLSX_MAX_COMPRESSION_RATIO": 50}])
def test_a_zip_bomb_in_a_workbook_is_refused_and_nothing_kept(refused):
    buffer = io.BytesIO(people_workbook())
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/image1.bin", bytes(8 << 20))
    assert "refused as a possible zip bomb" in refused(buffer.getvalue(), "people.xlsx")


@pytest.mark.parametrize("app_config", [{"XLSX_MAX_SHARED_STRINGS_MB": 1}])
def test_an_oversized_shared_strings_table_is_refused_and_nothing_kept(refused):
    buffer = io.BytesIO(people_workbook())
    strings = "".join(f"<si><t>{n:032x}</t></si>" for n in range(40_000))  # about 1.8 MB, unique: packs poorly
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", f"<sst>{strings}</sst>")
    assert "shared-strings table is 2 MB, more than the 1 MB" in refused(buffer.getvalue(), "people.xlsx")


@pytest.mark.parametrize(
    ("content", "name", "fields", "fragment"),
    [
        (b'[{"name": "A", "email": "a@example.com", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}]", "x.json", {}, "nests"),
        (b'"just a string"', "x.json", {"format": "json"}, "not a JSON array"),
        (b'[{"name": "A", "email": "a@example.com"}', "x.json", {}, "not valid JSON"),
        (b"name,email\nAda,ada@example.com\n", "x.csv", {"format": "xlsx"}, "not an Excel .xlsx workbook"),
        (b'[{"name": "A", "email": "a@example.com"}]', "x.json", {"format": "ndjson"}, "choose the format json"),
    ],
)
def test_hostile_or_mislabelled_json_and_workbooks_are_refused_and_nothing_kept(
    refused, content, name, fields, fragment
):
    assert fragment in refused(content, name, **fields)


def test_a_workbook_sent_as_csv_is_refused_saying_what_it_is(refused):
    message = refused(people_workbook(), "people.csv", format="csv")
    assert message.startswith("The file is an Excel .xlsx workbook, not CSV: choose the format xlsx")


def test_a_json_file_with_unmatched_keys_asks_for_a_mapping(refused):
    content = json.dumps([{"who": "Ada", "where": "ada@example.com"}]).encode()
    refused(content, "people.json", code="mapping_required")


def test_a_crlf_inside_a_quoted_field_is_stored_as_written(imported):
    content = b'name,email,company\r\n"Ada\r\nLovelace",ada@example.com,"Acme\r\nHead Office"\r\n'
    _job, records, _errors = imported(content, "people.csv")
    assert records[2]["name"] == "Ada\r\nLovelace"


def test_errors_csv_of_a_json_import_has_its_columns(imported, client):
    job, _records, _errors = imported(json.dumps(PEOPLE).encode(), "people.json")
    text = client.get(f"/api/import/{job['id']}/errors.csv").get_data(as_text=True)
    lines = text.lstrip("\ufeff").splitlines()
    assert lines[0] == "row,category,message,Name,Email,Company,Phone"
    assert lines[1].startswith("2,invalid_format,") and lines[1].endswith(",Bob,not-an-email,B,2")

"""Every kind of file people upload gets a clear answer through the API: imported right, or refused saying why."""

import codecs
import io
import os

import pytest

JOB = "Ada Lovelace,ada@example.com,Analytical\nJosé Núñez,jose@example.com,Ñandú\n"


@pytest.fixture
def upload(client):
    """Post bytes as the multipart field 'file' (with any other fields) and return the response."""

    def upload(content, *, mode="batch", name="contacts.csv", **fields):
        return client.post(f"/api/import/{mode}", data={"file": (io.BytesIO(content), name), **fields})

    return upload


@pytest.fixture
def imported(upload, wait_for_job, client):
    """Upload, wait for the import to end, and return (job, records by row, errors by row)."""

    def imported(content, **fields):
        response = upload(content, **fields)
        assert response.status_code == 202, response.get_json()
        job = wait_for_job(response.get_json()["job"]["id"])
        assert job["status"] == "completed", job["error"]
        records = client.get(f"/api/records?job={job['id']}&limit=1000").get_json()["records"]
        errors = client.get(f"/api/import/{job['id']}/errors?limit=1000").get_json()["errors"]
        return job, {r["row"]: r for r in records}, {e["row"]: e for e in errors}

    return imported


@pytest.fixture
def refused(upload, client, app):
    """Upload, expect a 400 with the given code, check nothing was kept, and return the message."""

    def refused(content, code="invalid_file", **fields):
        jobs_before = client.get("/api/import").get_json()["total"]
        files_before = os.listdir(app.config["UPLOAD_FOLDER"])
        response = upload(content, **fields)
        assert response.status_code == 400, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == code
        assert client.get("/api/import").get_json()["total"] == jobs_before
        assert os.listdir(app.config["UPLOAD_FOLDER"]) == files_before
        return error["message"]

    return refused


def names(records):
    return [record["name"] for _row, record in sorted(records.items())]


def test_utf8_without_a_byte_order_mark(imported):
    job, records, _ = imported(("name,email,company\n" + JOB).encode())
    assert job["encoding"] == "utf-8-sig"
    assert names(records) == ["Ada Lovelace", "José Núñez"]


def test_utf8_with_a_byte_order_mark(imported):
    job, records, _ = imported(codecs.BOM_UTF8 + ("name,email,company\n" + JOB).encode())
    assert names(records) == ["Ada Lovelace", "José Núñez"]
    assert records[3]["company"] == "Ñandú"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be-with-bom"])
def test_utf16_with_a_byte_order_mark(imported, codec):
    text = "name,email,company\r\n" + JOB
    content = text.encode("utf-16") if codec == "utf-16" else codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    job, records, _ = imported(content)
    assert job["encoding"] == "utf-16"
    assert names(records) == ["Ada Lovelace", "José Núñez"]


@pytest.mark.parametrize(
    ("encoding", "name"), [("cp1252", "Zoë “Smart” Müller"), ("latin-1", "José Núñez"), ("shift_jis", "山田 太郎")]
)
def test_other_encodings_are_named_in_the_encoding_field(imported, encoding, name):
    content = f"name,email\n{name},someone@example.com\n".encode(encoding)
    job, records, _ = imported(content, encoding=encoding)
    assert names(records) == [name]
    assert job["encoding"] == {"latin-1": "iso8859-1"}.get(encoding, encoding)


def test_undecodable_file_is_refused_naming_the_encoding_and_byte(refused):
    content = "name,email\nAda,ada@example.com\nZoë,zoe@example.com\n".encode("cp1252")
    message = refused(content)
    position = content.index("ë".encode("cp1252"))
    assert f"not valid UTF-8 text: byte 0xEB at byte position {position} (line 3)" in message
    assert '"encoding" field' in message and "cp1252" in message
    assert "\ufffd" not in message


def test_a_named_encoding_that_does_not_fit_is_refused_too(refused):
    message = refused("name,email\nÅsa,asa@example.com\n".encode(), encoding="shift_jis")
    assert "not valid shift_jis text: byte 0x85" in message


def test_an_unknown_encoding_name_is_refused(refused):
    message = refused(b"name,email\nAda,ada@example.com\n", code="invalid_parameter", encoding="klingon-8")
    assert "'klingon-8'" in message


def test_a_png_renamed_csv_is_refused_before_anything_is_written(refused):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    assert refused(png, name="contacts.csv") == (
        "The file is a PNG image, not CSV text. Export the contacts as CSV and upload that."
    )


def test_a_zip_archive_that_is_no_workbook_is_refused_saying_what_it_is(refused):
    assert "a ZIP archive, not CSV text" in refused(b"PK\x03\x04\x14\x00\x06\x00" + bytes(100))


def test_nul_bytes_are_refused_as_binary(refused):
    message = refused(b"name,email\nAda,ada@example.com\nB\x00b,bob@example.com\n")
    assert message.startswith("The file is not text: it has a NUL character on line 3.")


def test_nul_bytes_in_a_named_single_byte_encoding_are_refused_too(refused):
    message = refused(b"name,email\nAda,ada@example.com\n\x00\x00\x00", encoding="latin-1")
    assert "NUL character on line 3" in message


def test_utf16_without_a_byte_order_mark_is_refused_with_a_hint(refused):
    message = refused(("name,email\n" + JOB).encode("utf-16-le"))
    assert "NUL character" in message and '"utf-16-le"' in message


@pytest.mark.parametrize("content", [b"", b"\r\n \r\n", codecs.BOM_UTF8])
def test_an_empty_file_is_refused(refused, content):
    assert refused(content) == "The file is empty."


def test_a_header_only_file_is_refused(refused):
    assert refused(b"name,email,company\r\n") == ("The file has a header but no data rows: there is nothing to import.")


def test_quoted_fields_hold_newlines_commas_and_doubled_quotes(imported):
    content = (
        b'name,email,company\r\n"Ada\r\nLovelace",ada@example.com,"Engines, ""Analytical"" Ltd"\r\n'
        b"Bob,bob@example.com,x\r\n"
    )
    _job, records, _ = imported(content)
    assert records[2]["name"] == "Ada\r\nLovelace"
    assert records[2]["company"] == 'Engines, "Analytical" Ltd'
    assert records[3]["name"] == "Bob"  # a quoted newline keeps the row count a spreadsheet would show


def test_a_missing_final_newline_loses_no_row(imported):
    _job, records, _ = imported(b"name,email\nAda,ada@example.com\nBob,bob@example.com")
    assert names(records) == ["Ada", "Bob"]


def test_cr_only_line_endings(imported):
    _job, records, _ = imported(b"name,email\rAda,ada@example.com\rBob,bob@example.com\r")
    assert sorted(records) == [2, 3]


def test_ragged_rows_are_row_errors_and_the_rest_is_imported(imported):
    content = (
        b"name,email,company\nAda,ada@example.com,A\nShort,short@example.com\n"
        b"Long,long@example.com,B,extra\nEve,eve@example.com,E\n"
    )
    job, records, errors = imported(content)
    assert names(records) == ["Ada", "Eve"]
    assert errors[3]["category"] == errors[4]["category"] == "invalid_format"
    assert errors[3]["message"] == "row 3 has 2 fields, expected 3"
    assert errors[4]["message"] == "row 4 has 4 fields, expected 3"
    assert errors[4]["data"] == {"name": "Long", "email": "long@example.com", "company": "B", "_extra": ["extra"]}
    assert (job["total_records"], job["success_count"], job["failed_count"]) == (4, 2, 2)


def test_duplicate_header_names_are_refused_with_the_names(refused):
    message = refused(b"name,email,Phone,phone,Email\nAda,ada@example.com,1,2,x\n")
    assert message == 'The header repeats the column names "phone", "Email"; every column needs its own name.'


def test_empty_header_names_are_refused_with_their_positions(refused):
    message = refused(b"name,,email,\nAda,x,ada@example.com,y\n")
    assert message.startswith("Columns 2, 4 of the header have no name")
    assert 'Columns found: "name", "", "email", ""' in message


def test_a_field_longer_than_the_csv_limit_is_a_row_error_and_the_rest_is_imported(imported):
    runaway = b'"' + b"x" * 200_000  # an opening quote that never closes swallows the following lines
    content = b"name,email\nAda,ada@example.com\nBob," + runaway + b"\nCy,cy@example.com\n"
    job, records, errors = imported(content)
    assert names(records) == ["Ada", "Cy"]
    assert errors[3]["message"] == "row 3 has a field longer than 131,072 characters (is a quote left open?)"
    assert job["failed_count"] == 1


@pytest.mark.parametrize("app_config", [dict(MAX_LINE_LENGTH=1000)])
def test_a_line_longer_than_the_limit_refuses_the_file(refused):
    message = refused(b"name,email\nAda,ada@example.com\n" + b"y" * 5000 + b"\nBob,bob@example.com\n")
    assert message.startswith("Line 3 is longer than 1,000 characters")


@pytest.mark.parametrize(("separator", "expected"), [(";", ";"), ("\t", "\t"), ("|", "|")])
def test_the_delimiter_is_detected_from_the_header(imported, separator, expected):
    content = f"name{separator}email{separator}company\nAda{separator}ada@example.com{separator}A, B and C\n"
    job, records, _ = imported(content.encode())
    assert job["delimiter"] == expected
    assert records[2]["company"] == "A, B and C"


@pytest.mark.parametrize("delimiter", ["\t", "tab"])
def test_the_delimiter_field_is_used_instead_of_detection(imported, refused, delimiter):
    job, records, _ = imported(b"name\temail\tcompany\nAda\tada@example.com\tA;B\n", delimiter=delimiter)
    assert job["delimiter"] == "\t" and records[2]["company"] == "A;B"

    message = refused(b"name,email\nAda,ada@example.com\n", code="mapping_required", delimiter=delimiter)
    assert message.startswith('The header has no "name" and "email" columns, nor one that clearly holds them.')
    assert 'Columns found: "name,email".' in message


def test_an_unknown_delimiter_is_refused(refused):
    message = refused(b"name,email\nAda,ada@example.com\n", code="invalid_parameter", delimiter="#")
    assert "delimiter must be one of" in message


def test_a_file_name_cannot_smuggle_control_characters_into_the_history(upload, wait_for_job):
    response = upload(b"name,email\nAda,ada@example.com\n", name="evil\x1b[2J\tname\x85\x07.csv")
    job = response.get_json()["job"]
    assert job["source"] == "evil[2Jname.csv"
    assert wait_for_job(job["id"])["source"] == "evil[2Jname.csv"


def test_a_form_field_without_a_file_name_is_refused(client):
    response = client.post("/api/import/batch", data={"file": "name,email\nAda,ada@example.com\n"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_upload"


def test_a_raw_csv_body_is_refused_not_ignored(client):
    response = client.post("/api/import/stream", data=b"name,email\nAda,ada@example.com\n", content_type="text/csv")
    assert response.status_code == 400
    assert "multipart/form-data" in response.get_json()["error"]["message"]
    assert client.get("/api/import").get_json()["total"] == 0


def test_a_misspelt_form_field_is_refused_not_ignored(upload, client):
    response = upload(b"name;email\nAda;ada@example.com\n", delimeter=";")
    assert response.status_code == 400
    assert "'delimeter'" in response.get_json()["error"]["message"]


def test_a_form_part_without_a_name_is_refused(client):
    body = (
        b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
        b'--b\r\nContent-Disposition: form-data; name="z"\r\n\r\ny\r\n--b--\r\n'
    )
    response = client.post("/api/import/batch", data=body, content_type="multipart/form-data; boundary=b")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("Unknown form fields (unnamed), 'z';")

"""/api/templates: create, list, show, replace and delete templates; the upload's template field uses one."""

import io

import pytest

from importdash.extensions import db
from importdash.models import DEFAULT_ENCODING, HeaderMapping, ImportJob, Record

MAPPING = {"name": ["Vorname", "Nachname"], "email": "Adresse", "company": None, "extra": ["Telefon"]}
CRM = {"name": "CRM export", "delimiter": "semicolon", "encoding": "cp1252", "mapping": MAPPING}


def upload(client, content, **fields):
    return client.post("/api/import/batch", data={"file": (io.BytesIO(content), "crm.csv"), **fields})


def test_a_template_is_created_listed_shown_by_id_and_name_replaced_and_deleted(client):
    created = client.post("/api/templates", json=CRM)
    assert created.status_code == 201, created.get_json()
    template = created.get_json()["template"]
    assert template | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0,
        "name": "CRM export",
        "format": None,
        "encoding": "cp1252",
        "delimiter": ";",
        "sheet": None,
        "mapping": MAPPING,
        "duplicate_policy": "skip",
        "notify_webhook_url": None,
        "notify_email": [],
        "notify_on": None,
        "created_by": "anonymous",
        "created_at": "",
        "updated_at": "",
    }
    assert client.get("/api/templates").get_json() == {"templates": [template]}
    assert client.get(f"/api/templates/{template['id']}").get_json() == {"template": template}
    assert client.get("/api/templates/CRM export").get_json() == {"template": template}

    replaced = client.put(f"/api/templates/{template['id']}", json={"name": "CRM", "duplicate_policy": "update"})
    assert replaced.status_code == 200
    assert replaced.get_json()["template"] | {"updated_at": ""} == template | {
        "name": "CRM",
        "encoding": None,
        "delimiter": None,
        "mapping": None,
        "duplicate_policy": "update",
        "updated_at": "",
    }

    assert client.delete("/api/templates/CRM").status_code == 204
    assert client.get("/api/templates").get_json() == {"templates": []}
    assert client.get("/api/templates/CRM").status_code == 404


def test_a_name_is_unique_ignoring_case(client):
    assert client.post("/api/templates", json={"name": "Shop"}).status_code == 201
    other = client.post("/api/templates", json={"name": "Other"}).get_json()["template"]

    clash = client.post("/api/templates", json={"name": " shop "})
    assert clash.status_code == 409 and clash.get_json()["error"]["code"] == "conflict"
    renamed = client.put(f"/api/templates/{other['id']}", json={"name": "SHOP"})
    assert renamed.status_code == 409
    assert client.put(f"/api/templates/{other['id']}", json={"name": "Other"}).status_code == 200  # its own name
    assert [t["name"] for t in client.get("/api/templates").get_json()["templates"]] == ["Other", "Shop"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "JSON object"),
        ({}, "needs a name"),
        ({"name": "  "}, "needs a name"),
        ({"name": "123"}, "not only digits"),
        ({"name": "x" * 101}, "up to 100"),
        ({"name": "tab\there"}, "printable"),
        ({"name": "t", "colour": "red"}, "Unknown template field 'colour'"),
        ({"name": "t", "format": "docx"}, "format must be one of csv, xlsx, json, ndjson"),
        ({"name": "t", "encoding": "klingon"}, "not a text encoding"),
        ({"name": "t", "encoding": "rot13"}, "not a text encoding"),
        ({"name": "t", "delimiter": "#"}, "delimiter must be one of"),
        ({"name": "t", "duplicate_policy": "merge"}, "duplicate_policy must be one of skip, update"),
        ({"name": "t", "mapping": {"name": "Full Name"}}, "mapping cannot be used"),
        ({"name": "t", "mapping": "Full Name"}, "mapping cannot be used"),
        ({"name": "t", "mapping": {"name": "N", "email": "E", "phone": "P"}}, "mapping cannot be used"),
        ({"name": "t", "sheet": 3}, "sheet must be text"),
        ({"name": "t", "sheet": "a\x00b"}, "sheet must be text"),
    ],
)
def test_a_bad_template_is_refused_saying_what_is_wrong(client, body, fragment):
    response = client.post("/api/templates", json=body)

    assert response.status_code == 400
    assert fragment in response.get_json()["error"]["message"]
    assert client.get("/api/templates").get_json() == {"templates": []}


def test_unknown_templates_are_404(client):
    assert client.get("/api/templates/404").status_code == 404
    assert client.put("/api/templates/nope", json={"name": "x"}).status_code == 404
    assert client.delete("/api/templates/99999999999999999999").status_code == 404
    assert client.get("/api/templates/%C2%B2").status_code == 404  # a digit, but not an id
    assert client.get("/api/templates/a%00b").status_code == 404


def test_an_upload_naming_a_template_is_read_with_its_settings(client, wait_for_job):
    template = client.post("/api/templates", json=CRM).get_json()["template"]
    content = "Vorname;Nachname;Adresse;Telefon;Notiz\nZoë;Weiß;zoe@example.com;+49 1;x\n".encode("cp1252")

    response = upload(client, content, template="CRM export")

    assert response.status_code == 202, response.get_json()
    job = wait_for_job(response.get_json()["job"]["id"])
    assert job["success_count"] == 1
    assert (job["template_id"], job["encoding"], job["delimiter"]) == (template["id"], "cp1252", ";")
    assert job["mapping"] == MAPPING
    record = db.session.query(Record).one()
    assert (record.name, record.email) == ("Zoë Weiß", "zoe@example.com")  # Telefon is kept: extra-fields stores it


def test_the_requests_own_options_win_over_its_templates(client, wait_for_job):
    client.post("/api/templates", json=CRM)
    content = b"Full Name,E-mail,Telefon\nAda Lovelace,ada@example.com,1\n"

    response = upload(
        client,
        content,
        template="CRM export",
        encoding="utf-8",
        delimiter=",",
        mapping='{"name": "Full Name", "email": "E-mail"}',
    )

    assert response.status_code == 202, response.get_json()
    job = wait_for_job(response.get_json()["job"]["id"])
    assert (job["encoding"], job["delimiter"], job["success_count"]) == (DEFAULT_ENCODING, ",", 1)
    assert job["mapping"]["name"] == ["Full Name"]


def test_an_upload_naming_an_unknown_template_is_404_and_writes_nothing(client):
    response = upload(client, b"name,email\nAda,ada@example.com\n", template="nope")

    assert response.status_code == 404
    assert "No template 'nope'" in response.get_json()["error"]["message"]
    assert db.session.query(ImportJob).count() == 0


def test_a_deleted_templates_imports_keep_their_settings(client, wait_for_job):
    client.post("/api/templates", json=CRM)
    content = "Vorname;Nachname;Adresse;Telefon\nA;B;a@example.com;1\n".encode("cp1252")
    job_id = upload(client, content, template="CRM export").get_json()["job"]["id"]
    wait_for_job(job_id)

    assert client.delete("/api/templates/CRM export").status_code == 204

    job = client.get(f"/api/import/{job_id}").get_json()["job"]
    assert job["template_id"] is None and job["mapping"] == MAPPING


def test_mapping_required_answers_with_columns_and_ranked_suggestions(client):
    response = upload(client, b"Name,Work Email,Email consent\nAda,ada@example.com,yes\n")

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "mapping_required"
    details = error["details"]
    assert details["columns"] == ["Name", "Work Email", "Email consent"]
    assert details["mapping"] is None
    assert details["suggestions"]["name"][0] == {"column": "Name", "columns": ["Name"], "confidence": 1.0}
    assert [s["column"] for s in details["suggestions"]["email"]] == ["Work Email"]
    assert details["suggestions"]["email"][0]["confidence"] < 0.9


def test_a_confident_header_in_another_language_imports_with_no_extra_step(client, wait_for_job):
    content = "Prénom,Nom,Adresse e-mail,Société,Téléphone\nMarie,Curie,marie@example.com,Radium,01\n".encode()

    response = upload(client, content)

    assert response.status_code == 202, response.get_json()
    job = wait_for_job(response.get_json()["job"]["id"])
    assert job["mapping"] == {"name": ["Prénom", "Nom"], "email": "Adresse e-mail", "company": "Société", "extra": None}
    record = db.session.query(Record).one()
    assert (record.name, record.company) == ("Marie Curie", "Radium")


def test_a_mapping_given_once_is_remembered_for_the_next_file_with_those_columns(client, wait_for_job):
    first = b"Kontakt,Erreichbar,Telefon\nAda,ada@example.com,1\n"
    refused = upload(client, first)
    assert refused.status_code == 400 and refused.get_json()["error"]["details"]["remembered"] is False

    mapping = '{"name": "Kontakt", "email": "Erreichbar"}'
    assert upload(client, first, mapping=mapping).status_code == 202
    assert db.session.query(HeaderMapping).count() == 1

    # Another file with the same set of columns, spelled and ordered differently: no mapping needed.
    response = upload(client, b"erreichbar,TELEFON,kontakt\ngrace@example.com,2,Grace\n")
    assert response.status_code == 202, response.get_json()
    job = wait_for_job(response.get_json()["job"]["id"])
    assert job["success_count"] == 1
    assert job["mapping"] == {"name": ["kontakt"], "email": "erreichbar", "company": None, "extra": None}


def test_a_remembered_mapping_wins_over_automatic_matching(client, wait_for_job):
    columns = b"Name,Email,Contact\n"
    # The user said the person's name is in Contact, the Name column being something else.
    mapping = '{"name": "Contact", "email": "Email"}'
    first = upload(client, columns + b"Acme,ada@example.com,Ada\n", mapping=mapping)
    assert first.status_code == 202
    wait_for_job(first.get_json()["job"]["id"])

    response = upload(client, columns + b"Initech,grace@example.com,Grace\n")

    job = wait_for_job(response.get_json()["job"]["id"])
    assert job["mapping"]["name"] == ["Contact"]
    assert sorted(db.session.scalars(db.select(Record.name))) == ["Ada", "Grace"]


def test_a_template_mapping_is_remembered_too(client):
    client.post("/api/templates", json=CRM)
    content = "Vorname;Nachname;Adresse;Telefon\nA;B;a@example.com;1\n".encode("cp1252")
    assert upload(client, content, template="CRM export").status_code == 202

    remembered = db.session.query(HeaderMapping).one()
    assert remembered.mapping == MAPPING and remembered.columns == ["Vorname", "Nachname", "Adresse", "Telefon"]


def test_the_templates_page_is_linked_from_the_header_and_reads_the_api(client):
    page = client.get("/templates").get_data(as_text=True)

    assert 'data-templates-url="/api/templates"' in page and 'src="/static/js/templates.js"' in page
    assert 'href="/templates"' in client.get("/").get_data(as_text=True)


def test_a_templates_notification_settings_are_saved_and_bad_ones_refused_with_a_400(client):
    created = client.post(
        "/api/templates",
        json={
            "name": "Feed",
            "notify_webhook_url": "https://hooks.example.com/in",
            "notify_email": ["ops@example.com"],
            "notify_on": ["failed"],
        },
    )
    assert created.status_code == 201, created.get_json()
    template = created.get_json()["template"]
    assert (template["notify_webhook_url"], template["notify_email"], template["notify_on"]) == (
        "https://hooks.example.com/in",
        ["ops@example.com"],
        ["failed"],
    )

    refused = client.post("/api/templates", json={"name": "Other", "notify_email": ["nobody"]})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_parameter"
    assert "'nobody' is not an email address" in refused.get_json()["error"]["message"]

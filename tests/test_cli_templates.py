"""The CLI's --map and --template options on import, and the templates group."""

import json

from importdash.extensions import db
from importdash.models import ImportJob, ImportTemplate, Record


def imported_names():
    return sorted(db.session.scalars(db.select(Record.name)))


def test_import_maps_columns_with_map(runner, write_csv):
    path = write_csv("Kontakt,Erreichbar,Telefon\nAda Lovelace,ada@example.com,1\n")

    refused = runner.invoke(args=["import", str(path)])
    assert refused.exit_code != 0
    assert "Columns: Kontakt, Erreichbar, Telefon" in refused.output and "--map" in refused.output

    result = runner.invoke(args=["import", str(path), "--map", "name=Kontakt", "--map", "email=Erreichbar"])
    assert result.exit_code == 0, result.output
    assert imported_names() == ["Ada Lovelace"]
    job = db.session.query(ImportJob).one()
    assert job.mapping == {"name": ["Kontakt"], "email": "Erreichbar", "company": None, "extra": None}


def test_map_joins_two_name_columns_and_keeps_only_the_extra_columns_named(runner, write_csv):
    path = write_csv("Given,Family,Reach,Phone,Notes\nAda,Lovelace,ada@example.com,1,x\n")

    result = runner.invoke(
        args=["import", str(path)]
        + ["--map", "name=Given", "--map", "name=Family", "--map", "email=Reach", "--map", "extra=Phone"]
    )

    assert result.exit_code == 0, result.output
    assert imported_names() == ["Ada Lovelace"]
    job = db.session.query(ImportJob).one()
    assert job.mapping == {"name": ["Given", "Family"], "email": "Reach", "company": None, "extra": ["Phone"]}


def test_map_of_one_field_leaves_the_others_to_matching(runner, write_csv):
    path = write_csv("Full Name,Reach me at,Company\nAda Lovelace,ada@example.com,Engines\n")

    result = runner.invoke(args=["import", str(path), "--map", "email=Reach me at"])

    assert result.exit_code == 0, result.output
    job = db.session.query(ImportJob).one()
    assert job.mapping == {"name": ["Full Name"], "email": "Reach me at", "company": "Company", "extra": None}


def test_a_bad_map_is_refused(runner, write_csv):
    path = write_csv("name,email\nAda,ada@example.com\n")
    for bad in (["--map", "phone=Phone"], ["--map", "name"], ["--map", "email=a", "--map", "email=b"]):
        result = runner.invoke(args=["import", str(path), *bad])
        assert result.exit_code == 2 and "--map" in result.output, result.output
    missing = runner.invoke(args=["import", str(path), "--map", "name=Nom", "--map", "email=email"])
    assert missing.exit_code == 1 and 'The mapping names the column "Nom"' in missing.output


def test_templates_are_created_listed_shown_used_and_deleted(runner, write_csv, tmp_path):
    created = runner.invoke(
        args=["templates", "create", "CRM", "--delimiter", "semicolon"]
        + ["--map", "name=Vorname", "--map", "name=Nachname", "--map", "email=Adresse", "--duplicate-policy", "update"]
    )
    assert created.exit_code == 0, created.output
    assert "Template #1 'CRM' saved." in created.output

    listed = runner.invoke(args=["templates", "list"])
    assert "CRM" in listed.output and "delimiter ';'" in listed.output and "name=Vorname + Nachname" in listed.output
    shown = json.loads(runner.invoke(args=["templates", "show", "CRM"]).output)
    assert shown["mapping"]["name"] == ["Vorname", "Nachname"] and shown["duplicate_policy"] == "update"

    path = write_csv("Vorname;Nachname;Adresse\nAda;Lovelace;ada@example.com\n")
    result = runner.invoke(args=["import", str(path), "--template", "CRM"])
    assert result.exit_code == 0, result.output
    assert imported_names() == ["Ada Lovelace"]
    job = db.session.query(ImportJob).one()
    assert (job.template_id, job.delimiter, job.duplicate_policy) == (1, ";", "update")

    unknown = runner.invoke(args=["import", str(path), "--template", "nope"])
    assert unknown.exit_code == 1 and "No template 'nope'" in unknown.output

    deleted = runner.invoke(args=["templates", "delete", "CRM"])
    assert deleted.exit_code == 0
    assert db.session.query(ImportTemplate).count() == 0
    assert runner.invoke(args=["templates", "delete", "CRM"]).exit_code == 1


def test_a_template_is_created_from_json_with_options_overriding(runner, tmp_path):
    spec = tmp_path / "template.json"
    spec.write_text(json.dumps({"name": "From JSON", "encoding": "cp1252", "mapping": {"name": "N", "email": "E"}}))

    result = runner.invoke(args=["templates", "create", "Renamed", "--json", str(spec), "--encoding", "latin-1"])

    assert result.exit_code == 0, result.output
    template = db.session.query(ImportTemplate).one()
    assert (template.name, template.encoding, template.mapping["email"]) == ("Renamed", "iso8859-1", "E")
    clash = runner.invoke(args=["templates", "create", "renamed"])
    assert clash.exit_code == 1 and "exists already" in clash.output
    partial = runner.invoke(args=["templates", "create", "Half", "--map", "email=E"])
    assert partial.exit_code == 2 and "name and email" in partial.output


def test_map_of_one_field_wins_over_the_templates_mapping(runner, write_csv):
    runner.invoke(args=["templates", "create", "CRM", "--map", "name=Kontakt", "--map", "email=Adresse"])
    path = write_csv("Kontakt,Adresse,Privat\nAda,ada@work.example,ada@home.example\n")

    result = runner.invoke(args=["import", str(path), "--template", "CRM", "--map", "email=Privat"])

    assert result.exit_code == 0, result.output
    assert db.session.scalars(db.select(Record.email)).all() == ["ada@home.example"]


def test_templates_create_takes_notification_settings_and_notifications_lists_an_imports(runner, app, write_csv):
    created = runner.invoke(
        args=["templates", "create", "Feed", "--notify-webhook", "http://127.0.0.1:9/hook?token=s3cret"]
        + ["--notify-email", "ops@example.com", "--notify-email", "crm@example.com", "--notify-on", "completed,failed"]
    )
    assert created.exit_code == 0, created.output
    template = db.session.query(ImportTemplate).one()
    assert template.notify_email == ["ops@example.com", "crm@example.com"]
    assert template.notify_on == ["completed", "failed"]
    assert "notifies http://127.0.0.1:9/hook" in runner.invoke(args=["templates", "list"]).output
    refused = runner.invoke(args=["templates", "create", "Bad", "--notify-email", "not-an-address"])
    assert refused.exit_code != 0 and "is not an email address" in refused.output

    path = write_csv("name,email\nAda Lovelace,ada@example.com\n")
    imported = runner.invoke(args=["import", str(path), "--template", "Feed"])
    assert imported.exit_code == 0, imported.output
    job_id = db.session.query(ImportJob).one().id
    listed = runner.invoke(args=["notifications", str(job_id)])

    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    # No secret is set and port 9 does not answer: the import itself still succeeded.
    assert lines[0].startswith("webhook  failed   attempts 1  http://127.0.0.1:9/hook")
    assert "IMPORTDASH_NOTIFY_WEBHOOK_SECRET is not set" in lines[1]
    assert "s3cret" not in listed.output
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == ["webhook", "email", "email"]
    assert "IMPORTDASH_SMTP_HOST is not set" in listed.output
    assert runner.invoke(args=["notifications", "99999"]).exit_code != 0

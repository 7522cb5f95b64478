"""flask import --dry-run: the preview on the command line, with nothing written."""

from sqlalchemy import func, select

from importdash.extensions import db
from importdash.models import ImportJob, ImportPreview, Record, RowError


def counts():
    models = (ImportJob, Record, RowError, ImportPreview)
    return [db.session.scalar(select(func.count()).select_from(model)) for model in models]


def test_dry_run_prints_the_mapping_rows_counts_and_estimate_and_writes_nothing(app, runner, write_csv):
    app.config.update(RATE_PER_SECOND=2.0, RECORDS_PER_CALL=1)
    path = write_csv(
        "name;email;company;phone\n"
        "Ada Lovelace;ada@example.com;Analytical;555\n"
        "Bad;not-an-email;;\n"
        "Ada Again;ADA@example.com;;\n"
        "Grace;grace@example.com;;\n"
    )

    result = runner.invoke(args=["import", str(path), "--dry-run"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Preview of contacts.csv (utf-8-sig, delimiter ';')"
    assert lines[1] == "Mapping: name <- 'name'; email <- 'email'; company <- 'company'; extra: phone"
    assert "  2    valid" in result.output and "phone=555" in result.output
    assert "  3    invalid format" in result.output
    assert "  4    duplicate in the file" in result.output
    assert (
        "Counts: 4 rows: 2 valid, 0 missing value, 1 invalid format, 1 duplicate in the file, 0 already stored"
        in result.output
    )
    assert "Delivery: 2 records in 2 calls of 1, about 1 s at 2 calls/s." in result.output
    assert counts() == [0, 0, 0, 0]


def test_dry_run_of_a_file_needing_a_mapping_names_the_columns_and_exits_1(runner, write_csv):
    path = write_csv("who,where\n1,2\n")
    result = runner.invoke(args=["import", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert "Columns: who, where" in result.output and "Map the columns" in result.output
    assert counts() == [0, 0, 0, 0]


def test_dry_run_of_a_refused_file_says_why(runner, write_csv):
    result = runner.invoke(args=["import", str(write_csv("name,email\n")), "--dry-run"])
    assert result.exit_code == 1 and "no data rows" in result.output

"""The analytics and compare commands: the same figures, rows and CSV as the API."""

import json

from importdash.extensions import db
from importdash.models import Record, RowError


def make_pair(make_job):
    columns = ["name", "email", "company"]
    a, b = make_job(columns=columns, source="a.csv"), make_job(columns=columns, source="b.csv")
    db.session.add(Record(job_id=a.id, row=2, name="Ann", email="ann@x.example", email_key="ann@x.example"))
    db.session.add(Record(job_id=a.id, row=3, name="Bob", email="bob@x.example", email_key="bob@x.example"))
    data = {"name": "Ann Lee", "email": "ann@x.example", "company": ""}
    db.session.add(RowError(job_id=b.id, row=2, category="duplicate", message="duplicate", data=data))
    db.session.commit()
    return a.id, b.id


def test_compare_prints_the_counts_and_lists_one_kind_of_difference(runner, make_job):
    a, b = make_pair(make_job)

    counts = runner.invoke(args=["compare", str(a), str(b)])
    changed = runner.invoke(args=["compare", str(a), str(b), "--show", "changed"])

    assert counts.exit_code == 0, counts.output
    assert f"A: #{a} a.csv: 2 rows, 2 emails" in counts.output
    assert "only in A          1" in counts.output and "changed            1" in counts.output
    assert "ann@x.example  name" in changed.output and "B row 2: Ann Lee" in changed.output


def test_compare_json_and_csv_are_what_the_api_serves(runner, client, make_job, tmp_path):
    a, b = make_pair(make_job)
    output = tmp_path / "diff.csv"

    as_json = runner.invoke(args=["compare", str(a), str(b), "--show", "only_a", "--json"])
    as_csv = runner.invoke(args=["compare", str(a), str(b), "--csv", "-o", str(output)])

    assert json.loads(as_json.output) == client.get(f"/api/compare?a={a}&b={b}&difference=only_a").get_json()
    assert as_csv.exit_code == 0
    assert output.read_bytes() == client.get(f"/api/compare.csv?a={a}&b={b}").data


def test_compare_of_an_unknown_import_exits_1_saying_so(runner, make_job):
    a, _ = make_pair(make_job)

    result = runner.invoke(args=["compare", str(a), "999"])

    assert result.exit_code == 1 and "No import #999." in result.output


def test_analytics_prints_a_row_per_day_and_the_apis_json(runner, client, make_job):
    make_job(total_records=40, success_count=30, failed_count=10)

    table = runner.invoke(args=["analytics", "--days", "7"])
    as_json = runner.invoke(args=["analytics", "--days", "7", "--json"])

    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["DATE", "IMPORTS", "ROWS"]
    assert len([line for line in lines if line[:4].isdigit()]) == 7
    assert lines[8].split()[:5] == ["all", "1", "40", "30", "10"]
    assert json.loads(as_json.output) == client.get("/api/analytics?days=7").get_json()
    assert runner.invoke(args=["analytics", "--days", "8"]).exit_code == 2

"""Comparing two imports' source rows by email: records and the rows kept as errors, on the test database."""

import csv
import io

import pytest

from importdash.errors import NotFound
from importdash.extensions import db
from importdash.models import Record, RowError
from importdash.services import compare
from importdash.services.compare import SourceRow, changed_fields

COLUMNS = ["name", "email", "company"]


def add_record(job, row, name, email, company=None, *, status="succeeded", extra=None):
    db.session.add(
        Record(
            job_id=job.id,
            row=row,
            name=name,
            email=email,
            email_key=email.strip().lower(),
            company=company,
            extra=extra,
            status=status,
        )
    )


def add_error(job, row, category, data, message="kept as an error"):
    db.session.add(RowError(job_id=job.id, row=row, category=category, message=message, data=data))


@pytest.fixture
def pair(make_job):
    """Two imports of one file under global dedupe: B's rows already stored by A are duplicate error rows."""
    a = make_job(columns=COLUMNS, source="a.csv")
    b = make_job(columns=COLUMNS, source="b.csv")
    add_record(a, 2, "Ann Lee", "ann@example.com", "Acme")
    add_record(a, 3, "Bob Ray", "bob@example.com", "Initech")
    add_record(a, 4, "Eve Moss", "eve@blocked.example", "Hooli", status="failed")
    # A refused record keeps an error row of its own beside it (lower-case keys): still one source row.
    add_error(a, 4, "other", {"name": "Eve Moss", "email": "eve@blocked.example", "company": "Hooli"})
    add_error(a, 5, "invalid_format", {"name": "Gus", "email": "gus-at-example.com", "company": ""})
    # B: Ann again with another company, as a duplicate error row with the email in other case and spaces.
    add_error(b, 2, "duplicate", {"name": "Ann Lee", "email": " ANN@Example.com ", "company": "Acme Ltd"})
    add_error(b, 3, "duplicate", {"name": "Eve Moss", "email": "eve@blocked.example", "company": "Hooli"})
    add_record(b, 4, "Cat Diaz", "cat@example.com", "Globex")
    add_error(b, 5, "duplicate", {"name": "Cat Diaz", "email": "cat@example.com", "company": "Globex"})
    add_error(b, 6, "missing_value", {"name": "Nobody", "email": "", "company": "Nowhere"})
    db.session.commit()
    return a, b


def test_a_record_in_one_import_matches_the_duplicate_error_row_of_the_other(app, pair):
    a, b = pair

    result = compare.compare_counts(db.session, a.id, b.id)

    assert result["counts"] == {
        "a": {"rows": 4, "emails": 4, "without_email": 0, "repeated": 0},
        "b": {"rows": 5, "emails": 3, "without_email": 1, "repeated": 1},
        "only_a": 2,  # Bob, and Gus (whose email was invalid, but is still his)
        "only_b": 1,  # Cat, whose second row repeats her email within B
        "changed": 1,  # Ann's company
        "same": 1,  # Eve
    }
    assert (result["a"]["source"], result["b"]["source"]) == ("a.csv", "b.csv")


def test_each_kind_of_difference_is_listed_in_row_order_with_the_rows_fields(app, pair):
    a, b = pair
    only_a = compare.compare_page(db.session, a.id, b.id, difference="only_a", limit=10, offset=0)
    only_b = compare.compare_page(db.session, a.id, b.id, difference="only_b", limit=10, offset=0)
    changed = compare.compare_page(db.session, a.id, b.id, difference="changed", limit=10, offset=0)

    assert [item["email"] for item in only_a] == ["bob@example.com", "gus-at-example.com"]
    assert only_a[1]["row"] == {
        "row": 5,
        "email": "gus-at-example.com",
        "name": "Gus",
        "company": "",
        "extra": None,
        "state": "invalid_format",
    }
    assert only_b == [
        {
            "email": "cat@example.com",
            "row": {
                "row": 4,
                "email": "cat@example.com",
                "name": "Cat Diaz",
                "company": "Globex",
                "extra": None,
                "state": "succeeded",
            },
        }
    ]
    assert [(item["email"], item["fields"]) for item in changed] == [("ann@example.com", ["company"])]
    assert (changed[0]["a"]["company"], changed[0]["b"]["company"]) == ("Acme", "Acme Ltd")
    assert (changed[0]["a"]["state"], changed[0]["b"]["state"]) == ("succeeded", "duplicate")


def test_pages_follow_limit_and_offset(app, make_job):
    a, b = make_job(columns=COLUMNS), make_job(columns=COLUMNS)
    for row in range(2, 12):
        add_record(a, row, f"Person {row}", f"p{row}@example.com", "Old")
        add_error(b, row, "duplicate", {"name": f"Person {row}", "email": f"p{row}@example.com", "company": "New"})
    db.session.commit()

    pages = [
        compare.compare_page(db.session, a.id, b.id, difference=kind, limit=3, offset=3)
        for kind in ("changed", "only_a")
    ]

    assert [item["a"]["row"] for item in pages[0]] == [5, 6, 7]
    assert pages[1] == []
    assert compare.compare_counts(db.session, a.id, b.id)["counts"]["changed"] == 10


def test_a_mapped_import_is_read_through_its_mapping_and_shared_extra_fields_are_compared(app, make_job):
    columns = ["First", "Last", "E-mail", "Org", "Phone", "Notes"]
    mapping = {"name": ["First", "Last"], "email": "E-mail", "company": "Org", "extra": ["Phone"]}
    a = make_job(columns=columns, mapping=mapping)
    b = make_job(columns=columns, mapping=mapping)
    add_record(a, 2, "Ada Byron", "ada@example.com", "Engines", extra={"Phone": "111"})
    row = {"First": "Ada", "Last": "Byron", "E-mail": "Ada@Example.com", "Org": "Engines", "Phone": "222"}
    add_error(b, 2, "duplicate", row | {"Notes": "not kept"})
    db.session.commit()

    [item] = compare.compare_page(db.session, a.id, b.id, difference="changed", limit=10, offset=0)

    assert item["fields"] == ["extra.Phone"]
    assert item["b"] | {"row": None} == {
        "row": None,
        "email": "Ada@Example.com",
        "name": "Ada Byron",
        "company": "Engines",
        "extra": {"Phone": "222"},
        "state": "duplicate",
    }


def test_fields_compare_trimmed_with_empty_and_missing_alike_and_only_extra_fields_both_have():
    a = SourceRow(2, "x@example.com", " Ada ", None, {"Phone": "1", "Title": "Dr"}, "succeeded")
    b = SourceRow(3, "x@example.com", "Ada", "", {"Phone": "2", "Fax": "9"}, "duplicate")

    assert changed_fields(a, b) == ["extra.Phone"]
    assert changed_fields(a, a) == []


def test_the_csv_lists_every_difference_with_both_sides(app, pair):
    a, b = pair

    name, chunks = compare.compare_csv(db.session, a.id, b.id)
    rows = list(csv.DictReader(io.StringIO("".join(chunks).removeprefix("\ufeff"))))

    assert name == f"compare-{a.id}-{b.id}.csv"
    assert [(row["difference"], row["email"]) for row in rows] == [
        ("only_a", "bob@example.com"),
        ("only_a", "gus-at-example.com"),
        ("only_b", "cat@example.com"),
        ("changed", "ann@example.com"),
    ]
    assert rows[2]["row_a"] == "" and rows[2]["row_b"] == "4"
    assert rows[3]["changed_fields"] == "company"
    assert (rows[3]["company_a"], rows[3]["company_b"]) == ("Acme", "Acme Ltd")


def test_the_csv_neutralises_cells_a_spreadsheet_would_run(app, make_job):
    a, b = make_job(columns=COLUMNS), make_job(columns=COLUMNS)
    add_record(a, 2, "=HYPERLINK(1)", "f@example.com", "+Acme")
    db.session.commit()

    _, chunks = compare.compare_csv(db.session, a.id, b.id)
    [row] = csv.DictReader(io.StringIO("".join(chunks).removeprefix("\ufeff")))

    assert (row["name_a"], row["company_a"]) == ("'=HYPERLINK(1)", "'+Acme")


def test_an_unknown_import_is_not_found(app, make_job):
    job = make_job()
    with pytest.raises(NotFound):
        compare.compare_counts(db.session, job.id, job.id + 1)


def test_two_real_imports_of_the_sample_match_every_email_and_change_nothing(app, client, wait_for_job):
    first = client.post("/api/import").get_json()["job"]["id"]
    wait_for_job(first)
    second = client.post("/api/import").get_json()["job"]["id"]
    wait_for_job(second)

    counts = compare.compare_counts(db.session, first, second)["counts"]

    # Under global dedupe the second import keeps most rows as duplicate error rows (it stores only the emails the
    # first one's downstream refused, which let go of them): comparing records alone would match almost nothing.
    duplicates = db.session.query(RowError).filter_by(job_id=second, category="duplicate").count()
    assert duplicates > counts["same"] / 2
    assert counts["a"] == counts["b"]
    assert counts["same"] == counts["a"]["emails"] > 0
    assert counts["only_a"] == counts["only_b"] == counts["changed"] == 0

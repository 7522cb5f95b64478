"""The comparison page, /api/compare and /api/compare.csv, through the Flask client."""

import csv
import io

import pytest

from importdash.extensions import db
from importdash.models import Record, RowError


@pytest.fixture
def pair(make_job):
    columns = ["name", "email", "company"]
    a, b = make_job(columns=columns, source="first.csv"), make_job(columns=columns, source="second.csv")
    for row in range(2, 7):
        email = f"p{row}@example.com"
        db.session.add(Record(job_id=a.id, row=row, name=f"P{row}", email=email, email_key=email, company="Acme"))
        company = "Acme" if row % 2 else "Globex"
        data = {"name": f"P{row}", "email": email, "company": company}
        db.session.add(RowError(job_id=b.id, row=row, category="duplicate", message="duplicate", data=data))
    db.session.add(Record(job_id=b.id, row=7, name="New", email="new@example.com", email_key="new@example.com"))
    db.session.commit()
    return a, b


def test_the_api_gives_the_counts_and_a_page_of_the_difference_asked_for(client, pair):
    a, b = pair

    body = client.get(f"/api/compare?a={a.id}&b={b.id}&difference=changed&limit=2&offset=1").get_json()

    assert body["counts"]["only_a"] == 0 and body["counts"]["only_b"] == 1
    assert (body["counts"]["changed"], body["counts"]["same"]) == (3, 2)
    assert body["difference"] == "changed" and body["total"] == 3
    assert [item["email"] for item in body["rows"]] == ["p4@example.com", "p6@example.com"]
    assert body["rows"][0]["fields"] == ["company"]
    only_b = client.get(f"/api/compare?a={a.id}&b={b.id}&difference=only_b").get_json()
    assert [item["row"]["name"] for item in only_b["rows"]] == ["New"]
    assert client.get(f"/api/compare?a={a.id}&b={b.id}").get_json()["difference"] == "only_a"


BAD_PAIRS = [
    ("a=1", 400, "invalid_parameter"),
    ("b=1", 400, "invalid_parameter"),
    ("a=x&b=1", 400, "invalid_parameter"),
]
BAD_PAIRS += [("a=0&b=1", 400, "invalid_parameter"), ("a=1&b=99999", 404, "not_found")]


@pytest.mark.parametrize("path", ["/api/compare", "/api/compare.csv"])
@pytest.mark.parametrize(("query", "status", "code"), BAD_PAIRS)
def test_a_missing_bad_or_unknown_import_is_a_clear_4xx(client, pair, path, query, status, code):
    response = client.get(f"{path}?{query}")

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("query", ["difference=same", "limit=0", "offset=-1"])
def test_a_bad_difference_or_page_is_a_400(client, pair, query):
    a, b = pair
    response = client.get(f"/api/compare?a={a.id}&b={b.id}&{query}")

    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_parameter"


def test_the_csv_is_a_download_of_every_difference(client, pair):
    a, b = pair

    response = client.get(f"/api/compare.csv?a={a.id}&b={b.id}")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"))))

    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="compare-{a.id}-{b.id}.csv"'
    assert [row["difference"] for row in rows] == ["only_b", "changed", "changed", "changed"]


def test_the_page_offers_two_pickers_and_shows_the_counts_and_rows_once_both_are_chosen(client, pair):
    a, b = pair

    empty = client.get(f"/compare?a={a.id}").get_data(as_text=True)
    shown = client.get(f"/compare?a={a.id}&b={b.id}&show=changed&limit=2").get_data(as_text=True)

    assert 'name="a"' in empty and 'name="b"' in empty and f'<option value="{a.id}" selected>' in empty
    assert "data-compare-rows" not in empty
    assert f'href="/api/compare.csv?a={a.id}&amp;b={b.id}"' in shown
    assert shown.split("data-compare-rows", 1)[1].count("<tr>") == 3  # the head and a page of two
    assert "Showing 1–2 of 3" in shown
    assert f'href="/compare?a={a.id}&amp;b={b.id}&amp;show=changed&amp;offset=2"' in shown

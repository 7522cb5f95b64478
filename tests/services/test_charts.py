"""The analytics charts as pygal draws them: SVG with no script, and whole-number axes for counts."""

from xml.etree import ElementTree

import pytest

from importdash.services import charts

SVG = "{http://www.w3.org/2000/svg}"
DAY = {
    "date": "2026-03-10",
    "imports": 3,
    "rows": 1200,
    "succeeded": 900,
    "failed": 100,
    "errors": {"duplicate": 150, "missing_value": 30, "invalid_format": 15, "other": 5},
    "duration": {"average_seconds": 12.5, "p95_seconds": 30.0, "count": 3},
    "rate_used": 75.0,
    "success_rate": 0.6667,
    "delivery_success_rate": 0.9,
}
EMPTY_DAY = DAY | {
    "imports": 0,
    "rows": 0,
    "errors": dict.fromkeys(DAY["errors"], 0),
    "duration": {"average_seconds": None, "p95_seconds": None, "count": 0},
    "rate_used": None,
    "success_rate": None,
    "delivery_success_rate": None,
}
SUMMARY = {
    "days": [EMPTY_DAY | {"date": "2026-03-09"}, DAY],
    "rate_allowed": 80.0,
    "downstream_errors": [{"status": "rejected", "message": 'domain "x.example" is not accepted', "count": 100}],
}
EMPTY = {"days": [EMPTY_DAY], "rate_allowed": None, "downstream_errors": []}


def texts(svg):
    root = ElementTree.fromstring(svg)
    assert not list(root.iter(f"{SVG}script"))
    return [element.text for element in root.iter(f"{SVG}text") if element.text]


@pytest.mark.parametrize("name", list(charts.SUMMARY_CHARTS))
def test_every_chart_draws_its_figures_and_says_when_there_are_none(name):
    drawn = texts(charts.SUMMARY_CHARTS[name](SUMMARY, compact=False))
    empty = texts(charts.SUMMARY_CHARTS[name](EMPTY, compact=True))

    assert "03-10" in drawn or 'rejected: domain "x.example" is not accepted' in drawn
    assert any(text.startswith("No ") for text in empty) and "03-10" not in empty


def test_the_delivery_rate_chart_shows_the_allowed_rate_only_when_there_is_a_limit():
    assert "Allowed" in texts(charts.delivery_rate(SUMMARY, compact=False))
    assert "Allowed" not in texts(charts.delivery_rate(SUMMARY | {"rate_allowed": None}, compact=False))


def test_one_imports_runs_are_drawn_with_a_gap_between_them():
    rates = {
        "job": {"id": 7, "source": "a.csv", "status": "completed"},
        "runs": [
            {"start_seconds": 0.0, "end_seconds": 4.0, "rows_per_second": 100.0},
            {"start_seconds": 10.0, "end_seconds": 12.0, "rows_per_second": None},  # sent nothing yet
            {"start_seconds": 20.0, "end_seconds": 30.0, "rows_per_second": 50.0},
        ],
    }

    drawn = texts(charts.throughput(rates, compact=False))

    assert "Import #7: rows per second" in drawn and "No deliveries yet" not in drawn
    assert "No deliveries yet" in texts(charts.throughput(rates | {"runs": []}, compact=True))


@pytest.mark.parametrize(
    ("largest", "labels"),
    [(0, [0, 1]), (2, [0, 1, 2]), (7, [0, 2, 4, 6, 8]), (35, [0, 10, 20, 30, 40]), (1145, [0, 500, 1000, 1500])],
)
def test_count_axes_have_whole_round_steps(largest, labels):
    assert charts._count_labels(largest) == labels

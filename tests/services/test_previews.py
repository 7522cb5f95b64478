"""The preview's arithmetic: the delivery estimate at a rate limit."""

from importdash.services.previews import estimate


def test_50k_rows_at_the_default_limit_take_about_26_minutes():
    # The figure: 3,125 calls of 16 records at 2 calls a second.
    assert estimate(50_000, records_per_call=16, rate_per_second=2.0) == {
        "records": 50_000,
        "calls": 3125,
        "records_per_call": 16,
        "rate_per_second": 2.0,
        "seconds": 1562.5,
    }


def test_a_partial_call_counts_as_a_call_and_no_limit_has_no_time():
    assert estimate(17, records_per_call=16, rate_per_second=4.0)["seconds"] == 0.5
    assert estimate(17, records_per_call=16, rate_per_second=0)["seconds"] is None
    assert estimate(0, records_per_call=16, rate_per_second=2.0)["seconds"] == 0

"""ReadAhead: a batch import's next batch is read and validated on a thread of its own while the one before is
written."""

import threading

import pytest

from importdash.services.importer import ReadAhead, validated_batches
from importdash.services.rows import SourceRow
from importdash.services.validator import Contact, Rejection


def source_row(row, email):
    return SourceRow(row, f"Person {row}", email, None, {"email": email}, None)


def test_it_yields_every_item_in_order_and_its_thread_ends():
    ahead = ReadAhead(iter(range(100)))
    with ahead:
        assert list(ahead) == list(range(100))
    assert not ahead._thread.is_alive()


def test_an_error_of_the_iterator_is_raised_to_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError("the upload store went away")

    seen = []
    with pytest.raises(OSError, match="went away"), ReadAhead(items()) as ahead:
        seen.extend(ahead)
    assert seen == [1, 2]


def test_leaving_early_stops_the_thread_without_reading_the_rest():
    produced = []

    def items():
        for n in range(1_000_000):
            produced.append(n)
            yield n

    with ReadAhead(items()) as ahead:
        for item in ahead:
            if item == 3:
                break
    assert len(produced) <= 6  # the item taken, one waiting, and the one its thread was on when told to stop
    assert "importdash-read-ahead" not in {thread.name for thread in threading.enumerate()}


def test_validated_batches_cut_rows_into_batches_of_outcomes_with_their_last_row():
    rows = iter([source_row(2, "a@example.com"), source_row(3, "not an email"), source_row(4, "b@example.com")])

    batches = list(validated_batches(rows, 2))

    assert [(len(outcomes), last_row) for outcomes, last_row in batches] == [(2, 3), (1, 4)]
    assert [type(outcome) for outcomes, _ in batches for outcome in outcomes] == [Contact, Rejection, Contact]

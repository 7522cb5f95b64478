"""The ledger's count arithmetic, a pure function of what a write stores: no database needed."""

from importdash.models import ImportJob
from importdash.services.ledger import Tally, tally_settled, tally_staged


def test_staged_error_rows_are_processed_failed_rows_of_their_category():
    tally = tally_staged(["duplicate", "missing_value", "duplicate"], rows_read=10)

    assert tally == Tally(processed=3, failed=3, rows_read=10, errors={"duplicate": 2, "missing_value": 1})


def test_a_batch_without_errors_only_reads_rows():
    assert tally_staged([], rows_read=5) == Tally(rows_read=5)


def test_first_verdicts_process_their_records():
    tally = tally_settled([(False, True), (False, True), (False, False)], replaced_errors=0)

    assert tally == Tally(processed=3, succeeded=2, failed=1, errors={"other": 1})


def test_a_retried_success_moves_a_record_from_failed_to_succeeded_and_removes_its_error_row():
    tally = tally_settled([(True, True)], replaced_errors=1)

    assert tally == Tally(processed=0, succeeded=1, failed=-1, errors={"other": -1})


def test_a_retried_refusal_replaces_its_error_row_and_stays_failed():
    tally = tally_settled([(True, False)], replaced_errors=1)

    assert tally == Tally(errors={"other": 0})


def test_tallies_add_up_per_counter_and_per_category():
    total = tally_staged(["duplicate"], rows_read=4) + tally_settled([(False, False)], replaced_errors=0)

    assert total == Tally(processed=2, failed=2, rows_read=4, errors={"duplicate": 1, "other": 1})


def test_the_counts_always_add_up_whatever_mix_is_settled():
    # success + failed == processed for any sequence of first verdicts and retries of earlier failures.
    first = tally_settled([(False, ok) for ok in (True, False, False, False, True)], replaced_errors=0)
    retry = tally_settled([(True, True), (True, False), (True, True)], replaced_errors=3)
    total = first + retry

    assert total.succeeded + total.failed == total.processed == 5
    assert (total.succeeded, total.failed, total.errors["other"]) == (4, 1, 1)


def test_assignments_touch_only_the_counters_that_change():
    assignments = Tally(processed=2, succeeded=2, errors={"other": 0, "duplicate": 1}).assignments()

    assert set(assignments) == {"processed_count", "success_count", "duplicate_count"}
    assert str(assignments["duplicate_count"].compile()) == str((ImportJob.duplicate_count + 1).compile())

"""The health probe keeps its own deadline, and never runs more than one query at a time."""

import threading

from importdash.services.health import DatabaseProbe


def test_a_query_that_succeeds_means_the_database_answers():
    probe = DatabaseProbe(lambda: None, timeout=5)
    assert probe.database_answers() is True
    probe.close()


def test_a_query_that_fails_means_it_does_not():
    def refuse():
        raise ConnectionRefusedError("connection refused")

    probe = DatabaseProbe(refuse, timeout=5)
    assert probe.database_answers() is False
    probe.close()


def test_a_query_that_hangs_is_given_up_at_the_deadline_and_not_repeated_while_it_hangs():
    release, calls = threading.Event(), []

    def hang():
        calls.append(1)
        release.wait(10)

    probe = DatabaseProbe(hang, timeout=0.05)
    try:
        assert probe.database_answers() is False
        assert probe.database_answers() is False
        assert len(calls) == 1  # the second check waited on the query still in flight
    finally:
        release.set()
        probe.close()


def test_a_closed_probe_reports_the_database_unreachable():
    probe = DatabaseProbe(lambda: None, timeout=5)
    probe.close()
    assert probe.database_answers() is False

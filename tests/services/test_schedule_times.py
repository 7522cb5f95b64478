"""Due times of schedules: computed in the schedule's zone across DST changes, missed ones coalesced into one run.

Every moment is given (a fake clock in datetimes): nothing here reads the time or sleeps.
"""

from datetime import datetime

import pytest

from importdash.errors import ApiError
from importdash.models import Schedule
from importdash.services.schedules import check_cron, check_timezone, due_now, latest_due, next_due

pytestmark = pytest.mark.unit


def times(cron, timezone, after, count):
    found = []
    for _ in range(count):
        after = next_due(cron, timezone, after=after)
        found.append(after)
    return found


def test_a_daily_time_stays_at_its_wall_time_in_the_zone_across_both_dst_changes():
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    assert times("0 9 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12), 2) == [
        datetime(2026, 3, 29, 7),
        datetime(2026, 3, 30, 7),
    ]
    assert times("0 9 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12), 2) == [
        datetime(2026, 10, 25, 8),
        datetime(2026, 10, 26, 8),
    ]


def test_a_time_the_spring_change_skips_runs_once_at_the_first_moment_after_it():
    # 02:30 does not exist in Berlin on 29 March 2026 (02:00 became 03:00 CEST = 01:00 UTC).
    assert times("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12), 2) == [
        datetime(2026, 3, 29, 1),
        datetime(2026, 3, 30, 0, 30),
    ]


def test_a_fixed_time_the_autumn_change_repeats_runs_once():
    # 02:30 happens twice in Berlin on 25 October 2026 (00:30 and 01:30 UTC): the schedule runs at the first.
    assert times("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12), 2) == [
        datetime(2026, 10, 25, 0, 30),
        datetime(2026, 10, 26, 1, 30),
    ]


def test_every_half_hour_stays_every_half_hour_of_real_time_through_the_repeated_hour():
    found = times("*/30 * * * *", "Europe/Berlin", datetime(2026, 10, 24, 23, 50), 6)
    assert found == [datetime(2026, 10, 25, hour, minute) for hour in (0, 1, 2) for minute in (0, 30)]


def test_utc_and_other_zones():
    assert next_due("15 * * * *", "UTC", after=datetime(2026, 1, 1, 10, 15)) == datetime(2026, 1, 1, 11, 15)
    assert next_due("0 0 * * *", "America/New_York", after=datetime(2026, 1, 1)) == datetime(2026, 1, 1, 5)
    assert next_due("@daily", "Asia/Kolkata", after=datetime(2026, 1, 1)) == datetime(2026, 1, 1, 18, 30)


def test_latest_due_includes_the_moment_itself():
    assert latest_due("0 * * * *", "UTC", at=datetime(2026, 1, 1, 5)) == datetime(2026, 1, 1, 5)
    assert latest_due("0 * * * *", "UTC", at=datetime(2026, 1, 1, 5, 59, 59)) == datetime(2026, 1, 1, 5)


def schedule(next_run_at, cron="0 * * * *", paused=False):
    return Schedule(cron=cron, timezone="UTC", next_run_at=next_run_at, paused=paused)


def test_nothing_is_due_before_the_next_run_or_while_paused():
    assert due_now(schedule(datetime(2026, 1, 1, 6)), now=datetime(2026, 1, 1, 5, 59)) is None
    assert due_now(schedule(datetime(2026, 1, 1, 6), paused=True), now=datetime(2026, 1, 1, 7)) is None
    assert due_now(schedule(None), now=datetime(2026, 1, 1, 7)) is None


def test_a_due_run_on_time_runs_for_its_own_due_time():
    assert due_now(schedule(datetime(2026, 1, 1, 6)), now=datetime(2026, 1, 1, 6, 0, 1)) == datetime(2026, 1, 1, 6)


def test_runs_missed_while_no_server_ran_are_coalesced_into_one_for_the_latest():
    # Down from 05:30 to 09:10: the 06:00, 07:00, 08:00 and 09:00 runs were missed; one runs, for 09:00.
    missed = schedule(datetime(2026, 1, 1, 6))
    assert due_now(missed, now=datetime(2026, 1, 1, 9, 10)) == datetime(2026, 1, 1, 9)
    # A year away from a minutely schedule costs no more than one step (no walk over every missed minute).
    minutely = schedule(datetime(2025, 1, 1), cron="* * * * *")
    assert due_now(minutely, now=datetime(2026, 1, 1, 0, 0, 30)) == datetime(2026, 1, 1)


@pytest.mark.parametrize("cron", ["0 9 * * *", "*/5 * * * 1-5", "@hourly", "  0   6 * *  MON "])
def test_cron_expressions_of_five_fields_or_a_nickname_are_taken(cron):
    assert check_cron(cron) == " ".join(cron.split())


@pytest.mark.parametrize("cron", ["", "61 * * * *", "* * * *", "0 0 * * * *", "@reboot", "@sometimes", "x" * 300])
def test_other_cron_expressions_are_a_400_saying_what_cron_is(cron):
    with pytest.raises(ApiError) as refused:
        check_cron(cron)
    assert refused.value.status_code == 400 and "five fields" in refused.value.message


@pytest.mark.parametrize("timezone", ["", "Mars/Olympus", "../../etc/passwd", "UTC\x00", 5, None])
def test_unknown_time_zones_are_a_400(timezone):
    with pytest.raises(ApiError) as refused:
        check_timezone(timezone)
    assert refused.value.status_code == 400 and "IANA" in refused.value.message

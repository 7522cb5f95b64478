"""The runner's slots: a job runs only in a free slot, never waits in the executor, and a freed slot says so."""

import threading

import pytest
from fakes import WAIT, GatedRunner


@pytest.fixture
def runner():
    runner = GatedRunner(max_workers=2)
    yield runner
    runner.close()


def test_a_job_runs_only_in_a_free_slot_and_never_waits_in_the_executor(runner):
    assert runner.submit(1) is not None and runner.submit(2) is not None
    assert runner.arrived.acquire(timeout=WAIT) and runner.arrived.acquire(timeout=WAIT)

    assert runner.submit(3) is None  # it waits in the database, where a free slot anywhere claims it
    assert runner.free_slots() == 0
    runner.finish(1)

    assert runner.free_slots() == 1
    assert sorted(runner.started) == [1, 2]  # job 3 was never queued, so a free slot does not run it by itself


def test_a_job_already_running_here_is_not_run_twice(runner):
    first = runner.submit(7)
    assert runner.arrived.acquire(timeout=WAIT)

    assert runner.submit(7) is first
    assert runner.free_slots() == 1
    runner.finish(7)
    assert runner.started == [7]


def test_reserved_slots_are_kept_for_the_claim_that_reserved_them(runner):
    assert runner.reserve(5) == 2  # only as many as are free
    assert runner.submit(1) is None  # every free slot is promised to the claim

    assert runner.submit(2, reserved=True) is not None
    runner.unreserve(1)  # the claim found one job for its two slots

    assert runner.free_slots() == 1
    assert runner.submit(3) is not None
    assert runner.free_slots() == 0


def test_a_reserved_slot_for_a_job_running_here_already_is_free_again(runner):
    running = runner.submit(4)
    assert runner.reserve(1) == 1

    assert runner.submit(4, reserved=True) is running
    assert runner.free_slots() == 1


def test_a_freed_slot_is_announced_on_the_jobs_thread_before_its_future_is_done(runner):
    announced = []
    runner.when_slot_frees(lambda: announced.append((threading.current_thread().name, runner.free_slots())))
    future = runner.submit(1)
    assert runner.arrived.acquire(timeout=WAIT)

    runner.finish(1)

    assert future.done()
    [(thread_name, free)] = announced
    assert thread_name.startswith("importdash-job") and free == 2


def test_a_slot_claimed_from_the_announcement_is_running_when_the_first_run_is_waited_for(runner):
    runner.when_slot_frees(lambda: runner.submit(2) if 2 not in runner.started else None)
    runner.submit(1)

    runner.finish(1)

    assert runner.is_running(2)


def test_a_job_whose_run_ended_runs_again_while_that_run_still_announces_its_freed_slot(runner):
    # The CLI's retry reopens a job the moment its first run has committed its end; that run's thread may still
    # be claiming for the slot it freed. The retry must get a run of its own, not the ending one's Future.
    announcing, go_on = threading.Event(), threading.Event()
    runner.when_slot_frees(lambda: (announcing.set(), go_on.wait(WAIT)) if runner.started == [1] else None)
    first = runner.submit(1)
    runner.gate(1).set()
    assert announcing.wait(WAIT)
    assert not runner.is_running(1)  # its run ended: what it committed is what a reader sees

    runner.gate(1).clear()
    second = runner.submit(1)
    go_on.set()

    assert second is not None and second is not first
    assert runner.arrived.acquire(timeout=WAIT) and runner.arrived.acquire(timeout=WAIT)
    assert runner.is_running(1) and runner.started == [1, 1]
    first.result(timeout=WAIT)
    assert runner.is_running(1)  # the first run's end does not forget the second
    runner.finish(1)
    assert not runner.is_running(1) and runner.active_jobs() == []


def test_a_runner_shutting_down_has_no_free_slot_and_takes_no_job(runner):
    runner.shutdown(wait=False)

    assert runner.free_slots() == 0
    assert runner.reserve(1) == 0
    assert runner.submit(1) is None


def test_slots_reserved_from_many_threads_at_once_never_exceed_the_free_ones():
    runner = GatedRunner(max_workers=3)
    start = threading.Barrier(12)
    granted = []

    def reserve():
        start.wait()
        granted.append(runner.reserve(1))

    threads = [threading.Thread(target=reserve) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert sorted(granted) == [0] * 9 + [1] * 3
    assert runner.free_slots() == 0
    runner.shutdown()


def test_giving_reserved_slots_back_says_whether_a_job_was_refused_for_want_of_them(runner):
    runner.reserve(2)
    assert runner.submit(5) is None
    assert runner.unreserve(2) is True  # the claim looks again: job 5 waits in the database

    runner.submit(1)
    runner.submit(2)
    assert runner.submit(6) is None  # refused because the runner is full, with no reservation
    assert runner.reserve(1) == 0
    assert runner.unreserve(0) is False

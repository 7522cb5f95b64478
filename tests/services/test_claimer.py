"""The claimer: claims only for free slots, starts what it claimed, hands back what it cannot run, sweeps uploads
on its own clock, and outlives database faults. A fake queue stands in for the database, a fake clock for time."""

import logging
import threading

import pytest
from fakes import WAIT, FakeClock, GatedRunner

from importdash.services.claimer import JobClaimer


class FakeQueue:
    """Jobs waiting in 'the database', handed out oldest first to whoever claims them."""

    def __init__(self, waiting=()):
        self.waiting = list(waiting)
        self.lock = threading.Lock()
        self.claims = []  # (owner, limit) of every claim
        self.released = []
        self.upload_sweeps = 0
        self.fail = None  # an exception the next calls raise

    def claim(self, owner, limit):
        with self.lock:
            if self.fail:
                raise self.fail
            self.claims.append((owner, limit))
            taken, self.waiting = self.waiting[:limit], self.waiting[limit:]
            return taken

    def release(self, owner, job_ids):
        with self.lock:
            self.released.extend(job_ids)
            self.waiting = sorted(self.waiting + job_ids)

    def remove_ended_uploads(self):
        if self.fail:
            raise self.fail
        self.upload_sweeps += 1
        return 0


@pytest.fixture
def runner():
    runner = GatedRunner(max_workers=3)
    yield runner
    runner.close()


@pytest.fixture
def clock():
    return FakeClock()


def make_claimer(runner, queue, clock, **options):
    return JobClaimer(runner, queue, **({"poll_seconds": 0.5, "upload_sweep_seconds": 60, "clock": clock} | options))


def test_a_claim_asks_for_as_many_jobs_as_there_are_free_slots_and_starts_them(runner, clock):
    queue = FakeQueue(waiting=[11, 12, 13, 14, 15])
    runner.submit(1)  # one of three slots is busy
    claimer = make_claimer(runner, queue, clock)

    assert claimer.claim() == [11, 12]

    assert queue.claims == [(runner.owner, 2)]
    assert sorted(runner.active_jobs()) == [1, 11, 12]
    assert runner.free_slots() == 0 and queue.waiting == [13, 14, 15]


def test_a_process_without_a_free_slot_does_not_ask_the_database_at_all(runner, clock):
    queue = FakeQueue(waiting=[11])
    for job_id in (1, 2, 3):
        runner.submit(job_id)
    claimer = make_claimer(runner, queue, clock)

    assert claimer.claim() == []
    assert queue.claims == []


def test_slots_a_claim_found_no_job_for_are_free_again(runner, clock):
    queue = FakeQueue(waiting=[11])
    claimer = make_claimer(runner, queue, clock)

    assert claimer.claim() == [11]
    assert runner.free_slots() == 2


def test_a_freed_slot_claims_the_next_waiting_job_before_the_finished_run_is_waited_out(runner, clock):
    queue = FakeQueue(waiting=[11, 12, 13, 14])
    claimer = make_claimer(runner, queue, clock)
    assert claimer.claim() == [11, 12, 13]

    runner.finish(12)

    assert queue.claims[-1] == (runner.owner, 1)
    assert runner.is_running(14) and queue.waiting == []


def test_jobs_claimed_as_the_runner_stops_are_handed_back_at_once(runner, clock):
    queue = FakeQueue(waiting=[11, 12])
    claimer = make_claimer(runner, queue, clock)
    original_claim = queue.claim

    def claim_then_stop(owner, limit):
        taken = original_claim(owner, limit)
        runner.shutdown(wait=False)  # SIGTERM arrives while the claim is under way
        return taken

    queue.claim = claim_then_stop

    assert claimer.claim() == []
    assert queue.released == [11, 12] and queue.waiting == [11, 12]


def test_a_stopped_claimer_claims_nothing(runner, clock):
    queue = FakeQueue(waiting=[11])
    claimer = make_claimer(runner, queue, clock)
    claimer.stop()

    assert claimer.claim() == []
    assert queue.claims == []


def test_uploads_are_swept_at_the_first_round_then_every_sweep_interval_however_often_it_polls(runner, clock):
    queue = FakeQueue()
    claimer = make_claimer(runner, queue, clock, upload_sweep_seconds=60)

    claimer.tick()
    for _ in range(119):  # a minute of 0.5 s polls, less one
        clock.advance(0.5)
        claimer.tick()
    assert queue.upload_sweeps == 1
    clock.advance(0.5)
    claimer.tick()

    assert queue.upload_sweeps == 2
    assert len(queue.claims) == 121  # one (cheap) claim per poll


def test_a_database_fault_is_logged_once_and_the_next_round_tries_again(runner, clock, caplog):
    queue = FakeQueue(waiting=[11])
    claimer = make_claimer(runner, queue, clock)
    queue.fail = ConnectionError("the database went away")

    with caplog.at_level(logging.INFO, logger="importdash.services.claimer"):
        claimer._safe_tick()
        claimer._safe_tick()
        queue.fail = None
        claimer._safe_tick()

    messages = [record.getMessage() for record in caplog.records]
    assert sum("claiming imports failed" in message for message in messages) == 1
    assert any("works again" in message for message in messages)
    assert runner.is_running(11)


def test_the_loop_claims_at_start_and_on_a_wake_and_ends_when_stopped(runner, caplog):
    queue = FakeQueue(waiting=[11])
    claimer = JobClaimer(runner, queue, poll_seconds=WAIT, upload_sweep_seconds=60)  # a poll never comes in time

    claimer.start()
    assert runner.is_running(11)
    queue.waiting.append(12)
    claimer.wake()
    assert runner.arrived.acquire(timeout=WAIT) and runner.arrived.acquire(timeout=WAIT)
    assert runner.is_running(12)

    with caplog.at_level(logging.INFO, logger="importdash.services.claimer"):
        claimer.stop(wait=True)
    assert not claimer._thread.is_alive()
    assert "job claimer stopped" in caplog.text


def test_a_job_posted_while_a_claim_held_the_free_slots_is_taken_by_that_claims_second_look(runner, clock):
    queue = FakeQueue()
    claimer = make_claimer(runner, queue, clock)
    original_claim = queue.claim

    def claim_while_a_request_posts(owner, limit):
        if not queue.claims:  # the first look: a request posts job 21 meanwhile, and finds every slot reserved
            assert runner.submit(21) is None
            queue.waiting.append(21)  # it waits in the database
        return original_claim(owner, limit)

    queue.claim = claim_while_a_request_posts

    assert claimer.claim() == [21]
    assert len(queue.claims) == 2 and runner.is_running(21)


def test_a_second_look_for_a_refused_job_waits_for_a_free_slot(runner, clock):
    queue = FakeQueue(waiting=[11])
    for job_id in (1, 2):
        runner.submit(job_id)  # one slot of three is free
    claimer = make_claimer(runner, queue, clock)
    original_claim = queue.claim

    def claim_while_a_request_posts(owner, limit):
        if not queue.claims:
            assert runner.submit(21) is None  # the free slot is reserved for this claim
            queue.waiting.append(21)
        return original_claim(owner, limit)

    queue.claim = claim_while_a_request_posts

    assert claimer.claim() == [11]  # the older job takes the slot; no slot is left for a second look
    assert len(queue.claims) == 1 and queue.waiting == [21]
    runner.finish(1)
    assert runner.is_running(21)  # the next slot to free takes it

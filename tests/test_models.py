"""The job's states and the actions between them, defined once in models.py."""

from importdash.models import TRANSITIONS, JobAction, JobStatus, RecordStatus, statuses_allowing


def test_every_action_has_its_transition():
    assert set(TRANSITIONS) == set(JobAction)


def test_only_runnable_jobs_run_or_fail_any_unfinished_one_is_cancelled_and_only_completed_ones_are_retried():
    assert JobStatus.unfinished() == {JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.PAUSED}
    assert JobStatus.runnable() == {JobStatus.PENDING, JobStatus.PROCESSING}
    for action in (JobAction.RUN, JobAction.FAIL):
        assert TRANSITIONS[action].sources == JobStatus.runnable()
    assert TRANSITIONS[JobAction.CANCEL].sources == JobStatus.unfinished()
    assert statuses_allowing(JobAction.RETRY) == ["completed"]
    assert TRANSITIONS[JobAction.RETRY].target is JobStatus.PENDING


def test_terminal_actions_lead_to_terminal_statuses_and_nothing_else_does():
    terminal = {JobAction.COMPLETE, JobAction.FAIL, JobAction.CANCEL}
    for action, transition in TRANSITIONS.items():
        assert transition.target.is_terminal == (action in terminal), action


def test_a_terminal_job_can_only_be_retried_or_resumed_and_then_waits_for_a_runner_again():
    for status in JobStatus:
        if status.is_terminal:
            leaving = {action for action, transition in TRANSITIONS.items() if status in transition.sources}
            assert leaving == ({JobAction.RETRY} if status is JobStatus.COMPLETED else {JobAction.RESUME}), status
    assert TRANSITIONS[JobAction.RESUME].target is JobStatus.PENDING


def test_a_waiting_or_running_job_is_paused_and_only_a_paused_one_is_unpaused_to_wait_again():
    assert TRANSITIONS[JobAction.PAUSE].sources == {JobStatus.PENDING, JobStatus.PROCESSING}
    assert TRANSITIONS[JobAction.PAUSE].target is JobStatus.PAUSED
    assert TRANSITIONS[JobAction.UNPAUSE].sources == {JobStatus.PAUSED}
    assert TRANSITIONS[JobAction.UNPAUSE].target is JobStatus.PENDING
    # Paused is unfinished, never terminal: clear-records, delete and purge wait for it, and it is never run.
    assert not JobStatus.PAUSED.is_terminal
    assert JobStatus.PAUSED not in TRANSITIONS[JobAction.RUN].sources
    leaving = {action for action, transition in TRANSITIONS.items() if JobStatus.PAUSED in transition.sources}
    assert leaving == {JobAction.UNPAUSE, JobAction.CANCEL}


def test_statuses_are_stored_as_their_values():
    assert statuses_allowing(JobAction.CANCEL) == ["paused", "pending", "processing"]
    assert statuses_allowing(JobAction.PAUSE) == ["pending", "processing"]
    assert RecordStatus.undelivered() == ["pending", "in_flight"]

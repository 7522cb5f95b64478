"""Notifications when an import ends: recorded with the ending, claimed once, sent as a signed webhook to a real
loopback receiver and as an email to a real local SMTP server (aiosmtpd), retried, and given up with a reason."""

import hashlib
import hmac
import json
import threading
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from servers import free_port
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from webhook_receiver import Receiver

from importdash import create_app
from importdash.extensions import db
from importdash.models import Ending, ImportJob, ImportTemplate, NotificationDelivery, utcnow
from importdash.services import notifications
from importdash.services.dialects import database_now
from importdash.services.notifications import (
    NotificationDefaults,
    Notifier,
    NotifierSettings,
    backoff_seconds,
    claim_due,
    record_notifications,
    shown_url,
    sign,
)

SECRET = "whsec_test"


@pytest.fixture
def app_config():
    return {"NOTIFY_EMAIL_TO": "ops@example.com"}


# Pure functions.


@pytest.mark.unit
def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_with_the_secret():
    # A known vector, computed apart: printf '%s' '1700000000.{"event":"import.finished"}' |
    # openssl dgst -sha256 -hmac whsec_test
    expected = "sha256=7b5281464775010734497efd69e90cb5cbb8dd95d5821236e3efe485897c1c13"

    assert sign(SECRET, "1700000000", b'{"event":"import.finished"}') == expected
    assert sign("another", "1700000000", b'{"event":"import.finished"}') != expected
    assert sign(SECRET, "1700000001", b'{"event":"import.finished"}') != expected


@pytest.mark.unit
def test_backoff_doubles_from_the_base_up_to_the_cap_with_full_jitter():
    def waits(rand):
        return [backoff_seconds(attempt, base=10, cap=60, rand=rand) for attempt in range(1, 6)]

    assert waits(lambda: 1.0) == [10, 20, 40, 60, 60]
    assert waits(lambda: 0.5) == [5, 10, 20, 30, 30]
    assert waits(lambda: 0.0) == [0, 0, 0, 0, 0]


@pytest.mark.unit
def test_a_shown_url_has_no_credentials_query_or_fragment():
    assert shown_url("https://user:pa55@hooks.example.com:8443/in/abc?token=s3cret#x") == (
        "https://hooks.example.com:8443/in/abc"
    )
    assert shown_url("http://[::1]:9000/hook") == "http://[::1]:9000/hook"


@pytest.mark.unit
def test_endings_are_read_from_text_or_a_list_and_an_unknown_one_is_named():
    assert notifications.parse_endings("failed, cancelled,") == {Ending.FAILED, Ending.CANCELLED}
    assert notifications.parse_endings(["completed"]) == {Ending.COMPLETED}
    with pytest.raises(ValueError, match="'finished' is not an ending"):
        notifications.parse_endings("finished")


@pytest.mark.unit
def test_a_wrong_ending_in_notify_on_stops_the_app_from_starting(tmp_path):
    with pytest.raises(ValueError, match="'finished' is not an ending"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "NOTIFY_ON": "failed,finished"})


@pytest.mark.unit
def test_the_outcome_and_ending_come_from_the_counts():
    def job(**counts):
        fields = dict(status="completed", success_count=3, failed_count=0, duplicate_count=0)
        fields |= dict(missing_value_count=0, invalid_format_count=0, other_count=0)
        return ImportJob(**(fields | counts))

    assert notifications.outcome(job()) == "completed"
    assert notifications.outcome(job(duplicate_count=1)) == "completed"  # rows that never became records
    assert notifications.outcome(job(failed_count=1)) == "completed_with_failures"
    assert notifications.outcome(job(success_count=0, failed_count=2)) == "nothing_succeeded"
    assert notifications.ending(job(success_count=0, failed_count=2)) is Ending.COMPLETED_WITH_FAILURES
    assert notifications.ending(job(status="cancelled")) is Ending.CANCELLED


# Recording.


def defaults(webhook_url=None, email_to=(), notify_on=tuple(Ending)):
    return NotificationDefaults(webhook_url=webhook_url, email_to=tuple(email_to), notify_on=frozenset(notify_on))


def deliveries(job_id):
    db.session.expire_all()
    return db.session.scalars(
        select(NotificationDelivery).where(NotificationDelivery.job_id == job_id).order_by(NotificationDelivery.id)
    ).all()


def test_an_import_that_ends_records_its_notifications_with_its_ending(app, client, wait_for_job):
    app.config.update(NOTIFY_WEBHOOK_URL="http://127.0.0.1:9/hook?token=s3cret")

    job_id = client.post("/api/import").get_json()["job"]["id"]
    job = wait_for_job(job_id)

    assert job["status"] == "completed"
    rows = deliveries(job_id)
    assert [(row.channel, row.target, row.status, row.ending) for row in rows] == [
        ("webhook", "http://127.0.0.1:9/hook", "pending", "completed_with_failures"),  # the sample has bad rows
        ("email", "ops@example.com", "pending", "completed_with_failures"),
    ]
    assert rows[0].address == "http://127.0.0.1:9/hook?token=s3cret"  # sent in full, never shown
    listed = client.get(f"/api/import/{job_id}/notifications").get_json()["notifications"]
    assert [item["target"] for item in listed] == ["http://127.0.0.1:9/hook", "ops@example.com"]
    assert "address" not in listed[0] and "s3cret" not in json.dumps(listed)


def test_a_cancelled_import_notifies_too(app, client, make_job):
    job_id = make_job(status="pending").id

    assert client.post(f"/api/import/{job_id}/cancel").status_code == 200

    assert [(row.channel, row.ending) for row in deliveries(job_id)] == [("email", "cancelled")]


def test_a_templates_settings_win_over_the_defaults_each_on_its_own(app, make_job):
    template = ImportTemplate(
        name="CRM", duplicate_policy="skip", notify_webhook_url="https://crm.example.com/hook", notify_on=["failed"]
    )
    db.session.add(template)
    db.session.commit()
    failed = make_job(status="failed", template_id=template.id).id
    completed = make_job(status="completed", template_id=template.id).id
    plain = make_job(status="completed").id
    settings = defaults(webhook_url="https://global.example.com/hook", email_to=["ops@example.com"])

    counts = [record_notifications(db.session, job_id, defaults=settings) for job_id in (failed, completed, plain)]
    db.session.commit()

    assert counts == [2, 0, 2]  # the template notifies on failures only; its addresses are the global ones
    assert [row.target for row in deliveries(failed)] == ["https://crm.example.com/hook", "ops@example.com"]
    assert [row.target for row in deliveries(plain)] == ["https://global.example.com/hook", "ops@example.com"]


def test_endings_left_out_of_notify_on_notify_nobody(app, make_job):
    job_id = make_job(status="completed").id

    assert record_notifications(db.session, job_id, defaults=defaults("http://x.example/h", notify_on=[])) == 0


# Claiming.


def add_deliveries(job_id, count, **fields):
    rows = [
        NotificationDelivery(
            job_id=job_id, ending="completed", channel="webhook", target="t", address="http://127.0.0.1:9/", **fields
        )
        for _ in range(count)
    ]
    db.session.add_all(rows)
    db.session.commit()
    return [row.id for row in rows]


def test_two_claimers_at_once_never_take_the_same_notification(app, make_job):
    job_id = make_job(status="completed").id
    ids = add_deliveries(job_id, 40, next_attempt_at=utcnow())
    db.session.execute(update(NotificationDelivery).values(next_attempt_at=database_now()))
    db.session.commit()
    claimed = [[], []]
    start = threading.Barrier(2)
    engine = db.engine

    def claim(slot):
        with Session(engine) as session:
            start.wait()
            while batch := claim_due(session, limit=3, claim_seconds=60):
                claimed[slot] += batch

    threads = [threading.Thread(target=claim, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(claimed[0] + claimed[1]) == ids  # each once, none left out
    assert not set(claimed[0]) & set(claimed[1])
    assert {row.attempts for row in deliveries(job_id)} == {1}
    assert claim_due(db.session, limit=10, claim_seconds=60) == []  # claimed for 60 s: not due again yet


def test_a_notification_whose_sender_died_is_claimed_again_once_its_claim_runs_out(app, make_job):
    job_id = make_job(status="completed").id
    record_notifications(db.session, job_id, defaults=defaults("http://127.0.0.1:9/hook"))
    db.session.commit()

    (taken,) = claim_due(db.session, limit=5, claim_seconds=0)  # its process dies here, before any answer
    taken_again = claim_due(db.session, limit=5, claim_seconds=60)

    assert taken_again == [taken]
    (row,) = deliveries(job_id)
    assert (row.status, row.attempts) == ("pending", 2)


# Sending.


@pytest.fixture
def receiver():
    started = []

    def start(statuses=(200,)):
        started.append(Receiver(statuses))
        return started[-1]

    yield start
    for server in started:
        server.close()


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=default_policy)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def notifier(app, *, now=1_700_000_000.0, **overrides):
    settings = NotifierSettings.from_config(
        app.config
        | {
            "NOTIFY_WEBHOOK_SECRET": SECRET,
            "PUBLIC_URL": "https://imports.example.com/",
            "NOTIFY_MAX_ATTEMPTS": 2,
            "NOTIFY_TIMEOUT_SECONDS": 5,
        }
        | overrides
    )
    return Notifier(app, settings=settings, clock=lambda: now, rand=lambda: 0.0)  # no wait between tries


def ended_job(make_job, **fields):
    values = dict(status="completed", source="crm.csv", total_records=11, processed_count=8, success_count=7)
    values |= dict(failed_count=1, cancelled_count=0, duplicate_count=2, invalid_format_count=1)
    return make_job(**(values | fields))


def test_a_webhook_is_posted_signed_with_its_stable_id_and_the_summary(app, make_job, receiver):
    server = receiver()
    job = ended_job(make_job)
    record_notifications(db.session, job.id, defaults=defaults(webhook_url=server.url))
    db.session.commit()
    sender = notifier(app)

    assert sender.send_due() == 1
    sender.close()

    headers, body = server.requests[0]
    timestamp = headers["X-Importdash-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert timestamp == "1700000000"
    assert hmac.compare_digest(headers["X-Importdash-Signature"], expected)
    (row,) = deliveries(job.id)
    assert headers["X-Importdash-Id"] == row.key
    sent = json.loads(body)
    assert sent["event"] == "import.finished"
    assert sent["job"]["id"] == job.id and sent["job"]["outcome"] == "completed_with_failures"
    assert sent["job"]["error_counts"] == {"duplicate": 2, "missing_value": 0, "invalid_format": 1, "other": 0}
    assert sent["links"] == {
        "job": f"https://imports.example.com/imports/{job.id}",
        "errors_csv": f"https://imports.example.com/api/import/{job.id}/errors.csv",
    }
    assert (row.status, row.attempts, row.response_status, row.last_error) == ("sent", 1, 200, None)
    assert row.sent_at is not None


def test_a_failing_webhook_is_retried_then_given_up_with_a_readable_reason(app, make_job, receiver):
    server = receiver(statuses=(503,))
    job = ended_job(make_job)
    record_notifications(db.session, job.id, defaults=defaults(webhook_url=server.url))
    db.session.commit()
    sender = notifier(app)

    sender.send_due()
    (row,) = deliveries(job.id)
    assert (row.status, row.attempts) == ("pending", 1)  # due again at once: rand() is 0
    sender.send_due()
    sender.close()

    (row,) = deliveries(job.id)
    assert (row.status, row.attempts, row.response_status) == ("failed", 2, 503)
    assert row.last_error == "The webhook answered 503 Service Unavailable: receiver is down for maintenance"
    assert len(server.requests) == 2
    assert server.requests[0][0]["X-Importdash-Id"] == server.requests[1][0]["X-Importdash-Id"] == row.key


def test_a_webhook_that_cannot_be_reached_fails_without_showing_its_url(app, make_job):
    job = ended_job(make_job)
    url = f"http://user:pw@127.0.0.1:{free_port()}/hook?token=s3cret"
    record_notifications(db.session, job.id, defaults=defaults(webhook_url=url))
    db.session.commit()
    sender = notifier(app, NOTIFY_MAX_ATTEMPTS=1)

    sender.send_due()
    sender.close()

    (row,) = deliveries(job.id)
    assert row.status == "failed"
    assert row.last_error == "The webhook could not be reached (connection refused)."
    assert "s3cret" not in json.dumps(row.to_dict()) and "pw" not in row.target


def test_without_a_secret_a_webhook_fails_at_once_saying_which_setting_is_missing(app, make_job, receiver):
    server = receiver()
    job = ended_job(make_job)
    record_notifications(db.session, job.id, defaults=defaults(webhook_url=server.url))
    db.session.commit()
    sender = notifier(app, NOTIFY_WEBHOOK_SECRET=None, NOTIFY_MAX_ATTEMPTS=5)

    sender.send_due()
    sender.close()

    (row,) = deliveries(job.id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "IMPORTDASH_NOTIFY_WEBHOOK_SECRET" in row.last_error
    assert server.requests == []


def test_an_email_goes_through_smtp_with_the_counts_and_links(app, make_job, smtp_server):
    job = ended_job(make_job)
    record_notifications(db.session, job.id, defaults=defaults(email_to=["ops@example.com"]))
    db.session.commit()
    sender = notifier(app, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port, SMTP_FROM="imports@example.com")

    assert sender.send_due() == 1
    sender.close()

    ((recipients, message),) = smtp_server.messages
    assert recipients == ["ops@example.com"]
    assert message["Subject"] == f"Import #{job.id} completed with failures: crm.csv"
    assert message["From"] == "imports@example.com"
    text = message.get_content()
    for line in [
        "Succeeded: 7",
        "Failed: 1",
        "Cancelled: 0",
        "Duplicate: 2",
        "Missing value: 0",
        "Invalid format: 1",
        "Other: 0",
        f"https://imports.example.com/imports/{job.id}",
        f"https://imports.example.com/api/import/{job.id}/errors.csv",
    ]:
        assert line in text
    (row,) = deliveries(job.id)
    assert (row.status, row.response_status) == ("sent", 250)
    assert message["X-Importdash-Id"] == row.key


def test_an_email_to_a_mail_server_that_is_down_ends_failed_with_the_reason(app, make_job):
    job = ended_job(make_job, status="failed", error="The file to import is gone (deleted or moved); import it again.")
    record_notifications(db.session, job.id, defaults=defaults(email_to=["ops@example.com"]))
    db.session.commit()
    sender = notifier(app, SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), NOTIFY_MAX_ATTEMPTS=1)

    sender.send_due()
    sender.close()

    (row,) = deliveries(job.id)
    assert (row.status, row.ending) == ("failed", "failed")
    assert row.last_error == "The mail server could not be reached (connection refused)."


# Resending.


def test_resend_queues_the_failed_ones_again_and_409_when_none_failed(app, client, make_job):
    job_id = make_job(status="completed").id
    add_deliveries(job_id, 1, status="failed", attempts=8, last_error="The webhook answered 500.")
    add_deliveries(job_id, 1, status="sent", attempts=1)

    answer = client.post(f"/api/import/{job_id}/notifications/resend")

    assert answer.status_code == 202 and answer.get_json()["resent"] == 1
    assert [(row.status, row.attempts) for row in deliveries(job_id)] == [("pending", 0), ("sent", 1)]
    again = client.post(f"/api/import/{job_id}/notifications/resend")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    assert client.get("/api/import/99999/notifications").status_code == 404

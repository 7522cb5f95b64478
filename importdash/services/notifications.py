"""Notifications when an import ends: a signed webhook and an email summary, each one recorded in
notification_deliveries in the transaction that ends the job, then sent in the background by whichever serving
process claims it, retried with backoff and given up after a number of attempts with the reason.

Which webhook and addresses: the job's template's when it has them, else the global NOTIFY_* settings.
"""

import hashlib
import hmac
import json
import logging
import random
import smtplib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from ..errors import Conflict
from ..extensions import db
from ..models import (
    DeliveryChannel,
    DeliveryStatus,
    Ending,
    ImportJob,
    ImportTemplate,
    JobRun,
    NotificationDelivery,
    utcnow,
)
from .dialects import database_now, lease_expiry

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

EVENT = "import.finished"
_MESSAGE_LENGTH = 200  # longest part of a receiver's answer kept in last_error
_CLAIM_BATCH = 20  # notifications one round claims at once; a round claims again while it gets this many


# What an ending is.


def outcome(job: ImportJob) -> str:
    """How the job ended in one word: completed, completed_with_failures, nothing_succeeded (a completed job's
    JobOutcome, as the job page tells it), or its status: failed or cancelled."""
    ended = job.outcome
    return job.status if ended is None else ended.value


def ending(job: ImportJob) -> Ending:
    """The ending notifications are chosen by (a completed job where nothing succeeded had failures too)."""
    word = outcome(job)
    return Ending.COMPLETED_WITH_FAILURES if word == "nothing_succeeded" else Ending(word)


def parse_endings(value: str | Iterable[str]) -> frozenset[Ending]:
    """Endings from a comma-separated text or a list; ValueError naming the first unknown one."""
    words = value.split(",") if isinstance(value, str) else value
    endings = set()
    for word in words:
        if not isinstance(word, str):
            raise ValueError(f"an ending is a word, one of {', '.join(item.value for item in Ending)}")
        if word.strip():
            try:
                endings.add(Ending(word.strip()))
            except ValueError:
                allowed = ", ".join(item.value for item in Ending)
                raise ValueError(f"{word.strip()!r} is not an ending; endings are {allowed}") from None
    return frozenset(endings)


def parse_addresses(value: str | Iterable[str]) -> list[str]:
    """Email addresses from a comma-separated text (or a list, as a JSON environment value reads)."""
    addresses = value.split(",") if isinstance(value, str) else value
    return [address.strip() for address in addresses if isinstance(address, str) and address.strip()]


def shown_url(url: str) -> str:
    """A URL as it may be shown and logged: without credentials, query or fragment (any of them may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class NotificationDefaults:
    """The global notification settings, for jobs whose template does not name its own."""

    webhook_url: str | None
    email_to: tuple[str, ...]
    notify_on: frozenset[Ending]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "NotificationDefaults":
        return cls(
            webhook_url=config["NOTIFY_WEBHOOK_URL"] or None,
            email_to=tuple(parse_addresses(config["NOTIFY_EMAIL_TO"] or "")),
            notify_on=parse_endings(config["NOTIFY_ON"]),
        )


def record_notifications(session: Session, job_id: int, *, defaults: NotificationDefaults) -> int:
    """Add the deliveries of the job's ending to the session, uncommitted, so that they commit with the ending;
    return how many. The job's template's webhook, addresses and endings win over the defaults, each on its own."""
    job = session.execute(select(ImportJob).where(ImportJob.id == job_id).execution_options(populate_existing=True))
    job = job.scalar_one()
    template = session.get(ImportTemplate, job.template_id) if job.template_id is not None else None
    webhook_url = (template and template.notify_webhook_url) or defaults.webhook_url
    addresses = (template and template.notify_email) or defaults.email_to
    notify_on = parse_endings(template.notify_on) if template and template.notify_on else defaults.notify_on
    this_ending = ending(job)
    if this_ending not in notify_on:
        return 0
    deliveries = []
    if webhook_url:
        deliveries.append((DeliveryChannel.WEBHOOK, shown_url(webhook_url), webhook_url))
    deliveries += [(DeliveryChannel.EMAIL, address, address) for address in addresses]
    for channel, target, address in deliveries:
        session.add(
            NotificationDelivery(
                job_id=job_id,
                ending=this_ending.value,
                channel=channel.value,
                target=target,
                address=address,
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=database_now(),  # due at once, on the clock claims are judged by
            )
        )
    return len(deliveries)


# Reading and resending.


def list_deliveries(session: Session, job_id: int) -> list[NotificationDelivery]:
    """The job's notifications, oldest first."""
    query = select(NotificationDelivery).where(NotificationDelivery.job_id == job_id).order_by(NotificationDelivery.id)
    return list(session.scalars(query))


def resend_failed(session: Session, job_id: int) -> int:
    """Queue the job's failed notifications to be sent again now, with their attempts counted afresh; commit and
    return how many (409 when none failed)."""
    resent = session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.job_id == job_id, NotificationDelivery.status == DeliveryStatus.FAILED.value)
        .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=database_now())
    ).rowcount
    session.commit()
    if not resent:
        raise Conflict(f"Import #{job_id} has no failed notifications to send again.")
    return resent


# Claiming.


def claim_due(session: Session, *, limit: int, claim_seconds: float) -> list[int]:
    """Take up to limit notifications whose next attempt is due, counting the attempt and making them this
    caller's for claim_seconds; commit and return their ids. Two callers at once never get the same one.

    As claim_jobs does for jobs: FOR UPDATE SKIP LOCKED on PostgreSQL, SQLite's single writer elsewhere, and
    the condition checked again by the UPDATE.
    """
    due = (NotificationDelivery.status == DeliveryStatus.PENDING.value) & (
        NotificationDelivery.next_attempt_at <= database_now()
    )
    waiting = session.scalar(select(NotificationDelivery.id).where(due).limit(1))
    session.commit()
    if waiting is None:
        return []
    picked = (
        select(NotificationDelivery.id)
        .where(due)
        .order_by(NotificationDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    claimed = session.scalars(
        update(NotificationDelivery)
        .where(NotificationDelivery.id.in_(select(picked.c.id)), due)
        .values(attempts=NotificationDelivery.attempts + 1, next_attempt_at=lease_expiry(claim_seconds))
        .returning(NotificationDelivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(claimed)


def backoff_seconds(attempt: int, *, base: float, cap: float, rand=random.random) -> float:
    """How long to wait after the attempt-th failed attempt: full jitter over base x 2^(attempt-1), at most cap."""
    return rand() * min(cap, base * 2 ** max(0, attempt - 1))


# Composing.


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Importdash-Signature of a body sent at timestamp: "sha256=" and the HMAC-SHA256 of "timestamp.body"."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _runs_of(job):
    """The job's runs, which give the duration and sends the API shows."""
    return object_session(job).scalars(select(JobRun).where(JobRun.job_id == job.id).order_by(JobRun.id)).all()


def links(job_id: int, public_url: str) -> dict[str, str]:
    """The job's page and its errors.csv, as people reach the dashboard."""
    base = public_url.rstrip("/")
    return {"job": f"{base}/imports/{job_id}", "errors_csv": f"{base}/api/import/{job_id}/errors.csv"}


def payload(job: ImportJob, *, public_url: str) -> dict:
    """The webhook's JSON: the event, the job with its outcome and error counts, and the links."""
    return {
        "event": EVENT,
        "job": {**job.to_dict(_runs_of(job)), "outcome": outcome(job), "error_counts": job.error_counts},
        "links": links(job.id, public_url),
    }


ENDING_WORDS = {
    Ending.COMPLETED: "completed",
    Ending.COMPLETED_WITH_FAILURES: "completed with failures",
    Ending.FAILED: "failed",
    Ending.CANCELLED: "was cancelled",
}


def email_message(job: ImportJob, *, to: str, sender: str, public_url: str, key: str) -> EmailMessage:
    """The summary email of the job's ending: the counts per category and links to the job and its errors."""
    job_links = links(job.id, public_url)
    counts = {
        "succeeded": job.success_count,
        "failed": job.failed_count,
        "cancelled": job.cancelled_count,
        **job.error_counts,
    }
    message = EmailMessage()
    message["Subject"] = f"Import #{job.id} {ENDING_WORDS[ending(job)]}: {job.source}"
    message["From"] = sender
    message["To"] = to
    message["X-Importdash-Id"] = key
    lines = [
        f"Import #{job.id} of {job.source} {ENDING_WORDS[ending(job)]} ({outcome(job)}).",
        "",
        f"Rows: {job.total_records if job.total_records is not None else job.rows_read}",
        *(f"{name.replace('_', ' ').capitalize()}: {number}" for name, number in counts.items()),
    ]
    if job.error:
        lines += ["", f"Reason: {job.error}"]
    lines += ["", f"The import: {job_links['job']}", f"Its errors (CSV): {job_links['errors_csv']}"]
    message.set_content("\n".join(lines) + "\n")
    return message


# Sending.


class Undeliverable(Exception):
    """An attempt failed; the message says why, for people. permanent: trying again cannot help."""

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.status = status
        self.permanent = permanent


@dataclass(frozen=True)
class NotifierSettings:
    webhook_secret: str | None
    public_url: str
    max_attempts: int
    backoff_base: float
    backoff_cap: float
    poll_seconds: float
    claim_seconds: float
    timeout: float
    smtp_host: str | None
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_starttls: bool
    smtp_from: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "NotifierSettings":
        return cls(
            webhook_secret=config["NOTIFY_WEBHOOK_SECRET"] or None,
            public_url=config["PUBLIC_URL"] or f"http://{config['BIND']}",
            max_attempts=config["NOTIFY_MAX_ATTEMPTS"],
            backoff_base=config["NOTIFY_BACKOFF_BASE_SECONDS"],
            backoff_cap=config["NOTIFY_BACKOFF_CAP_SECONDS"],
            poll_seconds=config["NOTIFY_POLL_SECONDS"],
            claim_seconds=config["NOTIFY_CLAIM_SECONDS"],
            timeout=config["NOTIFY_TIMEOUT_SECONDS"],
            smtp_host=config["SMTP_HOST"] or None,
            smtp_port=int(config["SMTP_PORT"]),
            smtp_username=config["SMTP_USERNAME"] or None,
            smtp_password=config["SMTP_PASSWORD"] or None,
            smtp_starttls=bool(config["SMTP_STARTTLS"]),
            smtp_from=config["SMTP_FROM"],
        )

    def __repr__(self):  # never show the secrets, even in a traceback's locals
        return f"NotifierSettings(public_url={self.public_url!r}, smtp_host={self.smtp_host!r}, ...)"


class Notifier:
    """Send the notifications that are due: claim them, send each, store how it went. A loop on a daemon thread
    (start()) does so every poll_seconds in a serving process; send_due() does one round (the CLI, tests)."""

    def __init__(
        self,
        app: "Flask",
        *,
        settings: NotifierSettings,
        transport=None,
        smtp=smtplib.SMTP,
        clock=time.time,
        rand=random.random,
    ):
        self.app = app
        self.settings = settings
        self._client = httpx.Client(timeout=settings.timeout, transport=transport, follow_redirects=False)
        self._smtp = smtp
        self._clock = clock
        self._rand = rand
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        self._failing = False

    def send_due(self) -> int:
        """Claim the notifications due now and send them; return how many were attempted."""
        attempted = 0
        with self.app.app_context():
            try:
                while not self._stopping.is_set():
                    claimed = claim_due(db.session, limit=_CLAIM_BATCH, claim_seconds=self.settings.claim_seconds)
                    for delivery_id in claimed:
                        self._attempt(db.session, delivery_id)
                    attempted += len(claimed)
                    if len(claimed) < _CLAIM_BATCH:
                        break
            finally:
                db.session.remove()
        return attempted

    def _attempt(self, session, delivery_id):
        delivery = session.get(NotificationDelivery, delivery_id)
        job = session.get(ImportJob, delivery.job_id) if delivery is not None else None
        if delivery is None or job is None:  # the job was purged meanwhile, and its notifications with it
            session.rollback()
            return
        try:
            status = self._send(delivery, job)
        except Undeliverable as failure:
            self._record_failure(session, delivery, failure)
        except Exception as error:  # a bug must not end the loop; the notification is tried again
            log.exception("notification %s of import #%s: unexpected error", delivery.key, job.id)
            self._record_failure(session, delivery, Undeliverable(f"An unexpected error ({type(error).__name__})."))
        else:
            delivery.status = DeliveryStatus.SENT.value
            delivery.sent_at = utcnow()
            delivery.last_error = None
            delivery.response_status = status
            session.commit()
            log.info("import #%s: %s notification sent to %s", job.id, delivery.channel, delivery.target)

    def _record_failure(self, session, delivery, failure):
        delivery.last_error = str(failure)
        delivery.response_status = failure.status
        if failure.permanent or delivery.attempts >= self.settings.max_attempts:
            delivery.status = DeliveryStatus.FAILED.value
            log.warning(
                "import #%s: %s notification to %s given up after %s attempts: %s",
                delivery.job_id,
                delivery.channel,
                delivery.target,
                delivery.attempts,
                failure,
            )
        else:
            wait = backoff_seconds(
                delivery.attempts, base=self.settings.backoff_base, cap=self.settings.backoff_cap, rand=self._rand
            )
            delivery.next_attempt_at = lease_expiry(wait)
            log.info(
                "import #%s: %s notification to %s failed (attempt %s), next in %.1f s: %s",
                delivery.job_id,
                delivery.channel,
                delivery.target,
                delivery.attempts,
                wait,
                failure,
            )
        session.commit()

    def _send(self, delivery, job):
        if delivery.channel == DeliveryChannel.WEBHOOK.value:
            return self.post_webhook(delivery.address, job, key=delivery.key)
        return self.send_email(delivery.address, job, key=delivery.key)

    def post_webhook(self, url: str, job: ImportJob, *, key: str) -> int:
        """POST the signed summary; return the answer's status, or raise Undeliverable."""
        if not self.settings.webhook_secret:
            raise Undeliverable(
                "IMPORTDASH_NOTIFY_WEBHOOK_SECRET is not set, so the webhook cannot be signed.", permanent=True
            )
        body = json.dumps(payload(job, public_url=self.settings.public_url)).encode()
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "importdash",
            "X-Importdash-Event": EVENT,
            "X-Importdash-Id": key,
            "X-Importdash-Timestamp": timestamp,
            "X-Importdash-Signature": sign(self.settings.webhook_secret, timestamp, body),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise Undeliverable(f"The webhook did not answer within {self.settings.timeout:g} s.") from None
        except httpx.HTTPError as error:
            raise Undeliverable(f"The webhook could not be reached ({_reason(error)}).") from None
        if response.is_success:
            return response.status_code
        answer = response.text.strip()[:_MESSAGE_LENGTH]
        said = f"The webhook answered {response.status_code} {response.reason_phrase}"
        raise Undeliverable(f"{said}: {answer}" if answer else f"{said}.", status=response.status_code)

    def send_email(self, address: str, job: ImportJob, *, key: str) -> int:
        """Send the summary email through SMTP; return the server's reply code, or raise Undeliverable."""
        settings = self.settings
        if not settings.smtp_host:
            raise Undeliverable("IMPORTDASH_SMTP_HOST is not set, so no email can be sent.", permanent=True)
        message = email_message(job, to=address, sender=settings.smtp_from, public_url=settings.public_url, key=key)
        try:
            with self._smtp(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as server:
                if settings.smtp_starttls:
                    server.starttls()
                if settings.smtp_username:
                    server.login(settings.smtp_username, settings.smtp_password or "")
                refused = server.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()))
            raise Undeliverable(f"The mail server refused the address: {code} {_text(reply)}", status=code) from None
        except smtplib.SMTPAuthenticationError as error:
            raise Undeliverable(
                f"The mail server refused SMTP_USERNAME and SMTP_PASSWORD ({error.smtp_code}).", status=error.smtp_code
            ) from None
        except smtplib.SMTPResponseException as error:
            raise Undeliverable(
                f"The mail server answered {error.smtp_code} {_text(error.smtp_error)}", status=error.smtp_code
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise Undeliverable(f"The mail server could not be reached ({_reason(error)}).") from None
        if refused:
            raise Undeliverable("The mail server refused the address.")
        return 250  # smtplib raises on any other answer to the message

    # The loop.

    def start(self) -> None:
        """Send what is due now, then every poll_seconds on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="importdash-notifier", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, wait: bool = False) -> None:
        """Send nothing more; with wait, also wait for the loop (and a send under way) to end."""
        self._stopping.set()
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=self.settings.timeout + 5)

    def close(self) -> None:
        self._client.close()

    def _loop(self):
        while not self._stopping.is_set():
            try:
                self.send_due()
            except Exception as error:  # a database hiccup must not end the loop; the next round tries again
                if not self._failing:
                    log.warning(
                        "sending notifications failed; trying again every %s s: %s", self.settings.poll_seconds, error
                    )
                self._failing = True
            else:
                if self._failing:
                    log.info("sending notifications works again")
                self._failing = False
            self._wake.wait(self.settings.poll_seconds)
            self._wake.clear()
        log.info("notification sender stopped: the process is shutting down")


def _reason(error):
    """An exception in a few words, without the URL or address it may carry."""
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return type(error).__name__


def _text(reply):
    return (reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)).strip()[:_MESSAGE_LENGTH]

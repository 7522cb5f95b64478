"""The downstream API behind a small interface, and a deterministic simulator of it."""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class Outcome(NamedTuple):
    """What the downstream said about one record: its verdict, a refusal's reason, and its answer (None when it
    said nothing about this record, so the ledger keeps nothing but the verdict). A tuple: one is made for every
    record delivered."""

    key: str
    ok: bool
    message: str | None
    response: dict | None


class DownstreamError(Exception):
    """A whole call failed; a transient failure may be retried, a permanent one may not.

    A throttled call (429) was refused only because calls came too fast; retry_after is how long the
    downstream asked to wait, when it said.
    """

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None, throttled: bool = False):
        super().__init__(message)
        self.message = message
        self.transient = transient or throttled
        self.retry_after = retry_after
        self.throttled = throttled


@dataclass(frozen=True, slots=True)
class Answer:
    """What the downstream said to a check that carried no records: whether it answered at all (any HTTP status),
    whether that answer was a success, and in words."""

    answered: bool
    ok: bool
    message: str
    status_code: int | None = None


class Downstream(Protocol):
    def send(self, records: list[dict]) -> list[Outcome]:
        """Deliver the records in one call and return one outcome per record, in the same order."""
        ...

    def check(self) -> Answer:
        """Ask whether the downstream answers, sending no records."""
        ...

    def close(self) -> None:
        """Release connections; the process is done with the downstream."""
        ...


class SimulatedDownstream:
    """Refuse records from rejected email domains and accept the rest, the same way every time.

    It takes the webhook's payload (README, "Delivery and restarts"): each record's key, operation ("create",
    or "update" for a record an import changed), version, name, email, company and extra fields. It answers a
    refusal with its reason and an acceptance with nothing, like a webhook that answers 2xx without `results`.
    """

    def __init__(
        self,
        *,
        latency_ms: float,
        reject_domains: Iterable[str] | str,
        sleep=time.sleep,
        clock=time.monotonic,
        record_calls: bool = False,
    ):
        if isinstance(reject_domains, str):
            reject_domains = parse_domains(reject_domains)
        self.latency_ms = latency_ms
        self.reject_domains = frozenset(domain.strip().lower() for domain in reject_domains)
        self._sleep = sleep
        self._clock = clock
        self._record_calls = record_calls
        self._lock = threading.Lock()
        self._calls = 0
        self._call_times: list[float] = []

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def call_times(self) -> list[float]:
        """Return a copy of the clock readings taken at the start of each call (empty unless record_calls)."""
        with self._lock:
            return list(self._call_times)

    def send(self, records: list[dict]) -> list[Outcome]:
        """Answer one call for the records after the configured latency."""
        with self._lock:
            self._calls += 1
            if self._record_calls:
                self._call_times.append(self._clock())
        if self.latency_ms > 0:
            self._sleep(self.latency_ms / 1000)
        return [self._judge(record) for record in records]

    def check(self) -> Answer:
        """The simulator is part of this process: it always answers."""
        return Answer(answered=True, ok=True, message="the simulated downstream (built in) answers")

    def close(self) -> None:
        """Nothing to release."""

    def _judge(self, record: dict) -> Outcome:
        key = record["key"]
        _, at, domain = record["email"].rpartition("@")
        domain = domain.lower() if at else ""
        if domain in self.reject_domains:
            message = f'domain "{domain}" is not accepted by the downstream'
            return Outcome(key, False, message, {"status": "rejected", "reason": message})
        return Outcome(key, True, None, None)  # accepted, with nothing to say about the record, as most webhooks do


def parse_domains(text: str) -> tuple[str, ...]:
    """Split a comma-separated list of domains into lower-case names, skipping blanks and repeats."""
    domains = (part.strip().lower() for part in (text or "").split(","))
    return tuple(dict.fromkeys(domain for domain in domains if domain))

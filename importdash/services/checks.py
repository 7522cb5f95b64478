"""Whether the downstream answers, asked on demand with a call that carries no records, and its state as the
dashboard shows it before an import starts: the circuit breaker, a 429's pause, and the last check's answer."""

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from ..models import isoformat, utcnow
from .bucket import TokenBucket
from .delivery import CircuitBreaker
from .downstream import Answer, Downstream
from .limit_store import LimitStore, LimitStoreUnavailable


@dataclass(frozen=True)
class CheckResult:
    """One check of the downstream: its answer, how long it took, and when."""

    answer: Answer
    elapsed_ms: float
    checked_at: datetime

    def to_dict(self) -> dict:
        return {
            "answered": self.answer.answered,
            "ok": self.answer.ok,
            "message": self.answer.message,
            "status_code": self.answer.status_code,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "checked_at": isoformat(self.checked_at),
        }


class LastCheck:
    """The latest check this process made, kept for the dashboard (each process keeps its own)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._result: CheckResult | None = None

    def get(self) -> CheckResult | None:
        with self._lock:
            return self._result

    def set(self, result: CheckResult) -> None:
        with self._lock:
            self._result = result


def check_downstream(
    downstream: Downstream, *, bucket: TokenBucket, wait_seconds: float, last_check: LastCheck, clock=time.monotonic
) -> CheckResult:
    """Ask the downstream whether it answers, with a call that carries no records, and remember the answer.

    The call counts against the rate limit like any other (one token), so a check never pushes the downstream
    past it; when no token frees within wait_seconds (imports use every one, or a 429 paused every call) the
    downstream is not called and the result says why. The breaker is left as it is: a check is not delivery.
    """
    started = clock()
    deadline = started + wait_seconds
    if bucket.acquire(should_stop=lambda: clock() >= deadline):
        answer = downstream.check()
    else:
        answer = Answer(
            answered=False,
            ok=False,
            message=f"not checked: the rate limit had no call free within {wait_seconds:g} s "
            "(imports are using every call, or the downstream asked to pause)",
        )
    result = CheckResult(answer=answer, elapsed_ms=(clock() - started) * 1000, checked_at=utcnow())
    last_check.set(result)
    return result


def downstream_status(
    *,
    kind: str,
    url: str | None,
    bucket: TokenBucket,
    breaker: CircuitBreaker,
    store: LimitStore | None,
    last_check: LastCheck,
) -> dict:
    """The downstream's state: which one, whether the breaker is open, what is left of a 429's pause, and the last
    check. With a shared store the breaker and pause are every process's; state_known is False while it is out of
    reach (calls wait for it then)."""
    state_known = True
    if store is not None:
        try:
            shared = store.state()
            paused, failures, is_open = shared.paused_seconds, shared.failures, shared.breaker_open
        except LimitStoreUnavailable:
            state_known = False
            paused, failures, is_open = 0.0, breaker.failures, breaker.is_open
    else:
        paused, failures, is_open = bucket.pause_left(), breaker.failures, breaker.is_open
    last = last_check.get()
    return {
        "kind": kind,
        "target": _origin(url) if kind == "webhook" else None,
        "breaker": "open" if is_open else "closed",
        "failures": failures,
        "paused_seconds": round(max(paused, 0.0), 1),
        "state_known": state_known,
        "last_check": last.to_dict() if last else None,
    }


def _origin(url):
    """The webhook's scheme, host and port only: its path or query may carry a token."""
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}" if parts.scheme and host else None

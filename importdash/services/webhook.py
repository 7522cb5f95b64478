"""The real downstream: one HTTP POST per call, answered per record or for the whole call."""

import hashlib
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx

from .downstream import Answer, DownstreamError, Outcome

_MESSAGE_LENGTH = 300  # longest part of a downstream's answer kept in an error message


class WebhookDownstream:
    """POST {"records": [...]} to a URL; a 2xx may refuse single records in {"results": [...]}.

    Every failure of the whole call raises DownstreamError: transient for 408, 429, 5xx, timeouts and
    connection errors (429 with the wait its Retry-After asks for), permanent for any other status.
    """

    def __init__(
        self,
        url: str,
        *,
        authorization: str | None,
        connect_timeout: float,
        timeout: float,
        transport=None,
        now=time.time,
    ):
        headers = {"Authorization": authorization} if authorization else {}
        self.url = url
        self._now = now
        # One client for the process: it pools connections and is safe to share between job threads.
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout), transport=transport
        )

    def send(self, records: list[dict]) -> list[Outcome]:
        """Deliver the records in one call and return one outcome per record, in the same order."""
        try:
            response = self._client.post(
                self.url, json={"records": records}, headers={"Idempotency-Key": call_key(records)}
            )
        except httpx.TimeoutException as exc:
            raise DownstreamError(
                f"the downstream did not answer in time ({type(exc).__name__})", transient=True
            ) from exc
        except httpx.TransportError as exc:
            raise DownstreamError(
                f"the downstream cannot be reached: {exc or type(exc).__name__}", transient=True
            ) from exc
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._now())
            raise DownstreamError(_describe(response), transient=True, retry_after=retry_after, throttled=True)
        if status == 408 or status >= 500:
            raise DownstreamError(_describe(response), transient=True)
        if not 200 <= status < 300:
            raise DownstreamError(_describe(response), transient=False)
        return _outcomes(records, response)

    def check(self) -> Answer:
        """POST a call with no records, {"records": []}, as every call is made (headers, authorization, timeouts).

        A receiver that follows the contract has nothing to do and answers 2xx; any other status still shows it
        answers (a 401 names a wrong WEBHOOK_AUTHORIZATION, a 404 a wrong WEBHOOK_URL).
        """
        try:
            response = self._client.post(self.url, json={"records": []}, headers={"Idempotency-Key": call_key([])})
        except httpx.TimeoutException as exc:
            return Answer(
                answered=False, ok=False, message=f"the downstream did not answer in time ({type(exc).__name__})"
            )
        except httpx.TransportError as exc:
            return Answer(
                answered=False, ok=False, message=f"the downstream cannot be reached: {exc or type(exc).__name__}"
            )
        status = response.status_code
        return Answer(answered=True, ok=200 <= status < 300, message=_describe(response), status_code=status)

    def close(self) -> None:
        self._client.close()


def call_key(records: list[dict]) -> str:
    """The call's Idempotency-Key: derived from its records' keys, so a retry of the same records repeats it."""
    return hashlib.sha256("\n".join(record["key"] for record in records).encode()).hexdigest()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP-date), or None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # HTTP-dates are GMT; a date without a zone is read the same way
        moment = moment.replace(tzinfo=UTC)
    return max(moment.timestamp() - now, 0.0)


def _outcomes(records, response):
    """Read per-record refusals from {"results": [{"key", "ok", "message"}]}; records not refused succeeded."""
    try:
        results = response.json().get("results")
    except (ValueError, AttributeError):
        results = None
    if not results:  # the usual answer: every record accepted, none with anything to say
        return [Outcome(record["key"], True, None, None) for record in records]
    verdicts = {}
    if isinstance(results, list):
        verdicts = {item.get("key"): item for item in results if isinstance(item, dict)}
    outcomes = []
    for record in records:
        verdict = verdicts.get(record["key"])
        if verdict is not None and verdict.get("ok") is False:
            message = str(verdict.get("message") or "the downstream refused the record")[:_MESSAGE_LENGTH]
            outcomes.append(Outcome(record["key"], False, message, verdict))
        else:
            outcomes.append(Outcome(record["key"], True, None, verdict))  # None: nothing said about this record
    return outcomes


def _describe(response):
    """Name the status and quote the answer's message (JSON error/message, else the start of the text)."""
    detail = ""
    try:
        body = response.json()
    except ValueError:
        detail = response.text.strip()
    else:
        if isinstance(body, dict):
            error = body.get("error")
            detail = str((error.get("message") if isinstance(error, dict) else error) or body.get("message") or "")
    text = f"the downstream answered {response.status_code} {response.reason_phrase}".rstrip()
    return f"{text}: {detail[:_MESSAGE_LENGTH]}" if detail else text

"""The live streams' wire format and event names: events written as Server-Sent Events text."""

from collections.abc import Iterator

from ..models import JobStatus
from .broker import Event, Subscription, SubscriptionClosed

JOB_CREATED = "job.created"
JOB_PROGRESS = "job.progress"
JOB_FINISHED = "job.finished"
JOBS_SNAPSHOT = "jobs.snapshot"


def state_event_name(state: dict) -> str:
    """A terminal job's state is announced as job.finished, any other as job.progress."""
    return JOB_FINISHED if JobStatus(state["job"]["status"]).is_terminal else JOB_PROGRESS


def sse_stream(
    subscription: Subscription,
    first: Event,
    *,
    keepalive_seconds: float,
    retry_ms: int,
    final_event: str | None = None,
) -> Iterator[str]:
    """Yield one client's stream as SSE text: the retry delay, the first event, then live events and keep-alives.

    The stream ends after `final_event` (the browser is told the job is over), or when the broker drops a
    client that fell behind (the browser reconnects and starts again from the database). The subscription
    is closed however the stream ends, including when the client goes away mid-write.
    """
    try:
        yield f"retry: {int(retry_ms)}\n\n" + first.encode()
        if first.name == final_event:
            return
        while True:
            try:
                event = subscription.get(timeout=keepalive_seconds)
            except SubscriptionClosed:
                return
            if event is None:
                yield ": keep-alive\n\n"
            elif event.id > first.id:
                yield event.encode()
                if event.name == final_event:
                    return
    finally:
        subscription.close()

"""Whether the database answers, found out within a deadline however the database fails."""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)


class DatabaseProbe:
    """Run the database query on a thread of its own and wait for it at most `timeout` seconds.

    A connection to a server that drops packets hangs far longer than any connect or statement timeout
    promises (psycopg rounds connect timeouts up to 2 s, and a pooled connection waits on TCP), so the
    deadline is kept here, not by the driver. At most one query is in flight: while it hangs, every check
    waits on that same one, so a dead database cannot pile up threads.
    """

    def __init__(self, query: Callable[[], None], *, timeout: float):
        self._query = query
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="importdash-health")
        self._lock = threading.Lock()
        self._in_flight: Future | None = None

    def database_answers(self) -> bool:
        """True when the query succeeded within the deadline."""
        with self._lock:
            if self._in_flight is None or self._in_flight.done():
                try:
                    self._in_flight = self._executor.submit(self._query)
                except RuntimeError:  # closed: the process is shutting down, so it is no longer serving
                    return False
            in_flight = self._in_flight
        try:
            in_flight.result(timeout=self._timeout)
        except TimeoutError:
            log.warning("health check: the database did not answer within %s s", self._timeout)
            return False
        except Exception as exc:
            log.warning("health check: database unreachable: %s", exc)
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

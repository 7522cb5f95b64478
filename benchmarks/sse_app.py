"""The app as gunicorn serves it for benchmarks/sse.py, with one addition: every published event carries the
wall-clock time at which the state it announces had been committed (publish_job runs right after each
commit), so a client on the same machine can measure commit-to-receipt latency. Nothing else changes.

    gunicorn -c gunicorn.conf.py --pythonpath benchmarks sse_app:app
"""

import time

import importdash.services.importer as importer
from importdash import create_app

STAMP = "bench_committed_at"
_publish_job = importer.publish_job


class _StampingBroker:
    def __init__(self, broker, committed_at):
        self._broker, self._committed_at = broker, committed_at

    def publish(self, name, data, *args, **kwargs):
        return self._broker.publish(name, {**data, STAMP: self._committed_at}, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._broker, name)


def _stamped_publish_job(broker, *args, **kwargs):
    return _publish_job(_StampingBroker(broker, time.time()), *args, **kwargs)


importer.publish_job = _stamped_publish_job
app = create_app()

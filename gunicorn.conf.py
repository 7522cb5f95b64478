"""gunicorn settings: one process of threads, because each open progress stream (SSE) holds a thread."""
import os

bind = os.environ.get("IMPORTDASH_BIND", "127.0.0.1:8000")
worker_class = "gthread"
# One process keeps one token bucket and one event broker; more processes are safe (job leases, the unique
# email index) but each would have its own rate limit.
workers = int(os.environ.get("IMPORTDASH_WORKERS", "1"))
# More threads than IMPORTDASH_SSE_MAX_STREAMS (48), so requests are still served while every stream is open.
threads = int(os.environ.get("IMPORTDASH_THREADS", "64"))
timeout = 60
graceful_timeout = 30
accesslog = "-"

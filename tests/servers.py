"""Real server processes for end-to-end tests: the shipped gunicorn configuration, started and signalled."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


class Server:
    """gunicorn -c gunicorn.conf.py wsgi:app in its own process group, so the whole group can be killed."""

    def __init__(self, env, log_path):
        self.env = env
        self.log_path = log_path
        self.url = f"http://{env['IMPORTDASH_BIND']}"
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: self._healthy(), timeout=30, what="the server to start", server=self)

    # gunicorn may take its whole graceful_timeout (30 s) to stop on SIGTERM; leave room beyond it.
    def signal(self, signum, timeout=60):
        os.killpg(self.process.pid, signum)
        self.process.wait(timeout=timeout)

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def _healthy(self):
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


def wait_for(condition, *, timeout, what, server=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{server.log()}" if server else ""))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

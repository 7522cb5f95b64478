"""Real server processes for end-to-end tests: the shipped gunicorn configuration, started and signalled.

`server_env` is the environment of one server (a port, an upload folder and a runtime dir of its own);
`Servers` starts a test's servers, each in a folder of its own, and stops the ones still running at the end.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
# A test server serves a few streams and requests: 8 threads, not production's 64, on a small shared machine.
THREADS = 8


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


_GIVEN_PORTS = set()  # every port free_port() returned in this test run


def free_port():
    """A loopback port nothing listens on now, never one returned before in this test run: servers made together
    bind only when started, and the kernel may offer a port again until then (two servers on one port, and the
    second's health check answered by the first)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def server_env(home, database_url, **settings):
    """The environment of a real server whose files are under `home`: a free loopback port, its own upload folder
    (home/uploads), metrics folder (home/metrics) and XDG_RUNTIME_DIR (home: gunicorn's control socket, apart from
    any other gunicorn's), THREADS, and each setting as IMPORTDASH_<NAME>=str(value); a setting overrides any of
    these (UPLOAD_FOLDER to share one).
    """
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "BIND": f"127.0.0.1:{free_port()}",
        "THREADS": THREADS,
        "DATABASE_URL": database_url,
        "UPLOAD_FOLDER": home / "uploads",
        "METRICS_DIR": home / "metrics",  # a killed server leaves no temporary folder behind
    }
    prefixed = {f"IMPORTDASH_{name}": str(value) for name, value in (defaults | settings).items()}
    return os.environ | prefixed | {"XDG_RUNTIME_DIR": str(home)}


class Servers:
    """A test's real servers on one database, each named and in a folder of its own (folder/name: its log, upload
    folder and runtime dir); stop() signals the ones still running."""

    def __init__(self, folder, database_url):
        self.folder = folder
        self.database_url = database_url
        self.made = []

    def make(self, name, **settings):
        """A server not yet started (start() it, and again after a kill); settings as for server_env."""
        home = self.folder / name
        server = Server(server_env(home, self.database_url, **settings), home / "gunicorn.log")
        server.home = home
        self.made.append(server)
        return server

    def start(self, name, **settings):
        server = self.make(name, **settings)
        server.start()
        return server

    def stop(self, signum=signal.SIGKILL):
        for server in self.made:
            if server.process is not None and server.process.poll() is None:
                server.signal(signum)

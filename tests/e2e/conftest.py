"""The real server (gunicorn with the shipped config) on a free loopback port, and Debian's Chromium driven by
Playwright. Tests here skip, saying why, where Chromium or Playwright is missing; CI installs both."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import servers
from servers import server_env

from importdash.config import PROJECT_ROOT, Config

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # a laptop without the test extra
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
STOP_TIMEOUT = 15
SCREENSHOT_MAX_HEIGHT = 1800


class Server(servers.Server):
    """The real server (tests/servers.py), and small JSON helpers to set the scene through its API."""

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode()}") from None

    def wait_until_idle(self, timeout=30):
        """Wait until no import is pending or processing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.call("GET", "/api/import?limit=1000")["jobs"]
            if all(job["status"] in ("completed", "failed", "cancelled") for job in jobs):
                return
            time.sleep(0.1)
        raise AssertionError(f"imports still running after {timeout}s")

    def run_import(self, path="/api/import/batch"):
        """Start an import through the API and return its finished state."""
        job_id = self.call("POST", path)["job"]["id"]
        self.wait_until_idle()
        return self.call("GET", f"/api/import/{job_id}")


@pytest.fixture(scope="module")
def server_settings():
    """Settings a test module adds to its server's (as IMPORTDASH_<NAME>)."""
    return {}


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_settings):
    if sync_playwright is None:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does this)")
    if os.environ.get("IMPORTDASH_TEST_DATABASE_URL"):
        pytest.skip("the browser tests run in the SQLite pass only (their server keeps its own SQLite file)")
    folder = tmp_path_factory.mktemp("e2e-server")
    env = server_env(
        folder,
        f"sqlite:///{folder / 'e2e.db'}",
        # Fast enough to keep the suite quick, slow enough (about 3 s for the sample) to watch progress arrive.
        RATE_PER_SECOND=20,
        # Dead streams are noticed within a second, so the server stops promptly at the end.
        SSE_KEEPALIVE_SECONDS=1,
        # The shipped thread count: the browser holds its progress streams open as a person's would.
        THREADS=Config.THREADS,
        **server_settings,
    )
    running = Server(env, folder / "gunicorn.log")
    try:
        running.start()
        yield running
    finally:
        _stop(running)


def _stop(server):
    """Stop gunicorn and its worker: SIGTERM to its own process group, SIGKILL if it lingers."""
    if server.process is not None and server.process.poll() is None:
        try:
            server.signal(signal.SIGTERM, timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.signal(signal.SIGKILL)


def clear(server, timeout=10):
    """Delete everything; an import whose run is still finishing (its status is final already, its thread not yet
    done) makes the server refuse for a moment, so that refusal is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return server.call("DELETE", "/api/records?confirm=true")
        except AssertionError as refused:
            if "import_running" not in str(refused) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def browser(server):
    """Chromium, started after the server and closed before it, so its streams end first."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh desktop-sized page on an empty ledger; a script error on the page fails the test."""
    server.wait_until_idle()
    clear(server)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def screenshot():
    """Save a full-page screenshot to test-artifacts/ (kept out of git) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(tab, name):
        path = ARTIFACTS / f"{name}.png"
        # The page from its top, at most this tall: enough to judge the layout, small enough to be quick.
        size = tab.viewport_size
        height = min(tab.evaluate("document.documentElement.scrollHeight"), SCREENSHOT_MAX_HEIGHT)
        tab.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": size["width"], "height": height})
        return path

    return take

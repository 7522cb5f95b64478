"""A restart with a job page open: the server stops in seconds, the page says it is reconnecting, and once the
server is back the page is live again and its progress goes on, without a reload."""

import os
import signal
import time

import httpx
import pytest
from servers import Server, server_env

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

pytestmark = pytest.mark.faults

GRACEFUL_TIMEOUT = 30  # gunicorn.conf.py's graceful_timeout


@pytest.fixture
def restartable(server, tmp_path):
    """A server of this test's own (the module's shared one is never restarted), slow enough that its sample import
    runs for about half a minute. Asking for `server` brings the e2e skips (no Chromium, the PostgreSQL pass)."""
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'restart.db'}", THREADS=8, RATE_PER_SECOND=2, RATE_BURST=1)
    restartable = Server(env, tmp_path / "gunicorn.log")
    restartable.start()
    yield restartable
    if restartable.process.poll() is None:
        restartable.signal(signal.SIGKILL)


def progress(page):
    return int(page.get_by_role("progressbar").get_attribute("aria-valuenow") or 0)


def test_a_job_page_open_during_a_restart_does_not_hold_it_and_goes_live_again(browser, restartable, screenshot):
    job_id = httpx.post(f"{restartable.url}/api/import", timeout=10).json()["job"]["id"]
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=restartable.url)
    page = context.new_page()
    page.goto(f"/imports/{job_id}")
    page.evaluate("window.__samePage = true")
    expect(page.locator("[data-live]")).to_have_text("Live")
    wait_until(page, "Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) > 0")

    started = time.monotonic()
    os.kill(restartable.process.pid, signal.SIGTERM)  # to the master, as `kill <master pid>` does
    restartable.process.wait(timeout=GRACEFUL_TIMEOUT + 30)
    took = time.monotonic() - started
    print(f"gunicorn stopped {took:.2f} s after SIGTERM with a job page open")
    assert took < GRACEFUL_TIMEOUT / 3, restartable.log()
    expect(page.locator("[data-live]")).to_have_text("Reconnecting…")
    before = progress(page)

    restartable.start()  # the same port; the import, released at the stop, is taken up again at start

    expect(page.locator("[data-live]")).to_have_text("Live", timeout=20_000)
    wait_until(page, f"Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) > {before}")
    assert page.evaluate("window.__samePage") is True  # the stream came back by itself: no reload
    screenshot(page, "job-after-restart-desktop")
    page.set_viewport_size({"width": 375, "height": 812})
    screenshot(page, "job-after-restart-375")
    context.close()


def wait_until(page, expression, timeout=20):
    """Wait until the expression is true in the page. Not wait_for_function: that polls with eval, which the
    page's content security policy forbids; page.evaluate runs outside it."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        page.wait_for_timeout(100)

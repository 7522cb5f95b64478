"""The dashboard's history, downstream panel, error pages and API page in a real browser against the real server."""

import re
import signal
import subprocess
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import servers
from scripted_downstream import Reply, ScriptedDownstream
from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session

from importdash.models import ImportJob

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}
NOON = datetime(2026, 1, 1, 12, 0)  # UTC, as the database keeps it
WEBHOOK_TIMEOUT_SECONDS = 1


@contextmanager
def database(server):
    engine = create_engine(server.env["IMPORTDASH_DATABASE_URL"])
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def add_history(server, count):
    """Write `count` finished imports straight to the server's database (thousands of imports through the API
    would take hours), one a minute from NOON: every 10th a failed leads-N.csv, the rest contacts-N.csv."""
    with database(server) as session:
        for number in range(1, count + 1):
            leads = number % 10 == 0
            created = NOON + timedelta(minutes=number)
            session.add(
                ImportJob(
                    mode=("batch", "stream", "default")[number % 3],
                    source=f"{'leads' if leads else 'contacts'}-{number}.csv",
                    path="/nonexistent.csv",
                    status="failed" if leads else "completed",
                    total_records=10,
                    processed_count=10,
                    success_count=8,
                    failed_count=2,
                    created_at=created,
                    started_at=created,
                    completed_at=created + timedelta(seconds=30),
                )
            )
        session.commit()


@contextmanager
def running_import(server, source="big.csv"):
    """An import that another process holds (its lease runs for an hour), ended when the test is done."""
    with database(server) as session:
        job = ImportJob(
            mode="stream",
            source=source,
            path="/nonexistent.csv",
            status="processing",
            created_at=NOON,
            started_at=NOON,
            lease_owner="another-process",
            lease_expires_at=datetime.now() + timedelta(hours=1),
        )
        session.add(job)
        session.commit()
        job_id = job.id
    try:
        yield job_id
    finally:
        with database(server) as session:
            session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(status="completed", lease_owner=None, completed_at=datetime.now())
            )
            session.commit()


@pytest.fixture
def tokyo(browser, server, page):
    """A page in Tokyo's time zone (UTC+9), after `page` emptied the ledger."""
    context = browser.new_context(viewport=DESKTOP, base_url=server.url, timezone_id="Asia/Tokyo", locale="en-GB")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def test_thousands_of_imports_page_filter_and_search_from_the_keyboard_in_the_readers_time_zone(
    tokyo, server, screenshot
):
    page = tokyo
    add_history(server, 1_200)
    with running_import(server) as running_id:
        page.goto("/")
        rows = page.locator("[data-history-rows] tr")
        expect(rows).to_have_count(100)
        expect(page.locator("[data-history-count]")).to_have_text("1,201 imports")
        expect(page.locator("[data-history-page]")).to_have_text("Page 1 of 13 · 1–100 of 1,201")
        # The running import comes first, though it is the oldest; then the newest.
        expect(rows.nth(0)).to_have_attribute("data-job-id", str(running_id))
        expect(rows.nth(1)).to_contain_text("leads-1200.csv")
        # Date and time in the reader's zone (noon UTC is 21:00 in Tokyo), the full moment on hover.
        started = rows.nth(0).locator("time")
        expect(started).to_have_text("1 Jan 2026, 21:00")
        expect(started).to_have_attribute("datetime", "2026-01-01T12:00:00Z")
        expect(started).to_have_attribute("title", re.compile(r"Thursday.*1 January 2026.*21:00:00 (JST|GMT\+9)"))
        # Statuses carry words (and an icon the word stands for).
        expect(rows.nth(0).locator(".badge")).to_have_text("Processing")
        expect(rows.nth(1).locator(".badge")).to_have_text("Failed")
        screenshot(page, "history-desktop")

        # Paging from the keyboard alone.
        newer, older = page.get_by_role("button", name="← Newer"), page.get_by_role("button", name="Older →")
        expect(newer).to_be_disabled()
        older.focus()
        page.keyboard.press("Enter")
        expect(page.locator("[data-history-page]")).to_have_text("Page 2 of 13 · 101–200 of 1,201")
        expect(rows.nth(0)).to_contain_text("contacts-1101.csv")
        expect(page).to_have_url(re.compile(r"\?offset=100$"))
        expect(older).to_be_focused()

        # Searching and filtering from the keyboard: the view lives in the URL and starts at page 1.
        search = page.get_by_label("File name")
        search.focus()
        page.keyboard.type("LEADS-11")
        page.keyboard.press("Enter")
        expect(page.locator("[data-history-count]")).to_have_text("11 matching imports")
        expect(rows).to_have_count(11)  # leads-110 and leads-1100 to leads-1190
        expect(page.get_by_role("navigation", name="Pages of imports")).to_be_hidden()
        status = page.get_by_label("Status")
        status.focus()
        status.select_option("completed")
        expect(page.locator("[data-history-empty]")).to_have_text("No imports match these filters.")
        status.select_option("failed")
        page.get_by_label("Mode").select_option("stream")
        expect(page).to_have_url(re.compile(r"\?q=LEADS-11&status=failed&mode=stream$"))
        expect(rows).to_have_count(3)  # leads-1120, -1150 and -1180: the stream imports among them
        page.reload()
        expect(rows).to_have_count(3)
        expect(page.get_by_label("File name")).to_have_value("LEADS-11")
        screenshot(page, "history-filtered-desktop")

        page.set_viewport_size(PHONE)
        screenshot(page, "history-filtered-375")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.get_by_role("button", name="Clear filters").click()
        expect(page.locator("[data-history-count]")).to_have_text("1,201 imports")
        screenshot(page, "history-375")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        # A row's link opens its import from the keyboard.
        rows.nth(1).get_by_role("link").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/imports/\d+$"))


def test_a_new_import_appears_live_on_the_first_page_only_when_it_matches(page, server):
    page.goto("/?mode=batch")
    expect(page.locator("[data-live]")).to_have_text("Live")
    stream_id = server.call("POST", "/api/import/stream")["job"]["id"]
    batch_id = server.call("POST", "/api/import/batch")["job"]["id"]
    row = page.locator(f'tr[data-job-id="{batch_id}"]')
    expect(row).to_contain_text("Completed", timeout=30_000)
    expect(page.locator(f'tr[data-job-id="{stream_id}"]')).to_have_count(0)


def test_clearing_while_an_import_runs_names_it_and_links_to_it(page, server):
    with running_import(server, source="big.csv") as running_id:
        page.goto("/")
        page.get_by_role("button", name="Clear records").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete everything").click()
        notice = page.locator("[data-notice-text]")
        expect(notice).to_contain_text(f"Import #{running_id} (big.csv) is still running")
        link = notice.get_by_role("link", name=f"Open import #{running_id}")
        expect(link).to_have_attribute("href", f"/imports/{running_id}")
        link.click()
        expect(page).to_have_url(re.compile(rf"/imports/{running_id}$"))


def test_the_downstream_panel_shows_its_state_and_tests_it(page, server, screenshot):
    page.goto("/")
    panel = page.get_by_role("region", name=re.compile("^Downstream"))
    expect(panel).to_contain_text("Simulated (built in)")
    expect(panel.locator("[data-downstream-breaker]")).to_have_text(re.compile(r"Closed: calls go out$"))
    expect(panel.locator("[data-downstream-pause]")).to_have_text(re.compile(r"Not paused$"))
    expect(panel.locator("[data-downstream-check]")).to_have_text(re.compile(r"Not checked yet$"))

    button = panel.get_by_role("button", name="Test downstream")
    button.focus()
    page.keyboard.press("Enter")
    check = panel.locator("[data-downstream-check]")
    expect(check).to_contain_text("Answers: the simulated downstream (built in) answers")
    expect(check.locator("[aria-hidden=true]")).to_have_text("✓")  # the icon; the words say it to screen readers
    expect(check.locator("time")).to_have_attribute("title", re.compile(r"\d{4}"))
    screenshot(page, "downstream-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "downstream-375")


def test_an_open_breaker_and_a_429_pause_read_in_words_and_icons(page, screenshot):
    state = {
        "kind": "webhook",
        "target": "https://hooks.example.com",
        "breaker": "open",
        "failures": 5,
        "paused_seconds": 42.0,
        "state_known": True,
        "last_check": None,
    }
    page.route("**/api/downstream", lambda route: route.fulfill(json={"downstream": state}))
    page.goto("/")
    panel = page.get_by_role("region", name=re.compile("^Downstream"))
    expect(panel).to_contain_text("Webhook https://hooks.example.com")
    breaker = panel.locator("[data-downstream-breaker]")
    expect(breaker).to_have_text("\u2715 Open after 5 failed calls in a row: calls wait for a probe")
    expect(breaker.locator("[aria-hidden=true]")).to_have_text("\u2715")
    expect(panel.locator("[data-downstream-pause]")).to_have_text("\u26a0 Paused by a 429 for 42s more")
    screenshot(page, "downstream-open-desktop")


def test_an_unknown_page_is_a_page_with_a_way_back_and_the_dashboard_links_the_api_page(page, screenshot):
    response = page.goto("/imports/999999")
    assert response.status == 404 and response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", level=1)).to_have_text("404 · Not found")
    expect(page.get_by_text("No import #999999.")).to_be_visible()
    screenshot(page, "error-404-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "error-404-375")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("link", name="Back to dashboard").click()
    expect(page).to_have_url(re.compile(r"/$"))

    page.get_by_role("link", name="JSON API documentation").click()
    expect(page).to_have_url(re.compile(r"/docs$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("JSON API")
    operation = page.locator("#listImports")
    expect(operation).to_contain_text("GET /api/import")
    expect(operation).to_contain_text("one of pending, processing, completed, failed, cancelled")
    screenshot(page, "api-docs-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "api-docs-375")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


@pytest.fixture
def webhook_server(server, tmp_path):
    """A second real server whose downstream is a webhook (a scripted one on loopback), with DEMO off."""
    downstream = ScriptedDownstream()
    env = servers.server_env(
        tmp_path,
        f"sqlite:///{tmp_path / 'webhook.db'}",
        DOWNSTREAM="webhook",
        WEBHOOK_URL=downstream.url,
        WEBHOOK_TIMEOUT_SECONDS=WEBHOOK_TIMEOUT_SECONDS,
    )
    running = servers.Server(env, tmp_path / "gunicorn.log")
    try:
        running.start()
        yield running, downstream
    finally:
        if running.process is not None and running.process.poll() is None:
            try:
                running.signal(signal.SIGTERM, timeout=15)
            except subprocess.TimeoutExpired:
                running.signal(signal.SIGKILL)
        downstream.close()


def test_with_a_webhook_the_demo_button_is_gone_and_a_failing_downstream_shows_before_any_import(
    browser, webhook_server, screenshot
):
    running, downstream = webhook_server
    context = browser.new_context(viewport=DESKTOP, base_url=running.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.get_by_role("button", name="Import (Batch)", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Import (Default)", exact=True)).to_have_count(0)
        # Batch without a file would send the bundled sample: refused, saying why.
        page.get_by_role("button", name="Import (Batch)", exact=True).click()
        expect(page.locator("[data-notice-text]")).to_contain_text("IMPORTDASH_DEMO=1")

        panel = page.get_by_role("region", name=re.compile("^Downstream"))
        expect(panel).to_contain_text(f"Webhook {running.url.rsplit(':', 1)[0]}")
        downstream.push(Reply(401, body={"error": "bad token"}))
        panel.get_by_role("button", name="Test downstream").click()
        check = panel.locator("[data-downstream-check]")
        expect(check).to_contain_text("Answers with an error: the downstream answered 401 Unauthorized: bad token")
        expect(check.locator("[aria-hidden=true]")).to_have_text("\u26a0")
        assert [call.records for call in downstream.calls] == [[]]  # no records went out

        downstream.push(Reply(delay=WEBHOOK_TIMEOUT_SECONDS + 1))  # it hangs
        panel.get_by_role("button", name="Test downstream").click()
        expect(check).to_contain_text("Does not answer: the downstream did not answer in time")
        screenshot(page, "downstream-failing-desktop")
        page.set_viewport_size(PHONE)
        screenshot(page, "downstream-failing-375")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()


FOCUSED = """() => {
  const element = document.activeElement;
  const label = element.labels && element.labels.length ? element.labels[0].textContent.trim() : "";
  const name = element.getAttribute("aria-label") || label || element.textContent.trim();
  const style = getComputedStyle(element.closest("label") || element);
  return { tag: element.tagName.toLowerCase(), name, outlined: style.outlineStyle !== "none" };
}"""


def test_the_dashboard_works_from_the_keyboard_alone_with_a_visible_focus(page, server):
    server.run_import()
    page.goto("/")
    expect(page.locator("[data-history-rows] tr")).to_have_count(1)
    seen = []
    for _ in range(40):  # through the header's links and controls to the history's rows, and not past the end
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused["tag"] == "body":
            break
        seen.append(focused)
    names = [item["name"] for item in seen]
    expected = [
        "Import (Default)",
        "Import (Batch)",
        "Import (Stream)",
        "Clear records",
        "Test downstream",
        "File name",
        "Status",
        "Mode",
    ]
    positions = [next(i for i, name in enumerate(names) if name.startswith(wanted)) for wanted in expected]
    assert positions == sorted(positions), names
    assert any(name.startswith("#") for name in names[positions[-1] :]), names  # then the import's own link
    assert all(item["outlined"] for item in seen), [item for item in seen if not item["outlined"]]

    # Enter on "Test downstream" checks it; Enter on an import's link opens it.
    page.get_by_role("button", name="Test downstream").focus()
    page.keyboard.press("Enter")
    expect(page.locator("[data-downstream-check]")).to_contain_text("Answers")
    page.locator("[data-history-rows] a").first.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/imports/\d+$"))

"""The dashboard in a real browser against the real server: imports, live progress, filters, history."""

import re
import time

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}

# Remembers every value the progress bar showed, so a test can tell progress arrived live, step by step.
RECORD_PROGRESS = """
window.__progress = [];
new MutationObserver(() => {
  const bar = document.querySelector("[role=progressbar]");
  const now = bar && bar.getAttribute("aria-valuenow");
  if (now !== null && now !== undefined && window.__progress.at(-1) !== Number(now))
    window.__progress.push(Number(now));
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["aria-valuenow"] });
"""


def job_id_of(page):
    return int(re.search(r"/imports/(\d+)", page.url).group(1))


def test_the_default_import_shows_live_progress_up_to_100_percent(page, server, screenshot):
    page.add_init_script(RECORD_PROGRESS)
    page.goto("/")
    page.get_by_role("button", name="Import (Default)", exact=True).click()

    page.wait_for_url(re.compile(r"/imports/\d+$"))
    page.evaluate("window.__samePage = true")
    expect(page.locator("[data-headline]")).to_have_text("100%", timeout=30_000)
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")  # the sample has bad rows

    assert page.evaluate("window.__samePage") is True  # no reload: the stream brought every step
    seen = page.evaluate("window.__progress")
    assert seen[-1] == 1000 and any(0 < value < 1000 for value in seen), seen
    job = server.call("GET", f"/api/import/{job_id_of(page)}")["job"]
    bar = page.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuemax", "1000")
    expect(page.locator("[data-success]")).to_have_text(f"{job['success_count']:,}")
    expect(page.locator("[data-failed]")).to_have_text(f"{job['failed_count']:,}")
    expect(page.get_by_role("button", name="Cancel import")).to_be_hidden()
    expect(page.get_by_role("link", name="Download errors (CSV)")).to_have_attribute(
        "href", f"/api/import/{job['id']}/errors.csv"
    )
    expect(page.locator("[data-errors-note]")).to_have_text(f"{job['failed_count']} errors")
    expect(page.locator("[data-page-position]")).to_have_text(f"1–20 of {job['failed_count']}")

    screenshot(page, "job-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "job-375")
    page.get_by_role("link", name="Back to dashboard").click()
    expect(page.locator(f'tr[data-job-id="{job["id"]}"]')).to_contain_text("Completed")
    screenshot(page, "dashboard-375")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "dashboard-desktop")


def test_a_category_card_filters_the_errors_and_the_filter_lives_in_the_url(page, server):
    state = server.run_import()
    page.goto(f"/imports/{state['job']['id']}")
    rows = page.locator("[data-error-rows] tr")
    expect(rows).to_have_count(20)  # a page of errors

    duplicates = page.locator('[data-category="duplicate"]')
    expect(duplicates.locator("[data-count]")).to_have_text(str(state["error_counts"]["duplicate"]))
    duplicates.click()

    expect(page).to_have_url(re.compile(r"\?category=duplicate$"))
    expect(duplicates).to_have_attribute("aria-pressed", "true")
    expect(rows).to_have_count(min(20, state["error_counts"]["duplicate"]))
    expect(rows.locator(".tag")).to_have_text(["Duplicates"] * rows.count())
    expect(page.get_by_role("link", name="Download errors (CSV)")).to_have_attribute(
        "href", re.compile(r"errors\.csv\?category=duplicate$")
    )

    duplicates.click()
    expect(page).not_to_have_url(re.compile("category="))
    expect(duplicates).to_have_attribute("aria-pressed", "false")
    expect(rows).to_have_count(20)
    assert len(set(rows.locator(".tag").all_text_contents())) > 1

    page.goto(f"/imports/{state['job']['id']}?category=missing_value")  # a shared link opens filtered
    expect(rows).to_have_count(min(20, state["error_counts"]["missing_value"]))
    expect(rows.locator(".tag")).to_have_text(["Missing Values"] * rows.count())


def test_a_csv_chosen_in_the_picker_is_imported_in_stream_mode_and_shown_as_text(page, tmp_path):
    csv = tmp_path / "contacts-e2e.csv"
    csv.write_text(
        "name,email,company\n"
        "Ada Lovelace,ada@example.com,Analytical Engines\n"
        "Ada Again,ADA@example.com,Analytical Engines\n"
        '"<img src=x onerror=""window.__pwned=1"">",not-an-email,Mischief Inc\n'
        ",nameless@example.com,Nobody Ltd\n"
        "Blocked Person,someone@blocked.example,Blocked Co\n"
        "<img src=x onerror=alert(1)>,xss@example.com,<script>alert(2)</script>\n"
    )
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/")
    page.locator("[data-file-input]").set_input_files(csv)
    expect(page.locator("[data-file-label]")).to_contain_text("contacts-e2e.csv")
    preview_rows = page.locator("[data-preview-rows]")  # the preview shows the names as text too
    expect(preview_rows).to_contain_text('<img src=x onerror="window.__pwned=1">')
    assert preview_rows.locator("img").count() == 0

    page.get_by_role("button", name="Start import (Stream)").click()

    page.wait_for_url(re.compile(r"/imports/\d+$"))
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")
    expect(page.locator(".job__file")).to_have_text("contacts-e2e.csv")
    expect(page.locator("[data-mode]")).to_have_text("Stream")
    expect(page.locator("[data-success]")).to_have_text("2")
    expect(page.locator("[data-failed]")).to_have_text("4")
    for category in ("duplicate", "missing_value", "invalid_format", "other"):
        expect(page.locator(f'[data-category="{category}"] [data-count]')).to_have_text("1")
    errors = page.locator("[data-error-rows]")
    expect(errors).to_contain_text('<img src=x onerror="window.__pwned=1">')
    assert errors.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None

    # The hostile name that became a record shows as text in the history, the records API, and fires nothing.
    page.get_by_role("link", name="Back to dashboard").click()
    expect(page.locator(".history__source").first).to_have_text("contacts-e2e.csv")
    records = page.request.get("/api/records?q=xss").json()["records"]
    assert records[0]["name"] == "<img src=x onerror=alert(1)>"
    assert page.locator("table img").count() == 0 and page.locator("script:not([src]):not([type])").count() == 0
    assert dialogs == []


def test_the_history_updates_live_its_rows_open_each_import_and_it_can_be_cleared(page, server):
    page.goto("/")
    expect(page.locator("[data-history-empty]")).to_be_visible()
    expect(page.locator("[data-live]")).to_have_text("Live")

    job_id = server.call("POST", "/api/import/stream")["job"]["id"]  # started elsewhere: the page must notice

    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_contain_text("Stream")
    expect(row).to_contain_text("Completed", timeout=30_000)
    expect(page.locator("[data-history-empty]")).to_be_hidden()

    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/imports/{job_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Import #{job_id}")
    page.get_by_role("link", name="Back to dashboard").click()
    expect(page).to_have_url(re.compile(r"/$"))
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/imports/{job_id}$"))
    page.go_forward()

    page.get_by_role("button", name="Clear records").click()  # asks first
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    page.get_by_role("button", name="Clear records").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete everything").click()
    expect(page.locator("[data-notice-text]")).to_have_text(
        re.compile(r"^Deleted [\d,]+ records, \d+ errors and 1 imports\.$")
    )
    expect(page.locator("[data-history-empty]")).to_be_visible()
    assert server.call("GET", "/api/import")["total"] == 0


def test_a_refused_stream_shows_reconnecting_and_catches_up_when_it_returns(page, server):
    refuse = '{"error": {"code": "too_many_streams", "message": "Too many live streams are open."}}'
    page.route("**/api/events", lambda route: route.fulfill(status=503, body=refuse, content_type="application/json"))
    page.goto("/")
    expect(page.locator("[data-live]")).to_have_text("Reconnecting…")

    job_id = server.call("POST", "/api/import")["job"]["id"]  # created while the page could not listen
    page.unroute("**/api/events")

    expect(page.locator("[data-live]")).to_have_text("Live")
    expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_contain_text("Completed", timeout=30_000)


def test_cancel_retry_and_download_from_a_job_page(page, tmp_path):
    long_file = tmp_path / "long.csv"
    long_file.write_text("name,email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(4000)))
    page.goto("/")
    page.locator("[data-file-input]").set_input_files(long_file)
    page.get_by_role("button", name="Start import (Batch)").click()
    page.wait_for_url(re.compile(r"/imports/\d+$"))
    expect(page.locator("[data-status]")).to_have_text("Processing")
    page.get_by_role("button", name="Cancel import").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel import").click()  # it asks first
    expect(page.locator("[data-status]")).to_have_text("Cancelled")
    processed = int(page.locator("[data-success]").text_content().replace(",", ""))
    assert 0 <= processed < 4000

    refused = tmp_path / "refused.csv"
    refused.write_text(
        "name,email\nGood One,good@example.com\n"
        + "".join(f"Blocked {n},blocked{n}@blocked.example\n" for n in range(3))
    )
    page.goto("/")
    page.locator("[data-file-input]").set_input_files(refused)
    page.get_by_role("button", name="Start import (Stream)").click()
    page.wait_for_url(re.compile(r"/imports/\d+$"))
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")
    expect(page.locator("[data-failed]")).to_have_text("3")

    download = page.get_by_role("link", name="Download errors (CSV)")
    response = page.request.get(download.get_attribute("href"))
    assert response.ok and "attachment" in response.headers["content-disposition"]
    lines = response.text().lstrip("\ufeff").strip().splitlines()  # a BOM, so spreadsheets read UTF-8
    assert lines[0].startswith("row,category,message") and len(lines) == 4

    page.get_by_role("button", name="Retry 3 failed deliveries").click()
    expect(page.locator("[data-retry-runs] li")).to_contain_text("Retry 1")
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")
    expect(page.locator("[data-failed]")).to_have_text("3")  # the simulator refuses that domain again


def test_a_cancelled_import_is_resumed_from_its_page_and_completes(page, server, screenshot):
    job_id = server.call("POST", "/api/import/batch")["job"]["id"]
    server.call("POST", f"/api/import/{job_id}/cancel")
    server.wait_until_idle()
    cancelled = server.call("GET", f"/api/import/{job_id}")["job"]
    assert cancelled["status"] == "cancelled"

    page.goto(f"/imports/{job_id}")
    expect(page.locator("[data-status]")).to_have_text("Cancelled")
    resume = page.get_by_role("button", name="Resume import")
    expect(resume).to_be_visible()
    expect(page.get_by_role("button", name="Cancel import")).to_be_hidden()
    screenshot(page, "job-cancelled-desktop")
    resume.click()

    expect(page.locator("[data-status]")).to_have_text("Completed with failures", timeout=30_000)
    expect(resume).to_be_hidden()
    finished = server.call("GET", f"/api/import/{job_id}")["job"]
    assert finished["processed_count"] == finished["total_records"] == 1000
    screenshot(page, "job-resumed-desktop")


def test_a_cancelled_import_shows_its_cancelled_rows_and_which_later_import_took_them(page, server, screenshot):
    first = server.call("POST", "/api/import/batch")["job"]["id"]
    deadline = time.monotonic() + 30
    while server.call("GET", f"/api/import/{first}")["job"]["success_count"] == 0:  # staged, and delivering
        assert time.monotonic() < deadline, "delivery did not start"
        time.sleep(0.05)
    server.call("POST", f"/api/import/{first}/cancel")
    server.wait_until_idle()
    cancelled = server.call("GET", f"/api/import/{first}")["job"]
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_count"] > 0
    later = server.run_import()  # the same sample: it stores the rows the first never sent
    second = later["job"]

    page.goto(f"/imports/{first}")
    expect(page.locator("[data-cancelled]")).to_have_text(f"{cancelled['cancelled_count']:,}")
    section = page.locator("[data-reimported]")
    expect(section).to_be_visible()
    # Every cancelled row but those the downstream refused in the second import too (they let go of it again).
    taken = server.call("GET", f"/api/import/{first}/reimported")["total"]
    assert 0 < cancelled["cancelled_count"] - taken <= later["error_counts"]["other"]
    expect(page.locator("[data-reimported-note]")).to_contain_text(
        f"{taken:,} rows of this import were imported again by a later import"
    )
    link = section.get_by_role("link", name=f"Import #{second['id']}").first
    screenshot(page, "job-reimported-desktop")
    link.click()
    page.wait_for_url(re.compile(rf"/imports/{second['id']}$"))


def test_a_job_page_lists_its_records_with_their_extra_fields_and_marks_updates(page, server, screenshot):
    def upload(text, **fields):
        file = {"name": "people.csv", "mimeType": "text/csv", "buffer": text.encode()}
        response = page.request.post("/api/import/batch", multipart={"file": file, **fields})
        assert response.status == 202, response.text()
        server.wait_until_idle()
        return response.json()["job"]["id"]

    header = "name,email,company,Phone,Job title\n"
    upload(header + "Ada Lovelace,ada@example.com,Analytical Engines,+44 1,Countess\n")
    second = upload(
        header + "Ada King,ada@example.com,Analytical Engines,+44 2,Countess\n"
        "Alan Turing,alan.turing.at.the.national.physical.laboratory@example.org,,,<b>Codebreaker</b>\n",
        duplicate_policy="update",
    )

    page.goto(f"/imports/{second}")
    rows = page.locator("[data-record-rows] tr")
    expect(rows).to_have_count(2)
    ada, alan = rows.nth(0), rows.nth(1)
    expect(ada.locator(".records__extra")).to_contain_text("Phone")
    expect(ada.locator(".records__extra")).to_contain_text("+44 2")
    expect(ada).to_contain_text("Update, version 2")
    expect(alan.locator(".records__extra")).to_contain_text("<b>Codebreaker</b>")  # as text, never as markup
    expect(alan.locator(".records__extra")).to_contain_text("(empty)")
    assert alan.locator("b").count() == 0
    expect(alan).not_to_contain_text("Update")
    screenshot(page, "job-records-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "job-records-375")

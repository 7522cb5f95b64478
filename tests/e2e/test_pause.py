"""Pause, unpause and priority on an import's page in a real browser against the real server (#16): pause a
running import, see it Paused in words and an icon (on its page and in the history, whose filter finds it), set
its priority, unpause it, and it completes with every row delivered."""

import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}
ROWS = 3000  # at the test server's 20 calls a second, about 10 s of delivery: long enough to pause it mid-way
UNTIL_DONE = 60_000  # ms for the whole import once unpaused, on a loaded machine


def start_import(page, path):
    """Start a batch import of the file through the API, open its page, and return its id."""
    upload = {"file": {"name": path.name, "mimeType": "text/csv", "buffer": path.read_bytes()}}
    response = page.request.post("/api/import/batch", multipart=upload)
    assert response.status == 202, response.text()
    job_id = response.json()["job"]["id"]
    page.goto(f"/imports/{job_id}")
    return job_id


def test_pause_shows_paused_frees_the_import_and_unpause_lets_it_complete(page, tmp_path, screenshot):
    path = tmp_path / "pause.csv"
    path.write_text("name,email\n" + "".join(f"Person {n},p{n}@example.com\n" for n in range(ROWS)))
    job_id = start_import(page, path)
    expect(page.locator("[data-success]")).not_to_have_text("0")
    status = page.locator("[data-status]")

    page.get_by_role("button", name="Pause").click()

    expect(status).to_have_text("Paused")
    expect(status).to_have_class(re.compile(r"badge--paused"))
    assert status.get_attribute("data-icon") == "\u2016"
    expect(page.locator("[data-paused-note]")).to_be_visible()
    expect(page.get_by_role("button", name="Unpause")).to_be_visible()
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel import")).to_be_visible()  # a paused import can still be cancelled
    held = page.locator("[data-success]").text_content()
    page.wait_for_timeout(1_000)  # nothing is sent while it is paused
    expect(page.locator("[data-success]")).to_have_text(held)
    assert int(held.replace(",", "")) < ROWS
    screenshot(page, "pause-paused-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "pause-paused-375")
    page.set_viewport_size(DESKTOP)

    # The history shows it paused, among the unfinished imports, and its status filter finds it.
    page.goto("/")
    first = page.locator("[data-history-rows] tr").first
    expect(first).to_contain_text(f"#{job_id}")
    expect(first.locator(".badge")).to_have_text("Paused")
    page.get_by_label("Status").select_option("paused")
    expect(page.locator("[data-history-rows] tr")).to_have_count(1)
    screenshot(page, "pause-history-desktop")
    page.goto(f"/imports/{job_id}")

    priority = page.get_by_label("Priority")
    expect(priority).to_have_value("0")
    priority.fill("5")
    page.get_by_role("button", name="Set priority").click()
    expect(page.get_by_text("Priority set to 5.")).to_be_visible()
    expect(priority).to_have_value("5")

    page.get_by_role("button", name="Unpause").click()

    expect(status).not_to_have_text("Paused")
    expect(status).to_have_text("Completed", timeout=UNTIL_DONE)
    expect(page.locator("[data-success]")).to_have_text(f"{ROWS:,}")
    expect(page.locator("[data-failed]")).to_have_text("0")
    expect(page.locator("[data-priority-form]")).to_be_hidden()
    screenshot(page, "pause-completed-desktop")


def test_an_answer_to_pause_that_comes_after_the_stream_leaves_the_page_paused(page, tmp_path):
    # The answer is read before the run has stopped; on a busy server it can reach the page after the stream's
    # "Paused", and shown then it would put the page back on "Processing", where nothing would move it again.
    path = tmp_path / "late.csv"
    path.write_text("name,email\n" + "".join(f"Person {n},late{n}@example.com\n" for n in range(ROWS)))
    job_id = start_import(page, path)
    expect(page.locator("[data-success]")).not_to_have_text("0")
    held = []
    page.route(f"**/api/import/{job_id}/pause", lambda route: held.append((route, route.fetch())))
    status = page.locator("[data-status]")

    page.get_by_role("button", name="Pause").click()
    expect(status).to_have_text("Paused")  # from the stream, while the answer is held back
    route, answer = held[0]
    route.fulfill(response=answer)

    expect(page.locator("[data-pause]")).not_to_have_attribute("aria-busy", "true")  # the answer was taken
    expect(status).to_have_text("Paused")
    expect(page.locator("[data-paused-note]")).to_be_visible()
    page.request.post(f"/api/import/{job_id}/cancel")

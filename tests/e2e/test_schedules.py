"""The schedules page in a real browser against the real server: create a schedule, run it now, see its import in
its runs, pause and resume it, see a failing source's error, edit and delete it."""

import urllib.request

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def feeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feeds")
    (folder / "crm-2026-12.csv").write_text(
        "Name,Email\n" + "".join(f"Person {n},person{n}@example.com\n" for n in range(12))
    )
    return folder


@pytest.fixture(scope="module")
def server_settings(feeds):
    return {"IMPORT_ROOT": feeds}


@pytest.fixture
def clean(server):
    for schedule in server.call("GET", "/api/schedules")["schedules"]:
        _delete(server, schedule["id"])
    if not any(template["name"] == "CRM" for template in server.call("GET", "/api/templates")["templates"]):
        server.call("POST", "/api/templates", {"name": "CRM"})


def _delete(server, schedule_id):
    urllib.request.urlopen(urllib.request.Request(f"{server.url}/api/schedules/{schedule_id}", method="DELETE"))


def test_a_schedule_is_created_run_paused_edited_and_deleted_on_its_page(page, server, screenshot, clean):
    page.goto("/")
    page.get_by_role("link", name="Schedules").click()
    expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()
    expect(page.get_by_text("No schedules yet")).to_be_visible()
    form = page.locator("[data-schedule-form]")  # the header's preview dialog has fields of the same names

    form.get_by_label("Name", exact=True).fill("Nightly CRM")
    expect(form.get_by_label("Template")).to_have_value("CRM")
    form.get_by_label("Source", exact=True).fill("crm-*.csv")
    form.get_by_label("Cron").fill("0 2 * * *")
    form.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Save schedule").click()

    row = page.locator("tr[data-schedule-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Nightly CRM")
    expect(row).to_contain_text("0 2 * * *")
    expect(row).to_contain_text("Europe/Berlin")
    expect(row).to_contain_text("Never")
    saved = server.call("GET", "/api/schedules/Nightly%20CRM")["schedule"]
    assert (saved["source_kind"], saved["source"], saved["template"]) == ("path", "crm-*.csv", "CRM")
    assert saved["next_run_at"].endswith("T01:00:00Z")

    # A bad cron expression is refused with the server's own message.
    form.get_by_label("Name", exact=True).fill("Broken")
    form.get_by_label("Source", exact=True).fill("crm-*.csv")
    form.get_by_label("Cron").fill("every night")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator("[data-form-error]")).to_contain_text("five fields")

    # A URL source on a loopback address is saved, and its run fails with a readable error.
    form.get_by_label("Name", exact=True).fill("Intranet <b>feed</b>")
    form.get_by_label("Source", exact=True).fill("http://127.0.0.1:9/contacts.csv")
    expect(form.get_by_label("Source kind")).to_have_value("url")
    form.get_by_label("Cron").fill("*/15 * * * *")
    page.get_by_role("button", name="Save schedule").click()
    expect(row).to_have_count(2)
    expect(page.get_by_text("Intranet <b>feed</b>", exact=True)).to_be_visible()  # text, never HTML
    page.get_by_role("button", name="Run Intranet <b>feed</b> now").click()
    expect(page.locator("[data-last-error]")).to_contain_text("private, loopback")

    page.get_by_role("button", name="Run Nightly CRM now").click()
    expect(page.locator("[data-notice-text]")).to_contain_text("started import #")
    runs = page.locator("tr[data-run-id]")
    expect(runs).to_have_count(1)
    server.wait_until_idle()
    page.get_by_role("button", name="Show the runs of Nightly CRM").click()
    expect(runs.first).to_contain_text("crm-2026-12.csv")
    expect(runs.first).to_contain_text("Completed")
    expect(runs.first).to_contain_text("12 delivered, 0 failed of 12")
    job = server.call("GET", "/api/import?limit=1")["jobs"][0]
    assert job["started_by"] == "schedule:Nightly CRM" and job["source"] == "crm-2026-12.csv"

    page.get_by_role("button", name="Pause Nightly CRM").click()
    nightly = page.locator(f'tr[data-schedule-id="{saved["id"]}"]')
    expect(nightly).to_contain_text("Paused")
    screenshot(page, "schedules-1280")
    page.set_viewport_size(PHONE)
    screenshot(page, "schedules-375")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("button", name="Resume Nightly CRM").click()
    expect(nightly).not_to_contain_text("Paused")

    page.get_by_role("button", name="Edit Nightly CRM").click()
    expect(page.get_by_role("heading", name="Edit “Nightly CRM”")).to_be_visible()
    expect(form.get_by_label("Cron")).to_have_value("0 2 * * *")
    form.get_by_label("Cron").fill("30 6 * * 1-5")
    form.get_by_label("Mode").select_option("stream")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="New schedule")).to_be_visible()
    edited = server.call("GET", "/api/schedules/Nightly%20CRM")["schedule"]
    assert (edited["cron"], edited["mode"]) == ("30 6 * * 1-5", "stream")

    page.get_by_role("button", name="Delete Nightly CRM").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(row).to_have_count(1)
    expect(page.locator("[data-notice-text]")).to_contain_text("deleted")

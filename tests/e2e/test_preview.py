"""The preview of a chosen file in a real browser: its rows, counts and estimate, the mapping step, options that
preview again, and "Start import" by the preview's token."""

import re

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}

CONTACTS = (
    "name,email,company,phone\n"
    "Ada Lovelace,ada@example.com,Analytical Engines,555-0100\n"
    "Grace Hopper,grace@example.com,US Navy,555-0101\n"
    ",nobody@example.com,,\n"
    "Alan Turing,not-an-email,,\n"
    "Ada Again,ADA@example.com,,\n"
)


def choose(page, name, text, encoding="utf-8"):
    page.locator("[data-file-input]").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": text.encode(encoding)}
    )


def test_a_chosen_file_is_previewed_at_once_and_started_by_its_token(page, server, screenshot):
    page.goto("/")
    choose(page, "contacts.csv", CONTACTS)

    dialog = page.get_by_role("dialog", name="Preview of contacts.csv")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("status")).to_have_text("Read 5 rows. Nothing is imported until you start it.")
    expect(dialog.locator("[data-preview-mapping]")).to_have_text(
        'Name ← "name" · Email ← "email" · Company ← "company" · Extra fields: phone'
    )
    counts = dialog.locator("[data-preview-counts] li")
    expect(counts).to_have_text(
        ["2Valid", "1Missing value", "1Invalid format", "1Duplicate in the file", "0Already stored"]
    )
    # 2 valid records are 1 call of 16 at the server's 20 calls a second.
    expect(dialog.locator("[data-preview-estimate]")).to_have_text(
        "Delivery takes about <1s: 2 records in 1 call of 16 at 20 calls/s."
    )
    rows = dialog.locator("[data-preview-rows] tr")
    expect(rows).to_have_count(5)
    expect(rows.nth(0)).to_contain_text("Ada Lovelace")
    expect(rows.nth(0)).to_contain_text("phone: 555-0100")
    expect(rows.nth(4).locator(".tag")).to_have_text("Duplicate in the file")
    assert server.call("GET", "/api/import")["total"] == 0  # a preview writes no import
    screenshot(page, "preview-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "preview-375")
    rows.nth(2).scroll_into_view_if_needed()
    screenshot(page, "preview-rows-375")

    dialog.get_by_role("button", name="Start import (Batch)").click()

    page.wait_for_url(re.compile(r"/imports/\d+$"))
    job_id = int(re.search(r"/imports/(\d+)", page.url).group(1))
    server.wait_until_idle()
    job = server.call("GET", f"/api/import/{job_id}")["job"]
    assert job["source"] == "contacts.csv" and job["mode"] == "batch"
    assert job["processed_count"] == 5 and job["success_count"] == 2


def test_the_mapping_step_maps_first_and_last_name_and_the_email(page, server, screenshot):
    page.goto("/")
    choose(
        page,
        "people.csv",
        "Given,Family,Reach at,Phone\nAda,Lovelace,ada@example.com,555\nGrace,Hopper,grace@example.com,\n",
    )

    dialog = page.get_by_role("dialog", name="Preview of people.csv")
    step = dialog.get_by_role("group", name="Map the columns")
    expect(step).to_be_visible()
    expect(dialog.get_by_role("button", name="Start import (Batch)")).to_be_disabled()
    expect(step.get_by_role("combobox", name="Name", exact=True)).to_be_focused()
    screenshot(page, "preview-mapping-desktop")

    # Keyboard only: the name's select has the focus; choose by typing, move on with Tab.
    page.keyboard.press("Tab")
    step.get_by_role("combobox", name="Name", exact=True).select_option("Given")
    step.get_by_role("combobox", name="Last name, if separate").select_option("Family")
    step.get_by_role("combobox", name="Email").select_option("Reach at")
    step.get_by_role("button", name="Apply mapping").focus()
    page.keyboard.press("Enter")

    expect(step).to_be_hidden()
    expect(dialog.locator("[data-preview-mapping]")).to_have_text(
        'Name ← "Given" + "Family" · Email ← "Reach at" · No company column · Extra fields: Phone'
    )
    rows = dialog.locator("[data-preview-rows] tr")
    expect(rows.nth(0)).to_contain_text("Ada Lovelace")
    expect(rows.nth(1)).to_contain_text("Grace Hopper")
    page.set_viewport_size(PHONE)
    screenshot(page, "preview-mapped-375")

    dialog.get_by_role("button", name="Start import (Stream)").click()
    page.wait_for_url(re.compile(r"/imports/\d+$"))
    server.wait_until_idle()
    records = server.call("GET", "/api/records?q=lovelace")["records"]
    assert [record["name"] for record in records] == ["Ada Lovelace"]


def test_an_option_changed_previews_the_file_again(page, server):
    page.goto("/")
    choose(page, "legacy.csv", "name,email\nZoë Quinn,zoe@example.com\n", encoding="cp1252")

    dialog = page.get_by_role("dialog", name="Preview of legacy.csv")
    expect(dialog.get_by_role("status")).to_contain_text("not valid UTF-8")
    expect(dialog.get_by_role("button", name="Start import (Batch)")).to_be_disabled()

    encoding = dialog.get_by_role("combobox", name="Encoding")
    encoding.fill("cp1252")
    encoding.press("Enter")

    expect(dialog.get_by_role("status")).to_have_text("Read 1 row. Nothing is imported until you start it.")
    expect(dialog.locator("[data-preview-rows] tr").first).to_contain_text("Zoë Quinn")
    dialog.get_by_role("combobox", name="Known emails").select_option("update")
    expect(dialog.get_by_role("status")).to_have_text("Read 1 row. Nothing is imported until you start it.")
    expect(dialog.get_by_role("button", name="Start import (Batch)")).to_be_enabled()

    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert server.call("GET", "/api/import")["total"] == 0


def test_the_file_picker_accepts_every_readable_format(page):
    page.goto("/")
    accept = page.locator("[data-file-input]").get_attribute("accept").split(",")
    assert {".csv", ".tsv", ".txt", ".xlsx", ".json", ".ndjson", ".jsonl"} <= set(accept)


def test_the_saved_templates_are_offered_and_a_chosen_one_is_sent(page):
    templates = {"templates": [{"id": 1, "name": "CRM export"}, {"id": 2, "name": "Event sign-ups"}]}
    page.route("**/api/templates", lambda route: route.fulfill(json=templates))
    page.goto("/")
    choose(page, "contacts.csv", CONTACTS)
    dialog = page.get_by_role("dialog", name="Preview of contacts.csv")
    picker = dialog.get_by_role("combobox", name="Template")
    expect(picker.locator("option")).to_have_text(["None", "CRM export", "Event sign-ups"])
    expect(dialog.get_by_role("button", name="Start import (Batch)")).to_be_enabled()

    with page.expect_request(lambda request: request.url.endswith("/api/import/preview")) as sent:
        picker.select_option("CRM export")

    body = sent.value.post_data
    assert 'name="template"\r\n\r\nCRM export' in body and 'name="preview"' in body and 'name="file"' not in body

"""The templates page in a real browser against the real server: create, edit and delete a template."""

import urllib.request

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}


@pytest.fixture
def no_templates(server):
    for template in server.call("GET", "/api/templates")["templates"]:
        request_delete(server, template["id"])


def request_delete(server, template_id):
    urllib.request.urlopen(urllib.request.Request(f"{server.url}/api/templates/{template_id}", method="DELETE"))


def test_a_template_is_created_edited_and_deleted_on_its_page(page, server, screenshot, no_templates):
    page.goto("/")
    page.get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", name="Import templates")).to_be_visible()
    expect(page.get_by_text("No templates yet")).to_be_visible()
    form = page.locator("[data-template-form]")  # the header's preview dialog has fields of the same names

    form.get_by_label("Name", exact=True).fill("CRM export")
    form.get_by_label("Delimiter").select_option(label="Semicolon ;")
    form.get_by_label("Encoding").fill("cp1252")
    form.get_by_label("Name column", exact=True).fill("Vorname")
    form.get_by_label("Last name column").fill("Nachname")
    form.get_by_label("Email column").fill("E-Mail-Adresse")
    form.get_by_label("Extra columns kept").fill("Telefon\nPosition")
    page.get_by_role("button", name="Save template").click()

    row = page.locator("tr[data-template-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("CRM export")
    expect(row).to_contain_text("cp1252")
    expect(row).to_contain_text("semicolon")
    expect(row).to_contain_text("name ← Vorname + Nachname; email ← E-Mail-Adresse")
    expect(row).to_contain_text("kept: Telefon, Position")
    saved = server.call("GET", "/api/templates/CRM%20export")["template"]
    assert saved["mapping"] == {
        "name": ["Vorname", "Nachname"],
        "email": "E-Mail-Adresse",
        "company": None,
        "extra": ["Telefon", "Position"],
    }
    assert (saved["delimiter"], saved["encoding"]) == (";", "cp1252")

    # A second template with the same name is refused with the server's own message.
    form.get_by_label("Name", exact=True).fill("crm export")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("[data-form-error]")).to_contain_text("exists already")
    form.get_by_label("Name", exact=True).fill("Data <b>&amp; co</b>")
    form.get_by_label("Email column").fill("Mail")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("[data-form-error]")).to_have_text("A mapping needs the name column and the email column.")
    form.get_by_label("Name column", exact=True).fill("Kontakt")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("tr[data-template-id]")).to_have_count(2)
    expect(page.get_by_text("Data <b>&amp; co</b>", exact=True)).to_be_visible()  # shown as text, never as HTML

    screenshot(page, "templates-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "templates-375")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("button", name="Edit CRM export").click()
    expect(page.get_by_role("heading", name="Edit “CRM export”")).to_be_visible()
    expect(form.get_by_label("Last name column")).to_have_value("Nachname")
    form.get_by_label("Duplicates").select_option("update")
    form.get_by_label("Extra columns kept").fill("")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="New template")).to_be_visible()
    edited = server.call("GET", "/api/templates/CRM%20export")["template"]
    assert edited["duplicate_policy"] == "update" and edited["mapping"]["extra"] is None
    expect(page.locator(f'tr[data-template-id="{saved["id"]}"]')).to_contain_text("other columns kept")

    page.get_by_role("button", name="Delete CRM export").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator(f'tr[data-template-id="{saved["id"]}"]')).to_have_count(0)
    assert [t["name"] for t in server.call("GET", "/api/templates")["templates"]] == ["Data <b>&amp; co</b>"]

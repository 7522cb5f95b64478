"""Users in a real browser against the real server: signing in and out, a viewer sees no controls it may not
use, an admin sees every control and reads the audit trail."""

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PASSWORD = "correct horse battery"
IMPORTDASH = Path(sys.executable).parent / "importdash"  # the console script, as an operator would run it


def cli(server, *args, input=None):
    """Run `importdash ...` on the server's database, as an operator on that machine would."""
    result = subprocess.run(
        [str(IMPORTDASH), *args], env=server.env, input=input, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory):
    """A folder schedules may read from, so a schedule can be saved for the pages to show."""
    return {"IMPORT_ROOT": str(tmp_path_factory.mktemp("feeds"))}


@pytest.fixture(scope="module")
def admin_key(server):
    """An admin, an operator and a viewer, made with the CLI; the admin's API key, for setting the scene."""
    for name, role in (("grace", "admin"), ("olga", "operator"), ("victor", "viewer")):
        cli(server, "users", "create", name, "--role", role, "--password-stdin", input=PASSWORD + "\n")
    return cli(server, "api-keys", "create", "grace", "--name", "browser tests").strip()


def call(server, key, method, path, body=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, method=method, headers=headers, data=data)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def cancelled_import(server, admin_key):
    """An import cancelled as soon as it started: its page offers Resume to those who may resume."""
    job_id = call(server, admin_key, "POST", "/api/import")["job"]["id"]
    call(server, admin_key, "POST", f"/api/import/{job_id}/cancel")
    return job_id


@pytest.fixture(scope="module")
def saved(server, admin_key):
    """A template and a schedule, for the pages to list."""
    call(server, admin_key, "POST", "/api/templates", {"name": "CRM export"})
    schedule = {"name": "Nightly", "template": "CRM export", "source": "crm.csv", "cron": "0 2 * * *"}
    call(server, admin_key, "POST", "/api/schedules", schedule)


@pytest.fixture
def tab(browser, server, admin_key):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def sign_in(tab, name, password=PASSWORD):
    tab.get_by_label("Name").fill(name)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()


def test_a_browser_is_sent_to_sign_in_and_a_wrong_password_is_refused(tab, screenshot):
    tab.goto("/")

    expect(tab).to_have_url(re.compile(r"/login\?next=/$"))
    screenshot(tab, "accounts-sign-in-desktop")
    sign_in(tab, "victor", "wrong")
    expect(tab.locator("[data-sign-in-error]")).to_have_text("That name and password do not match an enabled user.")
    tab.set_viewport_size({"width": 375, "height": 740})
    screenshot(tab, "accounts-sign-in-phone")


def test_a_viewer_sees_no_start_clear_or_resume_controls(tab, cancelled_import, screenshot):
    tab.goto(f"/imports/{cancelled_import}")
    sign_in(tab, "victor")

    expect(tab).to_have_url(re.compile(rf"/imports/{cancelled_import}$"))
    expect(tab.locator("[data-status]")).to_have_text("Cancelled")
    expect(tab.locator("[data-signed-in]")).to_have_text("victor · viewer")
    expect(tab.get_by_role("button", name="Resume import")).to_be_hidden()
    tab.goto("/")
    expect(tab.locator("[data-history-rows] tr")).to_have_count(1)
    expect(tab.locator("[data-import]")).to_have_count(0)
    expect(tab.get_by_role("button", name="Clear records")).to_have_count(0)
    expect(tab.get_by_role("link", name="Audit trail")).to_have_count(0)
    screenshot(tab, "accounts-viewer-desktop")
    tab.set_viewport_size({"width": 375, "height": 740})
    screenshot(tab, "accounts-viewer-phone")
    # The API refuses what the page leaves out.
    status = tab.evaluate("fetch('/api/import', {method: 'POST'}).then((response) => response.status)")
    assert status == 403


def test_an_operator_may_start_and_resume_but_not_clear(tab, cancelled_import):
    tab.goto("/login")
    sign_in(tab, "olga")

    expect(tab.locator("[data-import]")).to_have_count(3)
    expect(tab.get_by_role("button", name="Clear records")).to_have_count(0)
    tab.goto(f"/imports/{cancelled_import}")
    expect(tab.get_by_role("button", name="Resume import")).to_be_visible()


def test_an_admin_reads_the_audit_trail_filters_it_and_signs_out(tab, server, cancelled_import, screenshot):
    tab.goto("/login")
    sign_in(tab, "grace")
    expect(tab.get_by_role("button", name="Clear records")).to_be_visible()

    tab.get_by_role("link", name="Audit trail").click()

    expect(tab).to_have_url(re.compile(r"/audit$"))
    rows = tab.locator("[data-audit-rows] tr")
    expect(rows.first).to_contain_text("session.sign_in")
    expect(tab.locator("[data-audit-rows]")).to_contain_text("import.cancel")
    expect(tab.locator("[data-audit-rows]")).to_contain_text("cli:")
    screenshot(tab, "accounts-audit-desktop")
    tab.get_by_label("Action").fill("import")
    tab.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)  # the start and the cancel, newest first
    expect(rows.nth(0)).to_contain_text("import.cancel")
    expect(rows.nth(1)).to_contain_text(f"import:{cancelled_import}")
    expect(tab.get_by_role("link", name="Download CSV")).to_have_attribute("href", "/api/audit.csv?action=import")
    tab.set_viewport_size({"width": 375, "height": 740})
    screenshot(tab, "accounts-audit-phone")

    tab.get_by_role("button", name="Sign out").click()

    expect(tab).to_have_url(re.compile(r"/login$"))
    tab.goto("/audit")
    expect(tab).to_have_url(re.compile(r"/login\?next=/audit$"))


JOB_CONTROLS = ["Pause", "Unpause", "Cancel import", "Retry failed", "Resume import", "Delete import", "Set priority"]


def test_a_viewer_sees_no_job_template_schedule_or_downstream_controls(tab, cancelled_import, saved, screenshot):
    tab.goto(f"/imports/{cancelled_import}")
    sign_in(tab, "victor")

    expect(tab.locator("[data-status]")).to_have_text("Cancelled")
    for name in JOB_CONTROLS:
        expect(tab.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(tab.locator("[data-resend-notifications]")).to_have_count(0)
    expect(tab.get_by_role("link", name="Compare with another import")).to_be_visible()
    screenshot(tab, "accounts-viewer-job-desktop")
    tab.goto("/")
    expect(tab.locator("[data-downstream-breaker]")).not_to_have_text("–")
    expect(tab.get_by_role("button", name="Test downstream")).to_have_count(0)
    tab.goto("/templates")
    expect(tab.locator("[data-templates-rows]")).to_contain_text("CRM export")
    expect(tab.get_by_role("button", name="Edit CRM export")).to_have_count(0)
    expect(tab.get_by_role("button", name="Save template")).to_have_count(0)
    screenshot(tab, "accounts-viewer-templates-desktop")
    tab.goto("/schedules")
    expect(tab.locator("[data-schedules-rows]")).to_contain_text("Nightly")
    expect(tab.get_by_role("button", name="Show the runs of Nightly")).to_be_visible()
    for name in ["Run Nightly now", "Pause Nightly", "Edit Nightly", "Delete Nightly"]:
        expect(tab.get_by_role("button", name=name)).to_have_count(0)
    expect(tab.get_by_role("button", name="Save schedule")).to_have_count(0)
    tab.set_viewport_size({"width": 375, "height": 740})
    screenshot(tab, "accounts-viewer-schedules-phone")
    tab.goto(f"/imports/{cancelled_import}")
    expect(tab.locator("[data-status]")).to_have_text("Cancelled")
    screenshot(tab, "accounts-viewer-job-phone")


def test_an_operator_may_delete_imports_edit_templates_and_check_the_downstream_but_not_change_schedules(
    tab, cancelled_import, saved
):
    tab.goto(f"/imports/{cancelled_import}")
    sign_in(tab, "olga")

    expect(tab.get_by_role("button", name="Delete import")).to_be_visible()
    expect(tab.get_by_role("button", name="Pause")).to_be_hidden()  # on the page, but not for an ended import
    tab.goto("/")
    expect(tab.get_by_role("button", name="Test downstream")).to_be_visible()
    tab.goto("/templates")
    expect(tab.get_by_role("button", name="Edit CRM export")).to_be_visible()
    tab.goto("/schedules")
    expect(tab.locator("[data-schedules-rows]")).to_contain_text("Nightly")
    expect(tab.get_by_role("button", name="Run Nightly now")).to_have_count(0)

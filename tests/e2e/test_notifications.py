"""The job page's Notifications section in a real browser against the real server, whose background sender
posts a signed webhook to a loopback receiver and fails to reach a mail server that is not there."""

import hashlib
import hmac
import json
import time

import pytest
from servers import free_port
from webhook_receiver import Receiver

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}
SECRET = "e2e-secret"


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server_settings(receiver):
    return {
        "NOTIFY_WEBHOOK_URL": receiver.url,
        "NOTIFY_WEBHOOK_SECRET": SECRET,
        "NOTIFY_EMAIL_TO": "ops@example.com",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": free_port(),  # nothing listens there
        "NOTIFY_MAX_ATTEMPTS": 1,
        "NOTIFY_POLL_SECONDS": 0.2,
        "PUBLIC_URL": "https://imports.example.com",
    }


def wait_for(condition, timeout=15):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_job_page_lists_its_notifications_and_sends_failed_ones_again(page, server, receiver, screenshot):
    job = server.run_import("/api/import")["job"]
    wait_for(lambda: all(item["status"] != "pending" for item in notifications(server, job["id"])))

    page.goto(f"/imports/{job['id']}")
    section = page.locator("[data-notifications]")
    expect(section.get_by_role("heading", name="Notifications")).to_be_visible()
    rows = section.locator("tr[data-notification]")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Webhook")
    expect(rows.nth(0)).to_contain_text(receiver.url.split("?")[0])
    expect(rows.nth(0)).not_to_contain_text("token=")  # the URL's query may hold a secret: never shown
    expect(rows.nth(0)).to_contain_text("Sent")
    expect(rows.nth(1)).to_contain_text("ops@example.com")
    expect(rows.nth(1)).to_contain_text("Failed")
    expect(rows.nth(1)).to_contain_text("The mail server could not be reached (connection refused).")
    expect(section.locator("[data-notifications-note]")).to_have_text("1 of 2 sent")
    screenshot(page, "notifications-job-1280")

    # The receiver got the summary, signed with the shared secret over "timestamp.body".
    headers, body = receiver.requests[-1]
    signed = f"{headers['X-Importdash-Timestamp']}.".encode() + body
    expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Importdash-Signature"], expected)
    assert json.loads(body)["links"]["job"] == f"https://imports.example.com/imports/{job['id']}"

    page.set_viewport_size(PHONE)
    expect(rows.nth(1)).to_contain_text("connection refused")
    screenshot(page, "notifications-job-375")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("button", name="Send failed notifications again").click()
    expect(page.locator("[data-notice]")).to_contain_text("1 failed notification goes out again.")
    # Sent again (and failed again, the mail server is still away): the list follows without a reload.
    wait_for(lambda: notifications(server, job["id"])[1]["status"] == "failed")
    expect(rows.nth(1)).to_contain_text("Failed")
    expect(section.get_by_role("button", name="Send failed notifications again")).to_be_visible()


def test_a_template_takes_its_notification_settings_on_its_page(page, server, screenshot):
    page.goto("/templates")
    form = page.locator("[data-template-form]")  # the header's preview dialog has fields of the same names
    name = f"Partner feed {time.monotonic_ns()}"
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Webhook URL").fill("https://hooks.example.com/imports?token=abc")
    form.get_by_label("Email addresses").fill("ops@example.com\ncrm@example.com")
    form.get_by_label("fails").check()
    form.get_by_label("is cancelled").check()
    page.get_by_role("button", name="Save template").click()

    row = page.locator("tr[data-template-id]", has_text=name)
    expect(row).to_contain_text("webhook, ops@example.com, crm@example.com (failed, cancelled)")
    saved = next(item for item in server.call("GET", "/api/templates")["templates"] if item["name"] == name)
    assert saved["notify_webhook_url"] == "https://hooks.example.com/imports?token=abc"
    assert saved["notify_email"] == ["ops@example.com", "crm@example.com"]
    assert saved["notify_on"] == ["failed", "cancelled"]

    row.get_by_role("button", name="Edit").click()
    screenshot(page, "notifications-template-form-1280")
    page.set_viewport_size(PHONE)
    expect(form.get_by_label("Webhook URL")).to_be_visible()
    screenshot(page, "notifications-template-form-375")
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(form.get_by_label("Email addresses")).to_have_value("ops@example.com\ncrm@example.com")
    expect(form.get_by_label("fails")).to_be_checked()
    expect(form.get_by_label("completes", exact=True)).not_to_be_checked()
    form.get_by_label("Email addresses").fill("not an address")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("[data-form-error]")).to_contain_text("is not an email address")


def notifications(server, job_id):
    return server.call("GET", f"/api/import/{job_id}/notifications")["notifications"]

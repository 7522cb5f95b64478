"""The analytics and comparison pages in a real browser against the real server, with its CSP on."""

import csv
import io
import re
from pathlib import Path

import pytest

from importdash.config import Config

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}

# Violations of the page's Content-Security-Policy, as the browser reports them to the page.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) =>
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""

# Draw each loaded chart on a canvas and count its pixels near the app's accent colour (#4f46e5, the first
# series): pygal's stylesheet inside the SVG gives series their colours, so an SVG whose styles were blocked
# would draw its bars and lines black.
ACCENT_PIXELS = """
(image) => {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [red, green, blue] = data.slice(i, i + 3);
    if (Math.abs(red - 0x4f) < 40 && Math.abs(green - 0x46) < 40 && Math.abs(blue - 0xe5) < 40) count++;
  }
  return count;
}
"""


@pytest.fixture
def console_errors(page):
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.add_init_script(RECORD_VIOLATIONS)
    return errors


def imports(server, count):
    return [server.run_import("/api/import")["job"]["id"] for _ in range(count)]


def test_the_charts_render_as_styled_images_under_the_csp(page, server, console_errors, screenshot):
    first, second = imports(server, 2)

    page.goto("/analytics?days=7")

    charts = page.locator(".charts img")
    expect(charts).to_have_count(6)
    throughput = page.locator('[data-chart="throughput"] img')
    expect(throughput).to_have_attribute("src", f"/analytics/charts/imports/{second}/throughput.svg")
    for image in [*charts.all(), throughput]:
        image.scroll_into_view_if_needed()
        page.wait_for_function("(image) => image.complete && image.naturalWidth > 0", arg=image.element_handle())
        assert image.evaluate(ACCENT_PIXELS) > 10, image.get_attribute("src")
    expect(page.locator("[data-total-imports]")).to_have_text("2")
    expect(page.locator("[data-total-rows]")).to_have_text("2,000")
    assert page.evaluate("window.__violations") == []
    assert console_errors == []

    screenshot(page, "analytics-desktop")
    page.set_viewport_size(PHONE)
    # Phones get each chart drawn narrower (<picture>), so its text keeps a readable size.
    page.wait_for_function(
        """() => [...document.querySelectorAll(".chart img")].every(
             (image) => image.currentSrc.includes("compact=1") && image.complete && image.naturalWidth > 0)"""
    )
    screenshot(page, "analytics-375")

    page.set_viewport_size(DESKTOP)
    page.get_by_label("Import", exact=True).select_option(str(first))
    expect(page).to_have_url(re.compile(rf"job={first}"))
    expect(throughput).to_have_attribute("src", f"/analytics/charts/imports/{first}/throughput.svg")
    page.get_by_role("link", name="Last 30 days").click()
    expect(page.get_by_role("link", name="Last 30 days")).to_have_attribute("aria-current", "page")
    expect(page).to_have_url(re.compile(rf"days=30&job={first}$"))


def test_two_imports_are_compared_from_the_job_page_with_pickers(page, server, console_errors, screenshot):
    first, second = imports(server, 2)

    page.goto(f"/imports/{second}")
    page.get_by_role("link", name="Compare with another import").click()
    expect(page.get_by_label("Import A")).to_have_value(str(second))
    page.get_by_label("Import B").select_option(str(first))
    page.get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(rf"/compare\?a={second}&b={first}$"))
    body = server.call("GET", f"/api/compare?a={second}&b={first}")
    counts = body["counts"]
    for kind in ("only_a", "only_b", "changed"):
        expect(page.locator(f'[data-difference="{kind}"] .difference__count')).to_have_text(f"{counts[kind]:,}")
    expect(page.locator('[data-difference="only_a"]')).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("link", name="Download differences (CSV)")).to_have_attribute(
        "href", f"/api/compare.csv?a={second}&b={first}"
    )
    assert counts["same"] > 900 and counts["changed"] == 0
    expect(page.get_by_text(f"{counts['same']:,} are the same in both")).to_be_visible()
    screenshot(page, "compare-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "compare-375")
    assert page.evaluate("window.__violations") == []
    assert console_errors == []


def test_rows_only_in_one_import_and_changed_rows_are_listed_and_paged(page, server, tmp_path, screenshot):
    first = server.run_import("/api/import")["job"]["id"]
    # Ten of the sample's contacts (ten emails) again with another company, then 120 new ones.
    sample = csv.DictReader(io.StringIO(Path(Config.SAMPLE_FILE).read_text(encoding="utf-8")))
    distinct = {row["email"].strip().lower(): row for row in reversed(list(sample)) if "@" in row["email"]}
    again = list(reversed(distinct.values()))[:10]  # each email's first row (the sample repeats a few)
    upload = tmp_path / "fresh.csv"
    with upload.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "email", "company"])
        writer.writerows([row["name"], row["email"], "Moved Co"] for row in again)
        writer.writerows([f"Person {n}", f"person{n}@fresh.example", "Co"] for n in range(120))
    page.goto("/")
    page.locator("[data-file-input]").set_input_files(upload)
    page.get_by_role("button", name="Start import (Batch)").click()
    page.wait_for_url(re.compile(r"/imports/\d+$"))
    second = int(page.url.rsplit("/", 1)[1])
    server.wait_until_idle()

    page.goto(f"/compare?a={first}&b={second}&show=only_b")
    table = page.locator("[data-compare-rows] tbody tr")
    expect(table).to_have_count(100)
    expect(table.first).to_contain_text("person0@fresh.example")
    expect(page.locator("[data-compare-note]")).to_have_text("Showing 1–100 of 120")
    page.get_by_role("link", name="Next").click()
    expect(table).to_have_count(20)
    expect(page.locator("[data-compare-note]")).to_have_text("Showing 101–120 of 120")

    page.locator('[data-difference="changed"]').click()
    expect(page.locator('[data-difference="changed"] .difference__count')).to_have_text("10")
    expect(table).to_have_count(10)
    expect(table.first).to_contain_text("company")
    expect(table.first).to_contain_text("Moved Co")
    screenshot(page, "compare-changed-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "compare-changed-375")

"""One import's page in a real browser against the real server (issue #14): how it ended, a running stream's
estimate, stale figures, cancel and delete with a confirmation, retries on lines of their own, the errors paged and
searched, the phone layout, and the keyboard."""

import re
from urllib.parse import quote

import pytest
from conftest import Server
from conftest import _stop as stop_server
from scripted_downstream import Reply, ScriptedDownstream
from servers import server_env

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}


def start_import(page, path, mode="Stream"):
    """Import a file through the page's picker and its preview, as a person would, and return the new import's id."""
    page.goto("/")
    page.locator("[data-file-input]").set_input_files(path)
    page.get_by_role("button", name=f"Start import ({mode})").click()
    page.wait_for_url(re.compile(r"/imports/\d+$"))
    return int(re.search(r"/imports/(\d+)", page.url).group(1))


def contacts(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("name,email\n" + "".join(f"{row}\n" for row in rows))
    return path


def page_width(page):
    return page.evaluate("document.documentElement.scrollWidth")


def test_three_endings_read_apart_in_words_icons_and_colour_on_the_page_and_in_the_history(page, tmp_path, screenshot):
    clean = contacts(tmp_path, "clean.csv", [f"Fine {n},fine{n}@example.com" for n in range(3)])
    mixed = contacts(tmp_path, "mixed.csv", ["Fine,one@example.com", "Blocked,two@blocked.example"])
    hopeless = contacts(tmp_path, "hopeless.csv", ["Bad,not-an-email", "Worse,", "Blocked,b@blocked.example"])
    endings = {}
    for path, text in [
        (clean, "Completed"),
        (mixed, "Completed with failures"),
        (hopeless, "Nothing succeeded"),
    ]:
        job_id = start_import(page, path)
        status = page.locator("[data-status]")
        expect(status).to_have_text(text)
        endings[job_id] = (text, status.get_attribute("class"), status.get_attribute("data-icon"))
    assert len({look for _text, look, _icon in endings.values()}) == 3  # three colours
    assert len({icon for _text, _look, icon in endings.values()}) == 3  # three icons
    screenshot(page, "job-nothing-succeeded-desktop")

    page.goto("/")
    for job_id, (text, look, icon) in endings.items():
        badge = page.locator(f'tr[data-job-id="{job_id}"] .badge')
        expect(badge).to_have_text(text)
        assert (badge.get_attribute("class"), badge.get_attribute("data-icon")) == (look, icon)
    screenshot(page, "history-endings-desktop")


def test_a_running_stream_shows_an_estimate_never_a_full_bar_and_fits_a_phone(page, tmp_path, screenshot):
    big = contacts(tmp_path, "big.csv", [f"Person {n},person{n}@example.com" for n in range(3000)])
    page.set_viewport_size(PHONE)
    start_import(page, big)

    expect(page.locator("[data-headline]")).to_have_text(re.compile(r"^≈ \d+%$"))
    expect(page.locator("[data-subline]")).to_contain_text("of about 3,000 rows processed (estimated")
    expect(page.locator("[data-eta]")).to_have_text(re.compile(r"^about .+ \(estimate\)$"))
    bar = page.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuetext", re.compile(r"of an estimated 3,000 rows"))
    # A phone shows the whole page, the "Live" badge included.
    assert page_width(page) == PHONE["width"]
    live = page.locator("[data-live]")
    expect(live).to_have_text("Live")
    box = live.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    screenshot(page, "job-running-375")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "job-running-desktop")

    shares = []
    while page.locator("[data-status]").text_content() != "Completed":
        filled = page.evaluate(
            """() => [...document.querySelectorAll("[data-bar] span")]
                .reduce((sum, part) => sum + part.getBoundingClientRect().width, 0)
                / document.querySelector("[data-bar]").getBoundingClientRect().width"""
        )
        done = page.locator("[data-status]").text_content() == "Completed"
        if not done:
            shares.append(filled)
            assert page.locator("[data-headline]").text_content() != "100%"
        page.wait_for_timeout(200)
    assert shares and max(shares) < 0.995, shares  # never full before the end
    expect(page.locator("[data-headline]")).to_have_text("100%")
    expect(bar).to_have_attribute("aria-valuemax", "3000")
    expect(page.locator("[data-eta-stat]")).to_be_hidden()


def test_figures_are_marked_stale_while_the_stream_is_down_and_live_again_after(page, tmp_path, screenshot):
    big = contacts(tmp_path, "stale.csv", [f"Person {n},p{n}@example.com" for n in range(3000)])
    job_id = start_import(page, big)
    expect(page.locator("[data-live]")).to_have_text("Live")
    refuse = '{"error": {"code": "too_many_streams", "message": "Too many live streams are open."}}'
    events = f"**/api/import/{job_id}/events"
    page.route(events, lambda route: route.fulfill(status=503, body=refuse, content_type="application/json"))

    page.reload()  # its stream is refused now, as when the server has too many open

    expect(page.locator("[data-live]")).to_have_text("Reconnecting…")
    expect(page.locator("[data-stale]")).to_contain_text("not live")
    expect(page.locator("[data-progress]")).to_have_class(re.compile(r"\bis-stale\b"))
    expect(page.locator("[data-rate]")).to_have_text("–")
    expect(page.locator("[data-eta-stat]")).to_be_hidden()
    screenshot(page, "job-stale-desktop")
    page.set_viewport_size(PHONE)
    assert page_width(page) == PHONE["width"]
    screenshot(page, "job-stale-375")

    page.unroute(events)
    expect(page.locator("[data-live]")).to_have_text("Live", timeout=30_000)
    expect(page.locator("[data-stale]")).to_be_hidden()
    expect(page.locator("[data-progress]")).not_to_have_class(re.compile(r"\bis-stale\b"))
    expect(page.locator("[data-rate]")).not_to_have_text("–")
    page.request.post(f"/api/import/{job_id}/cancel")


def test_cancel_asks_first_then_counts_the_rows_it_stopped_and_rates_only_what_was_sent(page, tmp_path, screenshot):
    big = contacts(tmp_path, "cancel.csv", [f"Person {n},c{n}@example.com" for n in range(4000)])
    start_import(page, big, mode="Batch")
    expect(page.locator("[data-success]")).not_to_have_text("0")

    cancel = page.get_by_role("button", name="Cancel import")
    cancel.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Keep importing").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("[data-status]")).to_have_text("Processing")

    page.set_viewport_size(PHONE)
    cancel.click()
    screenshot(page, "job-cancel-dialog-375")
    dialog.get_by_role("button", name="Cancel import").click()
    page.set_viewport_size(DESKTOP)

    expect(page.locator("[data-status]")).to_have_text("Cancelled")
    expect(page.locator("[data-cancelling]")).to_be_hidden()
    cancelled = page.locator("[data-cancelled]")
    expect(cancelled).to_be_visible()
    stopped = int(cancelled.text_content().replace(",", ""))
    assert stopped > 0
    expect(page.locator("[data-subline]")).to_contain_text(f"{stopped:,} cancelled before they were sent")
    # 20 calls/s of 16 rows: over the rows sent, the rate stays near that limit; the cancelled rows would lift it.
    shown_rate = int(page.locator("[data-rate]").text_content().split()[0].replace(",", ""))
    assert 0 < shown_rate <= 20 * 16 * 1.25
    screenshot(page, "job-cancelled-confirmed-desktop")

    page.goto("/")
    expect(page.locator("tbody tr").first).to_contain_text(f"{stopped:,} not sent")


def test_each_retry_is_a_line_of_its_own_and_leaves_the_imports_own_timings(page, tmp_path, screenshot):
    refused = contacts(
        tmp_path, "refused.csv", ["Good,good@example.com"] + [f"Blocked {n},b{n}@blocked.example" for n in range(3)]
    )
    start_import(page, refused)
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")
    elapsed = page.locator("[data-elapsed]").text_content()
    rate = page.locator("[data-rate]").text_content()
    page.wait_for_timeout(1500)  # so that a retry counted into the import's time would show

    retry = page.get_by_role("button", name="Retry 3 failed deliveries")
    retry.click()

    line = page.locator("[data-retry-runs] li")
    expect(line).to_have_count(1)
    expect(line).to_contain_text(re.compile(r"Retry 1, .+: re-sent 3 rows; 0 now succeeded, 3 failed again\."))
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")
    expect(page.locator("[data-elapsed]")).to_have_text(elapsed)
    expect(page.locator("[data-rate]")).to_have_text(rate)
    expect(page.locator("[data-failed]")).to_have_text("3")  # the simulator refuses that domain again
    expect(line.locator("time")).to_have_attribute("title", re.compile(r"\d"))
    # The refused rows can be sent again; the button stays, and says how many.
    expect(retry).to_be_visible()
    screenshot(page, "job-retried-desktop")


def test_with_nothing_left_to_retry_the_page_says_so_instead_of_a_button(page, tmp_path):
    odd = contacts(tmp_path, "fine.csv", ["Fine,fine@example.com", "Fine again,FINE@example.com"])
    start_import(page, odd)
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")
    expect(page.get_by_role("button", name=re.compile("Retry"))).to_be_hidden()
    expect(page.locator("[data-retry-note]")).to_be_hidden()  # nothing was ever refused: nothing to explain


def test_errors_are_paged_searched_and_a_phone_page_stays_short(page, server, screenshot):
    state = server.run_import()
    job_id = state["job"]["id"]
    total = state["job"]["failed_count"]
    page.goto(f"/imports/{job_id}")
    rows = page.locator("[data-error-rows] tr")
    expect(rows).to_have_count(20)
    position = page.locator("[data-page-position]")
    expect(position).to_have_text(f"1–20 of {total}")
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()

    page.get_by_role("button", name="Next").click()
    expect(position).to_have_text(f"21–40 of {total}")
    first_of_second = rows.first.locator("td").first.text_content()
    errors = server.call("GET", f"/api/import/{job_id}/errors?limit=1&offset=20")["errors"]
    assert first_of_second == f"{errors[0]['row']:,}"

    search = page.get_by_role("searchbox", name="Search the errors")
    email = errors[0]["data"]["email"] or errors[0]["data"]["name"]
    search.fill(email)
    expect(rows.first).to_contain_text(email)
    matched = server.call("GET", f"/api/import/{job_id}/errors?q={quote(email)}")["total"]
    expect(page.locator("[data-errors-note]")).to_contain_text(f"{matched} ")
    expect(rows).to_have_count(min(matched, 20))
    search.fill("")
    expect(position).to_have_text(f"1–20 of {total}")

    page.set_viewport_size(PHONE)
    expect(position).to_have_text(f"1–10 of {total}")  # a phone pages by 10: each error is a card there
    expect(rows).to_have_count(10)
    assert page_width(page) == PHONE["width"]
    # 100 errors once made the phone page 12,600 px: the list is a page of 10 cards now, whatever the total.
    height = page.locator("section[aria-labelledby=errors-title]").bounding_box()["height"]
    assert height < 2500, height
    screenshot(page, "job-errors-375")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "job-errors-desktop")


def test_an_import_is_deleted_from_its_page_with_the_keyboard_after_a_confirmation(page, server, tmp_path):
    path = contacts(tmp_path, "gone.csv", ["One,one@example.com", "Two,two@blocked.example"])
    job_id = start_import(page, path)
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")
    results = page.get_by_role("link", name="Download results (CSV)")
    response = page.request.get(results.get_attribute("href"))
    lines = response.text().lstrip("\ufeff").strip().splitlines()
    assert lines[0] == "row,name,email,company,status,attempts,response" and len(lines) == 3

    delete = page.get_by_role("button", name="Delete import")
    delete.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # a second thought: nothing happens, the focus comes back
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0)
    assert page.request.get(f"/api/import/{job_id}").status == 404


@pytest.fixture
def refusing_once(browser, tmp_path):
    """A page on a server of its own whose webhook downstream refuses each @later.example row once, then takes it."""
    downstream = ScriptedDownstream()
    seen = set()

    def rule(records):
        later = [record["key"] for record in records if record["email"].endswith("@later.example")]
        refuse = {key: "try later" for key in later if key not in seen}
        seen.update(refuse)
        return Reply(refuse=refuse)

    downstream.rule = rule
    folder = tmp_path / "server"
    env = server_env(folder, f"sqlite:///{folder / 'e2e.db'}", DOWNSTREAM="webhook", WEBHOOK_URL=downstream.url)
    server = Server(env, folder / "gunicorn.log")
    context = None
    try:
        server.start()
        context = browser.new_context(viewport=DESKTOP, base_url=server.url)
        context.set_default_timeout(15_000)
        yield context.new_page()
    finally:
        if context is not None:
            context.close()
        stop_server(server)
        downstream.close()


def test_once_every_failure_is_retried_the_button_goes_and_the_page_says_why(refusing_once, tmp_path, screenshot):
    page = refusing_once
    rows = ["Now,now@example.com", "Later 1,l1@later.example", "Later 2,l2@later.example"]
    path = contacts(tmp_path, "later.csv", rows)
    start_import(page, path)
    expect(page.locator("[data-status]")).to_have_text("Completed with failures")

    page.get_by_role("button", name="Retry 2 failed deliveries").click()

    expect(page.locator("[data-retry-runs] li")).to_contain_text("re-sent 2 rows; 2 now succeeded, 0 failed again")
    expect(page.locator("[data-status]")).to_have_text("Completed")
    expect(page.get_by_role("button", name=re.compile("Retry"))).to_be_hidden()
    expect(page.locator("[data-retry-note]")).to_contain_text("Nothing left to retry")
    screenshot(page, "job-nothing-left-to-retry-desktop")

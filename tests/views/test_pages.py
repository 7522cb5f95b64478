"""The dashboard's pages: what they render, and that they hold no inline code a strict CSP would block."""

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from importdash.config import PROJECT_ROOT
from importdash.extensions import db
from importdash.services.jobs import job_state


class Tags(HTMLParser):
    """Collect every start tag with its attributes, and the text of <script> elements."""

    def __init__(self, html):
        super().__init__()
        self.tags, self.scripts, self._in_script = [], [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append([self._in_script, ""])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self.scripts[-1][1] += data


def page(client, url):
    response = client.get(url, headers={"Accept": "text/html"})
    assert response.status_code == 200 and response.mimetype == "text/html"
    return Tags(response.get_data(as_text=True))


def test_the_dashboard_offers_the_imports_and_a_live_history(client):
    tags = page(client, "/")

    buttons = {attrs["data-import"]: attrs["data-url"] for tag, attrs in tags.tags if "data-import" in attrs}
    assert buttons == {"default": "/api/import", "batch": "/api/import/batch", "stream": "/api/import/stream"}
    history = next(attrs for _, attrs in tags.tags if "data-history" in attrs)
    assert history["data-events-url"] == "/api/events" and history["data-jobs-url"] == "/api/import"
    assert ("script", {"type": "module", "src": "/static/js/dashboard.js"}) in tags.tags
    assert not any("back-link" in attrs.get("class", "") for _, attrs in tags.tags)


def test_a_job_page_starts_from_the_jobs_state_and_links_back(client, make_job):
    job = make_job(mode="stream")
    tags = page(client, f"/imports/{job.id}")

    data_blocks = [text for attrs, text in tags.scripts if attrs.get("type") == "application/json"]
    assert [json.loads(text) for text in data_blocks] == [json.loads(json.dumps(job_state(db.session, job.id)))]
    job_div = next(attrs for _, attrs in tags.tags if "data-job" in attrs)
    assert job_div["data-events-url"] == f"/api/import/{job.id}/events"
    assert job_div["data-errors-url"] == f"/api/import/{job.id}/errors"
    categories = [attrs["data-category"] for _, attrs in tags.tags if "data-category" in attrs]
    assert categories == ["duplicate", "missing_value", "invalid_format", "other"]
    assert any("back-link" in attrs.get("class", "") for _, attrs in tags.tags)


def test_an_unknown_job_page_is_a_404_page(client):
    response = client.get("/imports/999", headers={"Accept": "text/html"})

    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "No import #999." in response.get_data(as_text=True)


def test_values_from_files_are_escaped(client, make_job):
    job = make_job(source='<img src=x onerror="alert(1)">.csv')
    html = client.get(f"/imports/{job.id}").get_data(as_text=True)

    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=" in html  # the heading
    assert "\\u003cimg src=x" in html  # the JSON block


@pytest.mark.parametrize("url", ["/", "/imports/{job_id}"])
def test_pages_hold_no_inline_code_or_styles(client, make_job, url):
    tags = page(client, url.format(job_id=make_job().id))

    for tag, attrs in tags.tags:
        assert tag != "style"
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
    for attrs, text in tags.scripts:
        assert attrs.get("src") or attrs.get("type") == "application/json", text
        assert not (attrs.get("src") and text.strip())


def test_scripts_never_write_html():
    sources = {path.name: path.read_text() for path in Path(PROJECT_ROOT, "static", "js").glob("*.js")}

    assert sources
    for name, source in sources.items():
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{name} uses {sink}"


@pytest.mark.parametrize("accept", [None, "*/*", "text/html, application/json", "application/json;q=0.5, */*;q=0.5"])
def test_unknown_pages_answer_html_with_a_way_back_on_a_tie(client, accept):
    headers = {"Accept": accept} if accept else {}
    for method, url, status in (("GET", "/imports/9999", 404), ("GET", "/nowhere", 404), ("DELETE", "/", 405)):
        response = client.open(url, method=method, headers=headers)
        assert (response.status_code, response.mimetype) == (status, "text/html"), (url, accept)
        tags = Tags(response.get_data(as_text=True))
        assert ("a", {"class": "button button--primary", "href": "/"}) in tags.tags


def test_pages_answer_json_to_clients_that_prefer_it_and_the_api_always_does(client):
    response = client.get("/imports/9999", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    for accept in ("*/*", "text/html"):
        response = client.get("/api/import/9999", headers={"Accept": accept})
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_the_dashboard_links_the_api_page_which_documents_every_operation(client):
    dashboard = page(client, "/")
    assert any(tag == "a" and attrs.get("href") == "/docs" for tag, attrs in dashboard.tags)

    docs = page(client, "/docs")
    spec = client.get("/api/openapi.json").get_json()
    anchors = {attrs["id"] for tag, attrs in docs.tags if tag == "article" and "id" in attrs}
    operations = {operation["operationId"] for item in spec["paths"].values() for operation in item.values()}
    assert operations <= anchors
    assert {f"schema-{name}" for name in spec["components"]["schemas"]} <= anchors
    html = client.get("/docs").get_data(as_text=True)
    assert "one of pending, processing, completed, failed, cancelled" in html  # the history's status filter
    assert any("back-link" in attrs.get("class", "") for _, attrs in docs.tags)


def test_the_api_page_holds_no_inline_code(client):
    tags = page(client, "/docs")
    for tag, attrs in tags.tags:
        assert tag != "style" and "style" not in attrs
    assert all(attrs.get("src") for attrs, _text in tags.scripts)


def default_button(client):
    return [attrs for _, attrs in page(client, "/").tags if attrs.get("data-import") == "default"]


@pytest.mark.parametrize("app_config", [dict(DOWNSTREAM="webhook", WEBHOOK_URL="http://127.0.0.1:9/contacts")])
def test_with_a_webhook_the_demo_import_is_hidden_and_refused(client):
    assert default_button(client) == []
    for url in ("/api/import", "/api/import/batch", "/api/import/stream"):  # no file: the bundled sample
        response = client.post(url)
        assert response.status_code == 403, url
        error = response.get_json()["error"]
        assert error["code"] == "demo_import_disabled" and "IMPORTDASH_DEMO=1" in error["message"]
    assert client.get("/api/import").get_json()["total"] == 0


@pytest.mark.parametrize(
    "app_config", [dict(DOWNSTREAM="webhook", WEBHOOK_URL="http://127.0.0.1:9/contacts", DEMO=True)]
)
def test_with_a_webhook_and_demo_on_the_demo_import_is_offered(client):
    assert len(default_button(client)) == 1
    assert client.post("/api/import").status_code == 202

"""The one error shape when the database does not answer: a 503 the client can retry, never a 500."""

import socket
import sqlite3

import pytest

from importdash import create_app
from importdash.extensions import db
from importdash.runtime import stop_background


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe is closed


@pytest.fixture
def unreachable_client(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/importdash",
            "CREATE_DB_ON_START": False,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        }
    )
    yield app.test_client()
    stop_background(app, wait=True)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/import"),
        ("GET", "/api/import/1"),
        ("GET", "/api/import/1/errors"),
        ("GET", "/api/records"),
        ("POST", "/api/import"),
        ("POST", "/api/import/1/cancel"),
        ("DELETE", "/api/records?confirm=true"),
    ],
)
def test_while_the_database_is_unreachable_the_api_answers_503_with_retry_after(unreachable_client, method, url):
    response = unreachable_client.open(url, method=method)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    error = response.get_json()["error"]
    assert error["code"] == "database_unavailable"
    assert "127.0.0.1" not in error["message"] and "psycopg" not in error["message"]


def test_a_page_says_so_in_html(unreachable_client):
    response = unreachable_client.get("/imports/1", headers={"Accept": "text/html"})

    assert response.status_code == 503 and response.mimetype == "text/html"
    assert b"not answering" in response.data


def test_health_says_the_database_is_unreachable(unreachable_client):
    response = unreachable_client.get("/health")

    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "database": "unreachable"}


@pytest.mark.parametrize("app_config", [{"SQLITE_BUSY_TIMEOUT_MS": 50}])
def test_a_write_that_waits_out_sqlites_busy_timeout_is_a_503(app, client):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite lock")
    holder = sqlite3.connect(db.engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long write by another process would
    try:
        response = client.post("/api/import")
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert client.get("/api/import").get_json()["total"] == 0
    assert client.post("/api/import").status_code == 202  # and once the lock is gone, it works again

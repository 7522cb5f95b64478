"""The database binding: SQLite connections get the configured pragmas; each process's pool keeps its budget; a
background run's session keeps one connection on SQLite and takes pooled ones elsewhere."""

import time
from contextlib import ExitStack

import pytest
from sqlalchemy import text

from importdash.config import BACKGROUND_CONNECTIONS
from importdash.extensions import db, run_session


def test_sqlite_connections_use_the_configured_checkpoint_and_cache_sizes(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    assert db.session.execute(text("PRAGMA wal_autocheckpoint")).scalar() == app.config["SQLITE_CHECKPOINT_PAGES"]
    assert db.session.execute(text("PRAGMA cache_size")).scalar() == -1024 * app.config["SQLITE_CACHE_MB"]
    assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.mark.parametrize("app_config", [{"DATABASE_STATEMENT_TIMEOUT_SECONDS": 42, "DATABASE_TCP_TIMEOUT_SECONDS": 6}])
def test_postgresql_connections_carry_the_configured_timeouts(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL connection settings")
    assert db.session.execute(text("SHOW statement_timeout")).scalar() == "42s"
    connect_args = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert (connect_args["tcp_user_timeout"], connect_args["keepalives"], connect_args["connect_timeout"]) == (
        6000,
        1,
        5,
    )


POOL = {"MAX_JOBS": 2, "DATABASE_REQUEST_CONNECTIONS": 3, "DATABASE_POOL_TIMEOUT_SECONDS": 1}


@pytest.mark.parametrize("app_config", [POOL])
def test_the_pool_holds_one_connection_per_slot_background_user_and_request_connection_and_no_more(app):
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (2 + BACKGROUND_CONNECTIONS + 3, 0)
    assert db.engine.pool.size() == 2 + BACKGROUND_CONNECTIONS + 3
    assert db.engine.pool.timeout() == 1


@pytest.mark.parametrize("app_config", [POOL])
def test_a_request_that_finds_the_pool_exhausted_gets_a_prompt_503_not_a_hang(app, client):
    with ExitStack() as held:
        for _ in range(db.engine.pool.size()):
            held.enter_context(db.engine.connect()).execute(text("SELECT 1"))
        started = time.monotonic()
        response = client.get("/api/import")
        waited = time.monotonic() - started

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == str(app.config["DATABASE_RETRY_AFTER_SECONDS"])
    assert waited < 5  # the pool's 1 s timeout, not the 30 s SQLAlchemy waits by default
    assert client.get("/api/import").status_code == 200  # the connections are back: so is the API


def _driver_connection(session):
    return session.connection().connection.driver_connection


def test_a_run_on_sqlite_keeps_one_connection_for_all_its_transactions_and_gives_it_back(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite connection's page cache")
    with run_session() as session:
        first = _driver_connection(session)
        session.commit()
        with db.engine.connect() as other:  # another connection writes between the run's transactions
            other.execute(text("UPDATE import_jobs SET cancel_requested = cancel_requested"))
            other.commit()
        assert _driver_connection(session) is first
        session.rollback()
        assert _driver_connection(session) is first
        kept = session.get_bind()
    assert kept.closed  # back in the pool


def test_a_run_on_postgresql_takes_a_pooled_connection_per_transaction(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's cache is the server's")
    with run_session() as session:
        assert session is db.session

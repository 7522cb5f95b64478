"""The database binding: SQLite connections get the configured pragmas."""

import pytest
from sqlalchemy import text

from importdash.extensions import db


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

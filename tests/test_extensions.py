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

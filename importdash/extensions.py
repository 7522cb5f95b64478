"""Unbound extension objects, bound to the app in the factory."""

from contextlib import contextmanager

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
# Revisions are written in batch mode whichever database they were generated against: SQLite changes most things
# only by rebuilding the table, PostgreSQL runs the same batch operations as plain ALTERs, so one revision serves
# both. Column types are compared too, so a changed type makes a revision.
migrate = Migrate(compare_type=True, render_as_batch=True)


def init_db(app):
    """Bind the database; SQLite gets WAL and a busy timeout so job and request threads never see 'locked'."""
    db.init_app(app)
    busy_timeout_ms = app.config["SQLITE_BUSY_TIMEOUT_MS"]
    checkpoint_pages = app.config["SQLITE_CHECKPOINT_PAGES"]
    cache_kb = int(app.config["SQLITE_CACHE_MB"] * 1024)

    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
                cursor.execute(f"PRAGMA cache_size=-{cache_kb}")  # negative: in kB, not pages
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()


@contextmanager
def run_session():
    """The session one run of a background job writes through, in the run's app context.

    On SQLite the run keeps one connection to itself. SQLite empties a connection's page cache whenever another
    connection has written, so only a connection of the run's own keeps the index pages of a big import cached
    from one of its transactions to the next (and can widen that cache: dialects.SqliteStatements.widened_cache).
    On PostgreSQL, whose cache is the server's, each transaction takes a pooled connection, so that a dropped one
    is replaced by the pool.
    """
    if db.engine.dialect.name != "sqlite":
        try:
            yield db.session
        finally:
            db.session.remove()
        return
    with db.engine.connect() as connection, Session(connection) as session:
        yield session

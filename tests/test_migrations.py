"""The schema moves by migrations: databases of every kind are started, upgraded and refused as they should be,
with every row kept, on SQLite and (with IMPORTDASH_TEST_DATABASE_URL) PostgreSQL.

Each test has databases of its own: a file in its tmp_path, or a schema of its own in the PostgreSQL database.
"""

import fcntl
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from importdash import create_app, schema
from importdash.config import Config
from importdash.errors import SchemaOutOfDate, UnknownSchema
from importdash.extensions import db
from importdash.models import ImportJob
from importdash.runtime import stop_background

TEST_DATABASE_URL = os.environ.get("IMPORTDASH_TEST_DATABASE_URL")
LEGACY_DDL = Path(__file__).parent / "migrations"
REAL_MIGRATIONS = Config.MIGRATIONS_FOLDER
REAL_HEAD = ScriptDirectory(REAL_MIGRATIONS).get_current_head()
SUBPROCESS_TIMEOUT = 60
LOCK_WAIT_TIMEOUT = 30

DIALECTS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not TEST_DATABASE_URL,
            reason="PostgreSQL migrations need IMPORTDASH_TEST_DATABASE_URL (a database these tests make schemas in)",
        ),
    ),
]


class Database:
    """One empty database of a test's own: a SQLite file, or a PostgreSQL schema first on the search path."""

    def __init__(self, dialect, url):
        self.dialect = dialect
        self.url = url
        self.engine = create_engine(url)

    def revision(self):
        with self.engine.connect() as connection:
            return schema.current_revision(connection)

    def tables(self):
        with self.engine.connect() as connection:
            return set(inspect(connection).get_table_names())

    def run_script(self, path):
        """Run a file of ;-separated statements (the frozen legacy DDL)."""
        statements = [s.strip() for s in re.sub(r"^--.*$", "", path.read_text(), flags=re.M).split(";")]
        with self.engine.begin() as connection:
            for statement in filter(None, statements):
                connection.exec_driver_sql(statement)


@pytest.fixture
def make_database(tmp_path):
    """make_database(dialect) -> a new empty Database, dropped after the test."""
    made = []

    def make(dialect):
        if dialect == "sqlite":
            database = Database(dialect, f"sqlite:///{tmp_path / f'db{len(made)}.sqlite'}")
        else:
            name = f"test_migrations_{uuid.uuid4().hex[:12]}"
            _administer(f"CREATE SCHEMA {name}")
            url = make_url(_psycopg(TEST_DATABASE_URL)).update_query_dict({"options": f"-csearch_path={name}"})
            database = Database(dialect, url.render_as_string(hide_password=False))
            database.schema_name = name
        made.append(database)
        return database

    yield make
    for database in made:
        database.engine.dispose()
        if database.dialect == "postgresql":
            _administer(f"DROP SCHEMA {database.schema_name} CASCADE")


@pytest.fixture
def database(request, make_database):
    return make_database(request.param)


@pytest.fixture
def start(tmp_path, make_database):
    """start(database, **config) -> the app create_app makes on that database; stopped before the databases go."""
    apps = []

    def start_app(database, **config):
        app = create_app(
            {"TESTING": True, "DATABASE_URL": database.url, "UPLOAD_FOLDER": str(tmp_path / "uploads")} | config
        )
        apps.append(app)
        return app

    yield start_app
    for app in apps:
        stop_background(app, wait=True)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def probe_migrations(tmp_path):
    """The real revisions plus one more after the head, which rebuilds import_jobs with a new column (as SQLite's
    batch mode does for most changes): a database at the real head is one revision behind these."""
    folder = tmp_path / "migrations"
    shutil.copytree(REAL_MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    probe = f"{len(_revisions(REAL_MIGRATIONS)) + 1:04d}_test_probe"
    (folder / "versions" / f"{probe}.py").write_text(
        textwrap.dedent(
            f'''\
            """A revision made by tests/test_migrations.py: import_jobs, rebuilt with one more column."""
            import sqlalchemy as sa
            from alembic import op

            revision = "{probe}"
            down_revision = "{REAL_HEAD}"
            branch_labels = None
            depends_on = None


            def rebuild():
                # SQLite copies the table into a new one and drops the old; PostgreSQL alters it in place.
                sqlite = op.get_bind().dialect.name == "sqlite"
                return op.batch_alter_table("import_jobs", recreate="always" if sqlite else "auto")


            def upgrade():
                with rebuild() as batch_op:
                    batch_op.add_column(sa.Column("probe_note", sa.Text(), nullable=True))


            def downgrade():
                with rebuild() as batch_op:
                    batch_op.drop_column("probe_note")
            '''
        )
    )
    return str(folder), probe


# Rows as importdash stored them at the first revision (its columns are frozen with it): two jobs, records in
# every status, and error rows, with JSON in both JSON columns.
def _job(index, **overrides):
    return {
        "key": uuid.uuid4().hex,
        "mode": "batch",
        "source": f"contacts-{index}.csv",
        "path": f"/uploads/{index}.csv",
        "encoding": "utf-8-sig",
        "delimiter": ",",
        "started_by": "anonymous",
        "status": "completed",
        "total_records": 6,
        "processed_count": 6,
        "success_count": 3,
        "failed_count": 1,
        "duplicate_count": 1,
        "missing_value_count": 1,
        "invalid_format_count": 0,
        "other_count": 1,
        "rows_read": 6,
        "cursor": 7,
        "error": None,
        "created_at": datetime(2026, 11, 30, 9, index, 0),
        "started_at": datetime(2026, 11, 30, 9, index, 1),
        "completed_at": datetime(2026, 11, 30, 9, index, 31),
        "lease_owner": None,
        "lease_expires_at": None,
        "cancel_requested": False,
        "notice": None,
        "retries": index,
        "last_retried_at": None,
    } | overrides


def _fill(database):
    """Store rows in the first revision's tables, ids chosen by the database (so its sequences move on)."""
    with database.engine.begin() as connection:
        tables = MetaData()
        tables.reflect(connection, only=["import_jobs", "records", "import_errors"])
        jobs, records, errors = (tables.tables[name] for name in ("import_jobs", "records", "import_errors"))
        job_ids = [
            connection.execute(jobs.insert().returning(jobs.c.id), _job(1)).scalar_one(),
            connection.execute(jobs.insert().returning(jobs.c.id), _job(2, status="processing")).scalar_one(),
        ]
        for job_number, job_id in enumerate(job_ids):
            for row, status in enumerate(("succeeded", "failed", "pending", "in_flight", "cancelled"), start=2):
                email = f"person{row}.job{job_number}@example.com"
                connection.execute(
                    records.insert(),
                    {
                        "job_id": job_id,
                        "row": row,
                        "name": f"Person {row}",
                        "email": f"  {email.title()} ",
                        "email_key": email,
                        "company": None if row % 2 else "Example Ltd",
                        "status": status,
                        "attempts": row - 1,
                        "response": {"ok": status == "succeeded", "attempt": row - 1},
                    },
                )
            for row, category in ((7, "duplicate"), (8, "missing_value"), (9, "other")):
                connection.execute(
                    errors.insert(),
                    {
                        "job_id": job_id,
                        "row": row,
                        "category": category,
                        "message": f"{category} in row {row}",
                        "data": {"name": "Zoë", "email": "", "extra": [1, 2]},
                        "created_at": datetime(2026, 11, 30, 9, 5, row),
                    },
                )


def _rows(database):
    """{table: [row dicts in primary key order]} of every table but alembic_version."""
    with database.engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        return {
            name: [
                dict(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            ]
            for name, table in tables.tables.items()
            if name != schema.VERSION_TABLE
        }


def _assert_rows_kept(before, after):
    """Every table and row of before is in after, with every column it had still holding its value."""
    assert before.keys() <= after.keys()
    for name, rows in before.items():
        columns = rows[0].keys() & after[name][0].keys() if rows else set()
        assert len(after[name]) == len(rows), name
        assert [{c: row[c] for c in columns} for row in after[name]] == [{c: row[c] for c in columns} for row in rows]


def _alembic(app):
    """Alembic's settings for the app's revisions, without alembic.ini (so this process's logging is untouched);
    commands run with them take the app's schema lock, as `flask db ...` does."""
    config = AlembicConfig()
    config.set_main_option("script_location", app.config["MIGRATIONS_FOLDER"])
    return config


def _revisions(folder):
    """The revision ids in folder, oldest first."""
    return [revision.revision for revision in reversed(list(ScriptDirectory(str(folder)).walk_revisions()))]


# A database made before migrations.


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_a_database_made_by_create_all_before_migrations_is_stamped_and_keeps_every_row(database, start):
    database.run_script(LEGACY_DDL / f"legacy_{database.dialect}.sql")
    _fill(database)
    before = _rows(database)

    app = start(database, AUTO_MIGRATE=True)  # on PostgreSQL, a database behind the head waits for a person

    with app.app_context():
        assert database.revision() == schema.head_revision()
        _assert_rows_kept(before, _rows(database))
        # The app works on what it found: reads the old rows, and stores new ones after them.
        assert db.session.get(ImportJob, before["import_jobs"][0]["id"]).source == before["import_jobs"][0]["source"]
        db.session.add(ImportJob(mode="batch", source="new.csv", path="new.csv"))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(ImportJob)) == len(before["import_jobs"]) + 1


# Upgrades, revision by revision.


@pytest.mark.parametrize("migrations", ["real", "with a table rebuild"])
@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_the_first_revision_full_of_rows_upgrades_step_by_step_to_the_head_and_back(
    database, start, migrations, probe_migrations
):
    folder = REAL_MIGRATIONS if migrations == "real" else probe_migrations[0]
    revisions = _revisions(folder)
    app = start(database, CREATE_DB_ON_START=False, MIGRATIONS_FOLDER=folder)
    with app.app_context():
        command.upgrade(_alembic(app), revisions[0])
        _fill(database)
        before = _rows(database)

        for revision in revisions[1:]:
            command.upgrade(_alembic(app), revision)
            assert database.revision() == revision
            _assert_rows_kept(before, _rows(database))

        for revision in reversed(revisions[:-1]):
            command.downgrade(_alembic(app), revision)
            assert database.revision() == revision
            _assert_rows_kept(before, _rows(database))


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_cancelled_records_of_earlier_cancels_are_counted_as_processed_and_cancelled(database, start):
    app = start(database, CREATE_DB_ON_START=False)
    with app.app_context():
        command.upgrade(_alembic(app), "0005_job_runs")
        _fill(database)  # a completed and a processing job, each holding records of every status
        with database.engine.begin() as connection:
            connection.execute(
                text("UPDATE import_jobs SET status = 'cancelled' WHERE id = (SELECT min(id) FROM import_jobs)")
            )
        before = {row["id"]: row for row in _rows(database)["import_jobs"]}

        command.upgrade(_alembic(app), "0006_cancelled_count")

        after = {row["id"]: row for row in _rows(database)["import_jobs"]}
        cancelled, running = sorted(after)
        assert after[cancelled]["cancelled_count"] == 1
        assert after[cancelled]["processed_count"] == before[cancelled]["processed_count"] + 1
        assert (after[running]["cancelled_count"], after[running]["processed_count"]) == (
            0,
            before[running]["processed_count"],
        )
        command.downgrade(_alembic(app), "0005_job_runs")
        assert _rows(database)["import_jobs"] == list(before.values())


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_records_in_flight_move_behind_the_sent_watermark_and_watermarked_statuses_are_written_back(database, start):
    app = start(database, CREATE_DB_ON_START=False)
    with app.app_context():
        command.upgrade(_alembic(app), "0014_pause_priority")
        _fill(database)  # per job, rows 2-6: succeeded, failed, pending, in_flight (attempts 4), cancelled
        with database.engine.begin() as connection:  # a first send in flight: rows 4 and 5, never attempted
            connection.execute(text("UPDATE records SET status = 'in_flight', attempts = 0 WHERE \"row\" IN (4, 5)"))
        before = _rows(database)

        command.upgrade(_alembic(app), "0015_delivery_watermarks")

        after = _rows(database)
        assert {job["sent_through"] for job in after["import_jobs"]} == {5}
        assert {job["settled_through"] for job in after["import_jobs"]} == {0}
        statuses = {(record["row"], record["status"], record["attempts"]) for record in after["records"]}
        assert statuses == {
            (2, "succeeded", 1),
            (3, "failed", 2),
            (4, "pending", 0),
            (5, "pending", 0),
            (6, "cancelled", 5),
        }
        with database.engine.begin() as connection:  # the new code settles row 4 by the watermark alone
            connection.execute(text("UPDATE import_jobs SET settled_through = 4"))

        command.downgrade(_alembic(app), "0014_pause_priority")

        statuses = {(record["row"], record["status"], record["attempts"]) for record in _rows(database)["records"]}
        assert statuses == {
            (2, "succeeded", 1),
            (3, "failed", 2),
            (4, "succeeded", 1),
            (5, "in_flight", 0),
            (6, "cancelled", 5),
        }
        assert len(before["records"]) == len(_rows(database)["records"])


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_records_and_error_rows_lose_their_job_keys_and_every_row_stays(database, start):
    app = start(database, CREATE_DB_ON_START=False)
    with app.app_context():
        command.upgrade(_alembic(app), "0015_delivery_watermarks")
        _fill(database)
        before = _rows(database)

        command.upgrade(_alembic(app), "0016_no_job_keys")

        assert _rows(database) == before
        with database.engine.connect() as connection:
            keys = {table: inspect(connection).get_foreign_keys(table) for table in ("records", "import_errors")}
        assert keys == {"records": [], "import_errors": []}
        with database.engine.begin() as connection:  # what the keys refused: a row of a job that is not there
            connection.execute(text("UPDATE records SET job_id = 999 WHERE id = (SELECT min(id) FROM records)"))

        command.downgrade(_alembic(app), "0015_delivery_watermarks")

        after = _rows(database)
        assert len(after["records"]) == len(before["records"]) - 1  # only the orphan went, which the key refuses
        assert after["import_errors"] == before["import_errors"]
        with database.engine.connect() as connection:
            for table in ("records", "import_errors"):
                (key,) = inspect(connection).get_foreign_keys(table)
                assert (key["referred_table"], key["options"].get("ondelete")) == ("import_jobs", "CASCADE")


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_the_first_revision_downgrades_to_an_empty_database(database, start):
    app = start(database)
    with app.app_context():
        command.downgrade(_alembic(app), "base")
    assert database.revision() is None
    assert database.tables() <= {schema.VERSION_TABLE}


# The models and the newest revision.


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_the_models_are_what_the_newest_revision_makes(database, start, make_database):
    """Fails when a model changes without a revision: `flask --app importdash db migrate -m "..."` writes one."""
    app = start(database)
    with app.app_context(), database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], 'the models differ from the newest revision: flask --app importdash db migrate -m "..."'

    # Alembic does not compare the WHERE of partial indexes: compare each index's as the same database reflects
    # it from the revisions and from the models.
    from_models = make_database(database.dialect)
    db.metadata.create_all(from_models.engine)
    assert _index_options(database) == _index_options(from_models), "an index's options differ from the revision's"


def _index_options(database):
    with database.engine.connect() as connection:
        inspector = inspect(connection)
        return {
            (table, index["name"]): {key: str(value) for key, value in index.get("dialect_options", {}).items()}
            for table in inspector.get_table_names()
            for index in inspector.get_indexes(table)
        }


# Databases behind the head.


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_a_database_behind_the_head_is_upgraded_on_sqlite_and_refused_on_postgresql_without_auto_migrate(
    database, start, probe_migrations
):
    folder, probe = probe_migrations
    start(database)
    _fill(database)
    before = _rows(database)
    real_head = database.revision()

    if database.dialect == "postgresql":
        with pytest.raises(SchemaOutOfDate) as refused:
            start(database, MIGRATIONS_FOLDER=folder)
        message = refused.value.message
        assert f"at revision {real_head}" in message and f"needs {probe}" in message
        assert "`flask --app importdash init-db`" in message and "IMPORTDASH_AUTO_MIGRATE=1" in message
        _assert_no_sql_or_path(message)
        assert database.revision() == real_head  # a refusal changes nothing
        start(database, MIGRATIONS_FOLDER=folder, AUTO_MIGRATE=True)
    else:
        start(database, MIGRATIONS_FOLDER=folder)

    assert database.revision() == probe
    _assert_rows_kept(before, _rows(database))


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_init_db_upgrades_a_database_that_start_up_refuses(database, start, probe_migrations, tmp_path):
    folder, probe = probe_migrations
    start(database)
    _fill(database)
    before = _rows(database)
    real_head = database.revision()
    environment = {"IMPORTDASH_MIGRATIONS_FOLDER": folder}

    if database.dialect == "postgresql":
        refused = _flask(database, tmp_path, "routes", **environment)
        assert refused.returncode == 1
        assert "Error: The database schema is at revision" in refused.stderr and "Traceback" not in refused.stderr
        assert database.revision() == real_head

    upgraded = _flask(database, tmp_path, "init-db", **environment)

    assert upgraded.returncode == 0, upgraded.stderr
    assert f"Database ready (upgraded from {real_head} to {probe})" in upgraded.stdout
    assert database.revision() == probe
    _assert_rows_kept(before, _rows(database))


# Databases that are not importdash's as this version knows it.


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_a_database_with_other_tables_of_those_names_is_refused_with_what_was_found(database, start, tmp_path):
    database.run_script(LEGACY_DDL / f"legacy_{database.dialect}.sql")
    with database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE records DROP COLUMN company"))
        connection.execute(text("DROP TABLE import_errors"))
    tables = database.tables()

    with pytest.raises(UnknownSchema) as refused:
        start(database)

    message = refused.value.message
    assert "no schema version" in message
    assert "import_jobs, records" in message
    assert "table import_errors is missing" in message and "records lacks column company" in message
    assert "`flask --app importdash init-db --drop`" in message
    _assert_no_sql_or_path(message, tmp_path)
    assert database.tables() == tables  # left alone


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_a_database_at_a_revision_this_version_does_not_know_is_refused(database, start, probe_migrations, tmp_path):
    folder, probe = probe_migrations
    start(database, MIGRATIONS_FOLDER=folder, AUTO_MIGRATE=True)

    with pytest.raises(UnknownSchema) as refused:
        start(database)

    message = refused.value.message
    assert f"revision {probe}, which this version of importdash does not know" in message
    assert f"db downgrade {REAL_HEAD}" in message
    _assert_no_sql_or_path(message, tmp_path)
    assert database.revision() == probe


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_tables_of_other_applications_are_left_alone_beside_a_new_database(database, start):
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE other_app_notes (id INTEGER PRIMARY KEY, body TEXT)"))
        connection.execute(text("INSERT INTO other_app_notes (id, body) VALUES (1, 'kept')"))

    start(database)

    assert database.revision() == REAL_HEAD
    assert _rows(database)["other_app_notes"] == [{"id": 1, "body": "kept"}]


def _assert_no_sql_or_path(message, *paths):
    assert not re.search(r"\b(SELECT|INSERT|CREATE|ALTER|DROP TABLE|PRAGMA)\b", message)
    assert "Traceback" not in message and "sqlite:" not in message and "postgresql" not in message
    for path in paths:
        assert str(path) not in message


# Starting several processes at once.


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_processes_starting_at_once_on_a_new_database_wait_for_one_another_and_all_start(database, tmp_path):
    # The test holds the schema lock until every process is waiting for it, then lets them go together.
    processes = 2
    started = []
    try:
        with _holding_schema_lock(database) as waiting:
            started += [_popen_start(database, tmp_path) for _ in range(processes)]
            _wait_until(lambda: waiting() >= processes, "both processes waiting for the schema lock", started)
        results = [process.communicate(timeout=SUBPROCESS_TIMEOUT) for process in started]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.communicate()

    for process, (_stdout, stderr) in zip(started, results, strict=True):
        assert process.returncode == 0, stderr
    created = [stderr for _stdout, stderr in results if "created the database" in stderr]
    assert len(created) == 1, [stderr for _stdout, stderr in results]  # the other found the head once it had the lock
    assert database.revision() == REAL_HEAD


@contextmanager
def _holding_schema_lock(database):
    """Hold the schema lock of a database; yield a function counting the processes waiting for it."""
    if database.dialect == "sqlite":
        with open(schema.lock_path(make_url(database.url).database), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            inode = os.fstat(lock_file.fileno()).st_ino
            yield lambda: _flock_waiters(inode)
        return
    with database.engine.connect() as connection:
        connection.execute(select(func.pg_advisory_lock(schema.ADVISORY_LOCK_KEY)))
        try:
            yield lambda: _advisory_lock_waiters(database)
        finally:
            connection.execute(select(func.pg_advisory_unlock(schema.ADVISORY_LOCK_KEY)))


def _advisory_lock_waiters(database):
    """Sessions of this PostgreSQL database waiting for an advisory lock."""
    with database.engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()


def _flock_waiters(inode):
    """Processes blocked on an flock of the file with this inode (Linux's /proc/locks marks them "->")."""
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and " FLOCK " in line and line.split()[6].endswith(f":{inode}"))


def _wait_until(condition, what, processes):
    """Wait for something other processes do; fail at once if one of them ends first."""
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT
    while not condition():
        ended = [process for process in processes if process.poll() is not None]
        assert not ended, f"a process ended before {what}: {ended[0].communicate()}"
        assert time.monotonic() < deadline, f"not {what} after {LOCK_WAIT_TIMEOUT} s"
        time.sleep(0.01)  # polling only: no result depends on how long this takes


def _popen_start(database, tmp_path):
    code = (
        "import logging; logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n"
        "from importdash import create_app; create_app()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=_environment(database, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# The CLI.


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_init_db_keeps_the_data_and_init_db_drop_clears_it(database, start):
    app = start(database)
    _fill(database)
    before = _rows(database)
    runner = app.test_cli_runner()

    with app.app_context():  # as the flask command has one
        kept = runner.invoke(args=["init-db"])

    assert kept.exit_code == 0 and f"Database ready (at {database.revision()})" in kept.output
    _assert_rows_kept(before, _rows(database))

    with app.app_context():
        dropped = runner.invoke(args=["init-db", "--drop"])

    assert dropped.exit_code == 0 and "Database ready (created at" in dropped.output
    assert database.revision() == REAL_HEAD
    assert all(rows == [] for rows in _rows(database).values())


@pytest.mark.parametrize("database", DIALECTS, indirect=True)
def test_flask_db_shows_downgrades_and_upgrades_the_revisions(database, start, tmp_path):
    start(database)
    head = database.revision()

    downgraded = _flask(database, tmp_path, "db", "downgrade", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    assert database.revision() is None and database.tables() <= {schema.VERSION_TABLE}

    current = _flask(database, tmp_path, "db", "current")
    assert current.returncode == 0 and head not in current.stdout
    assert database.revision() is None  # a `flask db` process leaves the schema to its command

    upgraded = _flask(database, tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert database.revision() == head
    history = _flask(database, tmp_path, "db", "history")
    assert history.returncode == 0 and head in history.stdout


def _flask(database, tmp_path, *arguments, **environment):
    """Run `flask --app importdash ARGUMENTS` in a new process on the database."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "importdash", *arguments],
        env=_environment(database, tmp_path) | environment,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def _environment(database, tmp_path):
    environment = {name: value for name, value in os.environ.items() if not name.startswith("IMPORTDASH_")}
    return environment | {
        "IMPORTDASH_DATABASE_URL": database.url,
        "IMPORTDASH_UPLOAD_FOLDER": str(tmp_path / "uploads"),
    }


def _psycopg(url):
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


def _administer(statement):
    """Run one statement in the PostgreSQL database itself (outside any test's schema)."""
    engine = create_engine(_psycopg(TEST_DATABASE_URL))
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()

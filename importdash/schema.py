"""The schema moves by the Alembic revisions in migrations/: brought up to date when the app starts, data kept."""

import fcntl
import logging
import sys
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask.cli import FlaskGroup
from sqlalchemy import MetaData, Table, create_engine, func, inspect, select

from .errors import SchemaError, SchemaOutOfDate, UnknownSchema
from .extensions import db, migrate

log = logging.getLogger(__name__)

UPGRADE_COMMAND = "flask --app importdash init-db"
# The commands that move the schema themselves. A refused start tells people to run one, so a process started
# for one of them leaves the schema to the command.
SCHEMA_COMMANDS = ("init-db", "db")
VERSION_TABLE = "alembic_version"
# The key of the PostgreSQL advisory lock that one process at a time changes the schema under: any fixed 64-bit
# number, the same in every process (advisory locks are per database, so other databases do not share it).
ADVISORY_LOCK_KEY = int.from_bytes(b"idschema", "big")


def init_app(app):
    """Bind Flask-Migrate (`flask db ...`) and bring the database to this version's schema, as configured."""
    migrate.init_app(app, db, directory=app.config["MIGRATIONS_FOLDER"])
    if not app.config["CREATE_DB_ON_START"] or _started_for_schema_command():
        return
    with app.app_context():
        # SQLite is one file that this machine's processes serve, all of one version once restarted. Instances
        # of several versions may share a PostgreSQL database, so there a person decides (or AUTO_MIGRATE).
        upgrade_behind = db.engine.dialect.name == "sqlite" or app.config["AUTO_MIGRATE"]
        try:
            bring_to_head(db.engine, upgrade_behind=upgrade_behind)
        except SchemaError:
            db.engine.dispose()  # this app will not start: close its connections now
            raise


def bring_to_head(engine, *, upgrade_behind):
    """Create, recognise or upgrade the database so it is at this version's schema, and say what was done.

    A database at the head is left alone without taking the lock. Otherwise, under the lock and with the version
    read again: an empty database gets every revision; one made before migrations (tables, no version) is
    stamped with the revision whose tables it has; one behind is upgraded if upgrade_behind, else refused with
    SchemaOutOfDate; one that matches no revision is refused with UnknownSchema. A refusal changes nothing.
    """
    script = ScriptDirectory.from_config(_alembic_config())
    head = script.get_current_head()
    with engine.connect() as connection:
        if _current_heads(connection) == (head,):
            return f"at {head}"
    with migration_connection(engine) as connection:
        return _bring_to_head(connection, script, upgrade_behind=upgrade_behind)


def drop_tables(engine):
    """Drop importdash's tables and the schema version, deleting every row (`init-db --drop`)."""
    with migration_connection(engine) as connection:
        db.metadata.drop_all(connection)
        Table(VERSION_TABLE, MetaData()).drop(connection, checkfirst=True)
    log.warning("dropped every importdash table of %s", _safe_url(engine))


def current_revision(connection):
    """The revision the database is at, or None before the first."""
    heads = _current_heads(connection)
    return heads[0] if heads else None


def head_revision():
    """The newest revision this version knows: the schema its models expect."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


@contextmanager
def migration_connection(engine):
    """Yield a connection in a transaction that holds the schema lock, so one process at a time changes the schema.

    PostgreSQL: a transaction-level advisory lock; DDL is transactional there, so a failed upgrade changes nothing.
    SQLite: an OS lock on a file beside the database (none for an in-memory one), then BEGIN IMMEDIATE, which makes
    its DDL transactional too. Foreign keys are off meanwhile: Alembic's batch mode rebuilds a table by dropping it,
    and with them on SQLite would delete every row that references it (ON DELETE CASCADE). They are checked instead,
    before the commit.
    """
    sqlite = engine.dialect.name == "sqlite"
    lock = _file_lock(engine.url.database) if sqlite else nullcontext()
    with lock, engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op once a transaction has begun
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                elif engine.dialect.name == "postgresql":
                    connection.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
                yield connection
                if sqlite:
                    _check_foreign_keys(connection)
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def lock_path(database):
    """The file whose OS lock serialises schema changes of the SQLite database file at this path, or None."""
    if database in (None, "", ":memory:") or database.startswith("file::memory:"):
        return None
    return f"{database}-schema.lock"


@contextmanager
def _file_lock(database):
    path = lock_path(database)
    if path is None:  # an in-memory database lives in one process: nobody to wait for
        yield
        return
    with open(path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file is closed, or the process ends
        yield


def _bring_to_head(connection, script, *, upgrade_behind):
    config = _alembic_config(connection)
    head = script.get_current_head()
    heads = _current_heads(connection)
    done = []
    if not heads:
        revision = _recognise(connection, script)
        if revision is None:
            command.upgrade(config, "head")
            log.info("created the database %s at revision %s", _safe_url(connection.engine), head)
            return f"created at {head}"
        command.stamp(config, revision)
        log.info("recognised %s, made before migrations, as revision %s", _safe_url(connection.engine), revision)
        heads = (revision,)
        done.append(f"recognised as {revision}")
    known = {revision.revision for revision in script.walk_revisions()}
    if len(heads) > 1 or heads[0] not in known:
        raise _refusal(connection, _unknown_revision_message(heads, head), UnknownSchema)
    current = heads[0]
    if current != head:
        if not upgrade_behind:
            raise _refusal(connection, _out_of_date_message(current, head), SchemaOutOfDate)
        command.upgrade(config, "head")
        log.info("upgraded %s from revision %s to %s", _safe_url(connection.engine), current, head)
        done.append(f"upgraded from {current} to {head}")
    return ", ".join(done) or f"at {head}"


class TableShape(NamedTuple):
    """What tells one revision's table from another's, named the same on SQLite and PostgreSQL."""

    columns: frozenset  # (name, nullable)
    indexes: frozenset  # (name, columns, unique)
    uniques: frozenset  # columns
    foreign_keys: frozenset  # (columns, referred table, referred columns, on delete)


def _recognise(connection, script):
    """For a database without a version: the revision whose tables it has, None if it has none of them.

    Each revision's tables are found by running the revisions on an in-memory SQLite database; the earliest
    revision that matches wins, so a later one that only moves data still runs. Tables of other applications are
    left out and alone.
    """
    found = _table_names(connection)
    if not found:
        return None
    revisions = _revision_shapes(script)
    known_tables = {name for _revision, shape in revisions for name in shape}
    ours = found & known_tables
    if not ours:
        return None
    shape = _shape(connection, ours)
    for revision, revision_shape in revisions:
        if revision_shape == shape:
            return revision
    closest_revision, closest = min(revisions, key=lambda item: len(_differences(shape, item[1])))
    differences = _differences(shape, closest)
    log.error(
        "%s has no schema version and matches no revision; found tables %s; against revision %s: %s",
        _safe_url(connection.engine),
        sorted(found),
        closest_revision,
        "; ".join(differences),
    )
    raise _refusal(connection, _unrecognised_message(sorted(ours), differences), UnknownSchema)


def _revision_shapes(script):
    """[(revision, {table: TableShape})] after each revision, oldest first."""
    scratch = create_engine("sqlite://")
    try:
        with scratch.connect() as connection:
            config = _alembic_config(connection)
            shapes = []
            for revision in reversed(list(script.walk_revisions())):
                with connection.begin():  # inspecting begins a transaction too: both end here
                    command.upgrade(config, revision.revision)
                    shapes.append((revision.revision, _shape(connection, _table_names(connection))))
            return shapes
    finally:
        scratch.dispose()


def _table_names(connection):
    return set(inspect(connection).get_table_names()) - {VERSION_TABLE}


def _shape(connection, tables):
    inspector = inspect(connection)
    return {name: _table_shape(inspector, name) for name in tables}


def _table_shape(inspector, table):
    indexes = inspector.get_indexes(table)
    return TableShape(
        columns=frozenset((column["name"], column["nullable"]) for column in inspector.get_columns(table)),
        # PostgreSQL lists the index behind each unique constraint too; the constraint is compared instead.
        indexes=frozenset(
            (index["name"], tuple(index["column_names"]), bool(index["unique"]))
            for index in indexes
            if "duplicates_constraint" not in index
        ),
        uniques=frozenset(tuple(unique["column_names"]) for unique in inspector.get_unique_constraints(table)),
        foreign_keys=frozenset(
            (
                tuple(key["constrained_columns"]),
                key["referred_table"],
                tuple(key["referred_columns"]),
                (key["options"].get("ondelete") or "").upper(),
            )
            for key in inspector.get_foreign_keys(table)
        ),
    )


def _differences(found, expected):
    """How the tables found differ from a revision's, in words."""
    differences = [f"table {name} is missing" for name in sorted(expected.keys() - found.keys())]
    for name in sorted(found.keys() & expected.keys()):
        have, want = found[name], expected[name]
        have_columns, want_columns = dict(have.columns), dict(want.columns)
        differences += [f"{name} lacks column {column}" for column in sorted(want_columns.keys() - have_columns.keys())]
        differences += [f"{name} has column {column}" for column in sorted(have_columns.keys() - want_columns.keys())]
        differences += [
            f"{name}.{column} is {'nullable' if have_columns[column] else 'not nullable'}"
            for column in sorted(have_columns.keys() & want_columns.keys())
            if have_columns[column] != want_columns[column]
        ]
        have_indexes = {index[0]: index for index in have.indexes}
        want_indexes = {index[0]: index for index in want.indexes}
        differences += [f"{name} lacks index {index}" for index in sorted(want_indexes.keys() - have_indexes.keys())]
        differences += [f"{name} has index {index}" for index in sorted(have_indexes.keys() - want_indexes.keys())]
        differences += [
            f"index {index} of {name} differs"
            for index in sorted(have_indexes.keys() & want_indexes.keys())
            if have_indexes[index] != want_indexes[index]
        ]
        if have.uniques != want.uniques:
            differences.append(f"{name} has other unique constraints")
        if have.foreign_keys != want.foreign_keys:
            differences.append(f"{name} has other foreign keys")
    return differences


def _refusal(connection, message, error_class):
    """Log a refusal and make its exception; raised, it rolls the transaction back, so a refusal changes nothing."""
    log.error("refusing the database %s: %s", _safe_url(connection.engine), message)
    return error_class(message)


def _unrecognised_message(tables, differences):
    shown = "; ".join(differences[:6]) + ("; …" if len(differences) > 6 else "")
    return (
        f"The database has importdash's tables ({', '.join(tables)}) but no schema version, and they differ from "
        f"every schema this version of importdash knows ({shown}), so importdash leaves them alone. Point "
        "IMPORTDASH_DATABASE_URL at importdash's own database or an empty one; or, to start again in this one, back "
        f"it up and run `{UPGRADE_COMMAND} --drop`, which deletes importdash's tables and all their rows."
    )


def _unknown_revision_message(heads, head):
    return (
        f"The database is at schema revision {', '.join(heads)}, which this version of importdash does not know "
        f"(its newest is {head}): a newer version upgraded it. Run that version; or, to go back to this one, use "
        f"it to downgrade the database first (`flask --app importdash db downgrade {head}`), after a backup."
    )


def _out_of_date_message(current, head):
    return (
        f"The database schema is at revision {current} and this version of importdash needs {head}. Back the "
        f"database up, then run `{UPGRADE_COMMAND}` to upgrade it (every row is kept), or set "
        "IMPORTDASH_AUTO_MIGRATE=1 to upgrade it whenever the app starts."
    )


def _check_foreign_keys(connection):
    """Refuse to commit a SQLite upgrade that left rows referencing rows that are gone."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({row[0] for row in broken})
        log.error("an upgrade left %d rows with broken foreign keys in %s: %s", len(broken), tables, broken[:20])
        raise SchemaError(
            f"The upgrade would leave {len(broken)} rows of {', '.join(tables)} pointing at rows that do not exist, "
            "so it was undone and the database is as it was. The details are in the log."
        )


def _current_heads(connection):
    return MigrationContext.configure(connection).get_current_heads()


def _alembic_config(connection=None):
    """Alembic's settings for this app's revisions, without alembic.ini: that only configures `flask db`'s logging.

    With a connection, env.py runs the revisions on it, in its transaction, instead of opening its own.
    """
    config = AlembicConfig()
    config.set_main_option("script_location", current_app.extensions["migrate"].directory)
    config.attributes["connection"] = connection
    return config


def _safe_url(engine):
    return engine.url.render_as_string(hide_password=True)


def _started_for_schema_command():
    """Whether the flask CLI is loading the app to run one of SCHEMA_COMMANDS.

    Flask loads the app before it knows which of the app's commands to run; only its arguments tell.
    """
    context = click.get_current_context(silent=True)
    if context is None or not isinstance(context.command, FlaskGroup):
        return False
    return _command_name(context.command, sys.argv[1:]) in SCHEMA_COMMANDS


def _command_name(group, arguments):
    """The first argument that is neither an option of the group nor an option's value."""
    takes_value = {
        option
        for parameter in group.params
        if isinstance(parameter, click.Option) and not parameter.is_flag
        for option in parameter.opts
    }
    arguments = iter(arguments)
    for argument in arguments:
        if argument in takes_value:
            next(arguments, None)
        elif not argument.startswith("-"):
            return argument
    return None

import logging
import re
from logging.config import fileConfig

from alembic import context
from alembic.script import ScriptDirectory
from flask import current_app

from importdash import schema

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
# Only `flask db ...` reads alembic.ini; when the app runs the revisions itself (importdash/schema.py) there is no
# file, and the server's logging stays as it is. Loggers that exist already (the app's) keep working either way.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")


def get_engine():
    # Flask-SQLAlchemy 3 (the template first tries 3.0's get_engine(), deprecated since 3.1).
    return current_app.extensions["migrate"].db.engine


def get_engine_url():
    return get_engine().url.render_as_string(hide_password=False).replace("%", "%%")


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option("sqlalchemy.url", get_engine_url())
target_db = current_app.extensions["migrate"].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata():
    if hasattr(target_db, "metadatas"):
        return target_db.metadatas[None]
    return target_db.metadata


def next_revision_id(message):
    """Revisions are numbered in order and named for what they do: 0002_add_import_tags."""
    number = len(list(ScriptDirectory.from_config(config).walk_revisions())) + 1
    words = re.sub(r"[^a-z0-9]+", "_", (message or "").lower()).strip("_")[:40] or "revision"
    return f"{number:04d}_{words}"


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=get_metadata(), literal_binds=True)

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        script = directives[0]
        if getattr(config.cmd_opts, "autogenerate", False):
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")
                return
        if re.fullmatch(r"[0-9a-f]{12}", script.rev_id):  # Alembic's random id: no --rev-id was given
            script.rev_id = next_revision_id(script.message)

    conf_args = current_app.extensions["migrate"].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    def run_on(connection):
        context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        # importdash/schema.py hands over its connection: the revisions run in its transaction, under its lock.
        run_on(connection)
    else:
        # `flask db ...`: the same lock and transaction the app takes when it upgrades at start.
        with schema.migration_connection(get_engine()) as connection:
            run_on(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

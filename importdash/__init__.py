"""importdash: import contact files, validate and de-duplicate every row, deliver them under a rate limit."""

import os

from flask import Flask
from sqlalchemy.engine import make_url

from .config import PROJECT_ROOT, Config, database_pool, default_database_url, postgresql_timeouts


def create_app(test_config=None):
    """Build the app: configuration, then each subsystem's init_app, then the blueprints."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_relative_config=True,
    )
    app.config.from_object(Config)
    app.config.from_prefixed_env("IMPORTDASH")
    if test_config:
        app.config.update(test_config)
    _resolve_paths(app)

    from . import accounts_cli, cli, errors, extensions, runtime, schema, security
    from .views import register_blueprints

    extensions.init_db(app)
    schema.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    runtime.init_app(app)
    cli.init_app(app)
    accounts_cli.init_app(app)
    register_blueprints(app)
    return app


def _resolve_paths(app):
    """Fill in the settings derived from others: the database URL and its pool, the upload folder, the upload cap."""
    config = app.config
    os.makedirs(app.instance_path, exist_ok=True)
    url = config["DATABASE_URL"] or default_database_url(app.instance_path)
    # psycopg 3 is the PostgreSQL driver this project installs; plain postgresql:// URLs mean it.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    config["SQLALCHEMY_DATABASE_URI"] = url
    options = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        options["connect_args"] = postgresql_timeouts(config, make_url(url).query.get("options"))
    if make_url(url).database not in (None, "", ":memory:"):  # an in-memory SQLite database has a pool of one
        options |= database_pool(config)
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", options)
    config["UPLOAD_FOLDER"] = config["UPLOAD_FOLDER"] or os.path.join(app.instance_path, "uploads")
    os.makedirs(config["UPLOAD_FOLDER"], exist_ok=True)
    config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"] * 1024 * 1024)

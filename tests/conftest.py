"""Shared fixtures: an app on a temporary database (SQLite, or PostgreSQL when IMPORTDASH_TEST_DATABASE_URL is set)."""

import os
import re
import uuid

import pytest
from scripted_downstream import ScriptedDownstream
from servers import Servers
from sqlalchemy import create_engine, inspect

from importdash import create_app
from importdash.extensions import db
from importdash.models import ImportJob
from importdash.runtime import get_runtime, stop_background
from importdash.services import jobs

TEST_DATABASE_URL = os.environ.get("IMPORTDASH_TEST_DATABASE_URL")


@pytest.fixture
def app_config():
    """Settings a test module adds to (or overrides in) the app's test configuration."""
    return {}


@pytest.fixture
def app(tmp_path, app_config):
    if TEST_DATABASE_URL:
        # Every table goes, alembic_version too, so the app's start-up builds the schema from the revisions as on
        # a first start. One statement by name (reflecting the tables to drop them in order would cost more than
        # building the schema does).
        engine = create_engine(re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", TEST_DATABASE_URL))
        with engine.begin() as connection:
            quote = connection.dialect.identifier_preparer.quote
            tables = ", ".join(quote(name) for name in inspect(connection).get_table_names())
            if tables:
                connection.exec_driver_sql(f"DROP TABLE {tables} CASCADE")
        engine.dispose()
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'test.db'}",
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "RATE_PER_SECOND": 0,
            "SIMULATED_LATENCY_MS": 0,
            "PROGRESS_INTERVAL_SECONDS": 0.05,
            "AUTO_MIGRATE": True,
        }
        | app_config
    )
    yield app
    stop_background(app, wait=True)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_job(app):
    """Create an ImportJob row directly, with any field overridden."""

    def make(**overrides):
        fields = {"mode": "batch", "source": "contacts.csv", "path": app.config["SAMPLE_FILE"]} | overrides
        job = ImportJob(**fields)
        db.session.add(job)
        db.session.commit()
        return job

    return make


@pytest.fixture
def write_csv(tmp_path):
    """Write text to a CSV file in the test's folder and return its path."""

    def write(text, name="contacts.csv", encoding="utf-8"):
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


@pytest.fixture
def wait_for_job(app):
    """Wait for a job's background run to end and return its final state as the API shows it."""

    def wait(job_id, timeout=30):
        get_runtime(app).runner.wait(job_id, timeout=timeout)
        db.session.expire_all()
        return jobs.job_dict(db.session, db.session.get(ImportJob, job_id))

    return wait


@pytest.fixture
def downstream_server():
    """A real HTTP downstream on loopback, answering as the test scripts it."""
    server = ScriptedDownstream()
    yield server
    server.close()


@pytest.fixture
def servers(app, tmp_path):
    """Real servers (tests/servers.py) on the test's database, each in a folder of its own under tmp_path; those
    still running at the end are killed. A fixture that also uses downstream_server asks for it first, so the
    servers stop before their downstream does."""
    servers = Servers(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"])
    yield servers
    servers.stop()


@pytest.fixture
def s3_server(monkeypatch):
    """A local S3 server (moto) on a free loopback port with one empty bucket; returns the app settings for it."""
    moto_server = pytest.importorskip("moto.server", reason="S3 storage tests need moto[server] (the test extras)")
    import boto3
    from servers import free_port

    # boto3 reads credentials and region from the environment, as it would in production; these are dummies.
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    bucket = f"importdash-test-{uuid.uuid4().hex[:12]}"  # moto keeps its buckets for the whole process
    settings = {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": f"http://{host}:{port}", "S3_PREFIX": "uploads/"}
    boto3.client("s3", endpoint_url=settings["S3_ENDPOINT_URL"]).create_bucket(Bucket=settings["S3_BUCKET"])
    yield settings
    server.stop()


TEST_KINDS = ("unit", "db", "browser")
E2E_FOLDER = os.path.join(os.path.dirname(__file__), "e2e")


def pytest_collection_modifyitems(items):
    """Mark each test with its kind (see pyproject.toml) unless its module did, so CI can pick its passes."""
    for item in items:
        kinds = [kind for kind in TEST_KINDS if item.get_closest_marker(kind)]
        if len(kinds) > 1:
            raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(kinds)}; a test has one kind")
        if kinds:
            continue
        if item.path.is_relative_to(E2E_FOLDER):
            item.add_marker(pytest.mark.browser)
        elif "app" in item.fixturenames:  # fixturenames holds the fixtures' own too (client, runner, make_job...)
            item.add_marker(pytest.mark.db)
        else:
            item.add_marker(pytest.mark.unit)

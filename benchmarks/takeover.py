"""Two servers on one database: how soon a killed server's import resumes, and a busy server's new job starts.

Two real servers (shipped gunicorn config, MAX_JOBS=1 each, the simulated downstream slowed down so that an
import lasts) share one database and one upload folder. Each round:

  takeover  an import runs on one server; that server is killed (SIGKILL, whole process group); the figure is
            the time from the kill until the other server holds the import's lease (read from the database).
            Bound by design: LEASE_SECONDS (the lease has to run out) plus CLAIM_POLL_SECONDS.
  pickup    an import keeps one server busy; a second import is posted to that same busy server; the figure is
            the time from the POST's answer until the idle server holds the second import's lease.
            Bound by design: CLAIM_POLL_SECONDS.

Each figure is printed with its share of that bound (the reference), since absolute times on a shared 2-core
machine move.

    .venv/bin/python benchmarks/takeover.py [--rounds 3] [--lease-seconds 30] [--database-url postgresql://...]

--smoke: one round of each with a 3 s lease.
"""

import argparse
import os
import signal
import time

import common
from sqlalchemy import create_engine, text

from importdash.config import Config

ROWS = 2_000
LATENCY_MS = 50  # per downstream call of 10 records: an import delivers for about 10 s


def engine_for(url):
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=1)


def lease_owner(engine, job_id):
    with engine.connect() as connection:
        return connection.execute(text("SELECT lease_owner FROM import_jobs WHERE id = :id"), {"id": job_id}).scalar()


def holder(engine, job_id, servers):
    """The server whose worker holds the job's lease (its owner names the worker's pid), or None."""
    owner = lease_owner(engine, job_id)
    if owner is None:
        return None
    try:
        group = os.getpgid(int(owner.split(":")[1]))
    except ProcessLookupError:
        return None
    return next((server for server in servers if server.process.pid == group), None)


def wait_until(condition, timeout, what, poll=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError(f"timed out waiting for {what}")


def start_import(server, path):
    status, body = server.upload("/api/import/batch", path)
    if status != 202:
        raise RuntimeError(f"the import was refused: {status} {body}")
    return body["job"]["id"]


def start_servers(workdir, url, lease_seconds, poll_seconds):
    settings = dict(
        upload_folder=workdir / "uploads",
        max_jobs=1,
        lease_seconds=lease_seconds,
        heartbeat_seconds=min(Config.HEARTBEAT_SECONDS, lease_seconds / 4),
        claim_poll_seconds=poll_seconds,
        rate_per_second=0,
        records_per_call=10,
        simulated_latency_ms=LATENCY_MS,
    )
    servers = []
    try:
        for n in range(2):
            home = workdir / f"server{n}"
            home.mkdir()
            servers.append(common.Server(home, url, **settings))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def takeover_round(workdir, url, path, lease_seconds, poll_seconds):
    if url.startswith("postgresql"):
        common.reset_database(url)
    engine = engine_for(url)
    servers = start_servers(workdir, url, lease_seconds, poll_seconds)
    try:
        job_id = start_import(servers[0], path)
        wait_until(lambda: holder(engine, job_id, servers) is not None, 30, "the import to start")
        time.sleep(1)  # well into delivery
        dying = holder(engine, job_id, servers)
        survivor = next(server for server in servers if server is not dying)
        os.killpg(dying.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        taken_at = wait_until(
            lambda: holder(engine, job_id, [survivor]) is survivor, 3 * (lease_seconds + 5), "the takeover"
        )
        job = survivor.wait_for_job(job_id, timeout=120)
        if job["status"] != "completed":
            raise RuntimeError(f"the import taken over ended {job['status']}: {job['error']}")
        return taken_at - killed_at
    finally:
        for server in servers:
            server.stop()
        engine.dispose()


def pickup_round(workdir, url, path, lease_seconds, poll_seconds):
    if url.startswith("postgresql"):
        common.reset_database(url)
    engine = engine_for(url)
    servers = start_servers(workdir, url, lease_seconds, poll_seconds)
    try:
        first = start_import(servers[0], path)
        wait_until(lambda: holder(engine, first, servers) is not None, 30, "the first import to start")
        busy = holder(engine, first, servers)
        idle = next(server for server in servers if server is not busy)
        second = start_import(busy, path)
        posted_at = time.monotonic()
        claimed_at = wait_until(lambda: lease_owner(engine, second) is not None, 30, "the second import's claim")
        if holder(engine, second, servers) is not idle:
            raise RuntimeError("the second import was not picked up by the idle server")
        for job_id in (first, second):
            busy.post(f"/api/import/{job_id}/cancel")
        return claimed_at - posted_at
    finally:
        for server in servers:
            server.stop()
        engine.dispose()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=Config.LEASE_SECONDS)
    parser.add_argument("--poll-seconds", type=float, default=Config.CLAIM_POLL_SECONDS)
    parser.add_argument(
        "--database-url", help="run on this database instead of a fresh SQLite file (its tables are dropped!)"
    )
    args = common.parse_args(parser, smoke={"rounds": 1, "lease_seconds": 3})
    path = common.sample_file(ROWS)
    lease, poll = args.lease_seconds, args.poll_seconds
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"takeover: two servers on {database}, MAX_JOBS=1, LEASE_SECONDS={lease:g}, CLAIM_POLL_SECONDS={poll:g}")
    takeovers, pickups = [], []
    for round_number in range(1, args.rounds + 1):
        for name, measure, figures, bound in (
            ("takeover after kill -9", takeover_round, takeovers, lease + poll),
            ("pickup by the idle server", pickup_round, pickups, poll),
        ):
            workdir = common.scratch_dir("takeover-")
            try:
                url = args.database_url or common.sqlite_url(workdir)
                seconds = measure(workdir, url, path, lease, poll)
            finally:
                common.remove(workdir)
            figures.append(seconds)
            share = f"{seconds / bound:4.0%} of {bound:g} s"
            print(f"round {round_number}: {name:26} {seconds:6.2f} s = {share}", flush=True)
    for name, figures, bound in (("takeover", takeovers, lease + poll), ("pickup", pickups, poll)):
        print(
            f"{name}: median {common.median(figures):.2f} s (range {min(figures):.2f}-{max(figures):.2f} s) over "
            f"{len(figures)} rounds; bound {bound:g} s"
        )


if __name__ == "__main__":
    main()

"""Claims and leases on the database's clock, on SQLite and PostgreSQL: one winner per job, expiry judged by the
database whatever the local clock says, SKIP LOCKED claimers passing each other by."""

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from importdash import models
from importdash.extensions import db
from importdash.models import ImportJob
from importdash.services import jobs, ledger
from importdash.services.dialects import database_now, lease_expiry
from importdash.services.ledger import JobLedger, Lease, claim_jobs, claimable_job_ids, release_claims
from importdash.services.reader import FileLimits

LEASE = 30


def database_time():
    return db.session.scalar(select(database_now()))


def lease_of(job_id):
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    return job.lease_owner, job.lease_expires_at


def set_lease(job_id, owner, seconds_from_database_now):
    """Lease the job on the database's clock: negative seconds, a lease that ran out that long ago."""
    expires = database_time() + timedelta(seconds=seconds_from_database_now)
    db.session.execute(
        update(ImportJob).where(ImportJob.id == job_id).values(lease_owner=owner, lease_expires_at=expires)
    )
    db.session.commit()


@pytest.fixture(params=[timedelta(days=1), -timedelta(days=1)], ids=["local-clock-a-day-ahead", "a-day-behind"])
def skewed_local_clock(request, monkeypatch):
    """This machine's clock, as the app reads it, a day away from the database's."""

    def skewed_utcnow():
        return datetime.now(models.UTC).replace(tzinfo=None) + request.param

    for module in (models, ledger, jobs):
        monkeypatch.setattr(module, "utcnow", skewed_utcnow)
    return request.param


def test_the_database_clock_is_stored_in_the_shape_sqlalchemy_writes_and_reads_back_exactly(app, make_job):
    job_id = make_job(lease_owner="a", lease_expires_at=datetime(2030, 1, 2, 3, 4, 5, 120000)).id
    written_by_sqlalchemy = db.session.scalar(select(ImportJob.lease_expires_at).where(ImportJob.id == job_id))
    db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(lease_expires_at=lease_expiry(1.5)))
    db.session.commit()
    now = database_time()

    written_by_the_database = lease_of(job_id)[1]

    assert written_by_sqlalchemy == datetime(2030, 1, 2, 3, 4, 5, 120000)  # .12 s is 120000 µs, not 12
    assert timedelta(seconds=1.4) < written_by_the_database - now < timedelta(seconds=1.6)
    if db.engine.dialect.name == "sqlite":  # stored as text: compared as text, so the shapes must match
        raw = db.session.scalar(text("SELECT lease_expires_at FROM import_jobs WHERE id = :id"), {"id": job_id})
        assert len(raw) == len("2030-01-02 03:04:05.120000") and raw[10] == " " and raw[19] == "."
        assert datetime.fromisoformat(raw) == written_by_the_database


def test_text_order_is_time_order_between_what_sqlalchemy_and_the_database_wrote(app, make_job):
    now = database_time()
    just_before = make_job(status="pending", lease_owner="a", lease_expires_at=now - timedelta(milliseconds=300)).id
    just_after = make_job(status="pending", lease_owner="b", lease_expires_at=now + timedelta(seconds=5)).id

    assert claimable_job_ids(db.session) == [just_before]
    assert just_after not in claimable_job_ids(db.session)


def test_a_lease_that_ran_out_on_the_databases_clock_is_claimable_whatever_the_local_clock_says(
    app, make_job, skewed_local_clock
):
    expired, live = make_job(status="processing").id, make_job(status="processing").id
    set_lease(expired, "dead-host:1:a", -1)
    set_lease(live, "live-host:2:b", 60)

    assert claimable_job_ids(db.session) == [expired]
    assert claim_jobs(db.session, Lease("me:3:c", LEASE), limit=5) == [expired]
    assert lease_of(live)[0] == "live-host:2:b"
    assert not JobLedger(db.session, live, "me:3:c", LEASE).claim()  # the ledger's own claim agrees


def test_a_lease_is_given_on_the_databases_clock_whatever_the_local_clock_says(app, make_job, skewed_local_clock):
    job_id = make_job(status="pending").id
    holder = JobLedger(db.session, job_id, "me:3:c", LEASE)

    assert holder.claim()
    remaining = lease_of(job_id)[1] - database_time()
    assert timedelta(seconds=LEASE - 5) < remaining <= timedelta(seconds=LEASE)
    set_lease(job_id, "me:3:c", 1)
    holder.renew_lease()  # a heartbeat extends it on the database's clock too
    assert timedelta(seconds=LEASE - 5) < lease_of(job_id)[1] - database_time() <= timedelta(seconds=LEASE)


def test_a_claim_takes_the_oldest_waiting_jobs_up_to_its_limit(app, make_job):
    now = database_time()
    waiting = [make_job(status="pending").id for _ in range(3)]
    make_job(status="completed")
    make_job(status="processing", lease_owner="alive", lease_expires_at=now + timedelta(minutes=1))

    assert claim_jobs(db.session, Lease("me", LEASE), limit=2) == waiting[:2]
    assert claim_jobs(db.session, Lease("other", LEASE), limit=2) == waiting[2:]
    assert claim_jobs(db.session, Lease("third", LEASE), limit=2) == []
    assert [lease_of(job_id)[0] for job_id in waiting] == ["me", "me", "other"]


def test_handing_claims_back_frees_only_the_owners_own_leases(app, make_job):
    mine, theirs = make_job(status="pending").id, make_job(status="pending").id
    claim_jobs(db.session, Lease("me", LEASE), limit=1)
    claim_jobs(db.session, Lease("them", LEASE), limit=1)

    assert release_claims(db.session, "me", [mine, theirs]) == 1

    assert lease_of(mine) == (None, None) and lease_of(theirs)[0] == "them"
    assert claimable_job_ids(db.session) == [mine]


def test_two_claimers_racing_for_one_job_exactly_one_wins(app, make_job):
    rounds = 10
    winners = []
    for _ in range(rounds):
        job_id = make_job(status="pending").id
        start = threading.Barrier(2)
        results = {}

        def claim(owner, start, results):
            with app.app_context(), Session(db.engine) as session:
                start.wait()
                results[owner] = claim_jobs(session, Lease(owner, LEASE), limit=1)

        threads = [threading.Thread(target=claim, args=(owner, start, results)) for owner in ("left", "right")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert sorted(results.values()) == [[], [job_id]], results
        [winner] = [owner for owner, claimed in results.items() if claimed]
        assert lease_of(job_id)[0] == winner
        winners.append(winner)
    assert len(winners) == rounds


def test_skip_locked_lets_a_second_claimer_take_the_next_job_instead_of_waiting(app, make_job):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite has one writer at a time")
    first, second = make_job(status="pending").id, make_job(status="pending").id
    with db.engine.connect() as holder, db.engine.connect() as connection:
        # The first claimer is mid-claim: it has picked the first job and holds its row lock.
        holder.execute(select(ImportJob.id).where(ImportJob.id == first).with_for_update())
        connection.exec_driver_sql("SET lock_timeout = '2s'")  # waiting for the lock would fail, not hang
        try:
            with Session(bind=connection) as session:
                assert claim_jobs(session, Lease("second", LEASE), limit=2) == [second]
        finally:
            connection.exec_driver_sql("RESET lock_timeout")
            connection.commit()
        holder.rollback()

    assert claim_jobs(db.session, Lease("third", LEASE), limit=2) == [first]


def test_a_job_queued_but_not_yet_claimed_is_cancelled_at_once(app, client, make_job):
    job_id = make_job(status="pending").id

    response = client.post(f"/api/import/{job_id}/cancel")

    assert response.status_code == 200 and response.get_json()["job"]["status"] == "cancelled"
    assert claim_jobs(db.session, Lease("late", LEASE), limit=1) == []


def test_a_job_created_with_its_owners_lease_cannot_be_claimed_by_another_process(app, write_csv):
    from importdash.runtime import get_runtime

    path = write_csv("name,email\nAda,ada@example.com\n")
    job = jobs.create_job(
        db.session,
        get_runtime(app).broker,
        mode="batch",
        path=str(path),
        source="contacts.csv",
        max_line_length=app.config["MAX_LINE_LENGTH"],
        file_limits=FileLimits.from_config(app.config),
        lease=Lease("cli-host:9:z", LEASE),
    )

    assert claim_jobs(db.session, Lease("server", LEASE), limit=1) == []
    assert lease_of(job.id)[0] == "cli-host:9:z"
    assert JobLedger(db.session, job.id, "cli-host:9:z", LEASE).claim()

"""Upload storage (services/storage.py): each store keeps files whole and streams them in and out; the storage
names them by keys any instance can read, and never deletes a file that is not an upload."""

import hashlib
import io
import os
import tracemalloc

import pytest
from fakes import FakeClock
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from urllib3.exceptions import ProtocolError

from importdash.config import Config
from importdash.extensions import db
from importdash.models import UploadChunk
from importdash.runtime import get_runtime
from importdash.services.ledger import DatabaseUnavailable, OutagePolicy
from importdash.services.reader import CsvSource, FileLimits, check_file, count_rows
from importdash.services.storage import (
    DatabaseStore,
    LocalStore,
    S3Store,
    StoreUnavailable,
    UploadStorage,
    build_storage,
)

LIMITS = FileLimits.from_config(vars(Config))

# Sizes that cross chunk boundaries, including none at all and exactly one chunk.
CHUNK = 1000
SIZES = [0, 1, CHUNK, CHUNK + 1, 5 * CHUNK + 123]


def payload(size):
    return bytes((n * 7 + n // 251) % 256 for n in range(size))


@pytest.fixture
def local_store(tmp_path):
    return LocalStore(folder=str(tmp_path))


@pytest.fixture
def database_store(app):
    with app.app_context():
        engine = db.engine
    return DatabaseStore(engine, chunk_bytes=CHUNK, outages=OutagePolicy(deadline=5, backoff_base=0.1, backoff_cap=1))


@pytest.fixture
def s3_store(s3_server):
    return S3Store(
        bucket=s3_server["S3_BUCKET"],
        key_prefix=s3_server["S3_PREFIX"],
        part_bytes=5 * 1024 * 1024,
        endpoint_url=s3_server["S3_ENDPOINT_URL"],
    )


@pytest.fixture(params=["local_store", "database_store", "s3_store"])
def store(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("size", SIZES)
def test_a_saved_file_reads_back_byte_for_byte(store, size):
    data = payload(size)

    name = store.save(io.BytesIO(data))

    assert store.exists(name)
    with store.open(name) as stream:
        assert stream.read() == data
    with store.open(name) as stream:  # opened again, read in small pieces, from the start
        assert b"".join(iter(lambda: stream.read(333), b"")) == data


def test_a_deleted_file_is_gone_and_deleting_it_again_says_so(store):
    name = store.save(io.BytesIO(b"name,email\n"))
    other = store.save(io.BytesIO(b"kept"))

    assert store.delete(name) is True
    assert store.delete(name) is False
    assert not store.exists(name)
    with pytest.raises(FileNotFoundError):
        store.open(name)
    with store.open(other) as stream:
        assert stream.read() == b"kept"


def test_each_save_gets_a_name_of_its_own(store):
    names = {store.save(io.BytesIO(b"same bytes")) for _ in range(3)}
    assert len(names) == 3


def test_the_database_keeps_a_file_in_chunks_of_the_configured_size(app, database_store):
    name = database_store.save(io.BytesIO(payload(2 * CHUNK + 10)))

    sizes = db.session.execute(
        select(func.length(UploadChunk.data)).where(UploadChunk.upload_key == name).order_by(UploadChunk.sequence)
    ).scalars()
    assert list(sizes) == [CHUNK, CHUNK, 10]


class Trickle(io.RawIOBase):
    """A socket-like stream: never more than a few bytes per read."""

    def __init__(self, data, most=7):
        self._data, self._most = memoryview(data), most

    def readable(self):
        return True

    def readinto(self, buffer):
        size = min(len(buffer), self._most, len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def test_a_stream_that_returns_short_reads_still_fills_whole_chunks(app, database_store):
    data = payload(3 * CHUNK)
    name = database_store.save(Trickle(data))

    assert db.session.scalar(select(func.count()).where(UploadChunk.upload_key == name)) == 3
    with database_store.open(name) as stream:
        assert stream.read() == data


def test_a_database_read_rides_out_a_dropped_connection_then_gives_up_past_the_outage(app, database_store):
    name = database_store.save(io.BytesIO(payload(3 * CHUNK)))
    clock = FakeClock()
    faults = iter([1, 1])  # the next two reads fail as a dropped connection would

    class Flaky:
        def connect(self):
            if next(faults, 0):
                raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
            return database_store.engine.connect()

    store = DatabaseStore(
        Flaky(),
        chunk_bytes=CHUNK,
        outages=OutagePolicy(deadline=10, backoff_base=1, backoff_cap=1),
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 1.0,
    )
    with store.open(name) as stream:
        assert stream.read() == payload(3 * CHUNK)
    assert clock.sleeps == [1, 1]

    with store.open(name) as stream:
        assert stream.read(CHUNK) == payload(CHUNK)
        faults = iter([1] * 100)  # the database goes away mid-file, for longer than the outage policy waits
        with pytest.raises(DatabaseUnavailable):
            stream.read(CHUNK)
        with pytest.raises(OSError, match="could not be read on"):  # never a short file that looks whole
            stream.read()
    with pytest.raises(DatabaseUnavailable):
        store.open(name)


class DroppingBody:
    """An S3 response body whose connection drops after `after` bytes."""

    def __init__(self, body, after):
        self._body, self._left = body, after

    def read(self, size):
        if self._left <= 0:
            raise ProtocolError("Connection broken: connection reset by peer")
        data = self._body.read(min(size, self._left))
        self._left -= len(data)
        return data

    def close(self):
        self._body.close()


def test_an_s3_read_reopens_where_a_dropped_connection_broke_off(s3_store):
    data = payload(300_000)
    name = s3_store.save(io.BytesIO(data))
    client = s3_store.client
    requests = []

    class DroppingClient:
        def get_object(self, **options):
            requests.append(options.get("Range"))
            response = client.get_object(**options)
            response["Body"] = DroppingBody(response["Body"], after=100_000)
            return response

    s3_store.client = DroppingClient()
    with s3_store.open(name) as stream:
        assert stream.read() == data

    assert requests == [None, "bytes=100000-", "bytes=200000-"]


def test_an_s3_upload_larger_than_a_part_goes_up_in_parts(s3_store):
    data = payload(11 * 1024 * 1024 + 5)  # three parts of 5 MB

    name = s3_store.save(io.BytesIO(data))

    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=name)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts
    assert name.startswith("uploads/")
    with s3_store.open(name) as stream:
        assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(data).digest()


# The storage: keys, plain paths from before keys, and what counts as an upload.


@pytest.fixture
def storage(app, tmp_path, database_store):
    folder = tmp_path / "uploads"
    folder.mkdir(exist_ok=True)
    stores = {"local": LocalStore(folder=str(folder)), "db": database_store}
    return UploadStorage(kind="database", stores=stores, upload_folder=str(folder))


def test_keys_name_their_store_and_any_key_reads_back_whatever_the_configured_kind(app, storage):
    database_key = storage.save(io.BytesIO(b"in the database"))
    local_key = "local:" + storage._stores["local"].save(io.BytesIO(b"on disk"))

    assert database_key.startswith("db:") and local_key.startswith("local:")
    with storage.open(database_key) as first, storage.open(local_key) as second:
        assert (first.read(), second.read()) == (b"in the database", b"on disk")


def test_plain_paths_read_as_before_and_only_those_in_the_upload_folder_are_uploads(app, storage, tmp_path):
    legacy = tmp_path / "uploads" / "0123abcd.csv"
    legacy.write_bytes(b"an upload from before keys")
    sample = app.config["SAMPLE_FILE"]

    with storage.open(str(legacy)) as stream:
        assert stream.read() == b"an upload from before keys"
    assert storage.is_upload(str(legacy)) and not storage.is_upload(sample)
    assert storage.delete(sample) is False and os.path.exists(sample)  # the bundled sample is never deleted
    assert storage.delete(str(legacy)) is True and not legacy.exists()


def test_a_key_of_a_store_this_instance_cannot_reach_is_refused_in_words(storage):
    with pytest.raises(StoreUnavailable, match="not configured"):
        storage.open("s3:uploads/abc.csv")


def test_a_local_key_cannot_name_a_file_outside_the_folder(storage):
    with pytest.raises(FileNotFoundError):
        storage.open("local:../../etc/passwd")


def test_a_spooled_file_moves_into_the_local_store_and_any_other_file_is_copied(app, tmp_path):
    folder = tmp_path / "uploads"
    storage = build_storage(app.config | {"UPLOAD_FOLDER": str(folder), "UPLOAD_STORAGE": "local"}, None)
    folder.mkdir(exist_ok=True)
    spooled, elsewhere = folder / ".incoming-1.csv", tmp_path / "mine.csv"
    spooled.write_bytes(b"spooled")
    elsewhere.write_bytes(b"mine")

    moved, copied = storage.save_file(str(spooled)), storage.save_file(str(elsewhere))

    assert not spooled.exists() and elsewhere.exists()
    assert sorted(os.listdir(folder)) == sorted([moved.removeprefix("local:"), copied.removeprefix("local:")])


def test_unknown_or_unconfigured_storage_is_refused_at_start(app):
    with pytest.raises(ValueError, match="expected one of 'local', 'database', 's3'"):
        build_storage(app.config | {"UPLOAD_STORAGE": "ftp"}, None)
    with pytest.raises(ValueError, match="S3_BUCKET"):
        build_storage(app.config | {"UPLOAD_STORAGE": "s3", "S3_BUCKET": None}, None)


# Reading a stored file.

CSV = "name,email\n" + "".join(f"Person {n},p{n}@example.com\n" for n in range(50))


def test_a_stored_file_is_read_as_rows_and_resumed_after_a_row(app, storage):
    key = storage.save(io.BytesIO(CSV.encode()))

    with CsvSource(lambda: storage.open(key)) as source:
        assert [row.email for row in source.rows(start_after=49)] == ["p48@example.com", "p49@example.com"]
        assert source.count() == 50
        assert len(list(source.rows())) == 50  # read again from the start
    assert count_rows(lambda: storage.open(key)) == 50


def test_a_stored_file_is_checked_like_a_local_one(app, storage):
    bad = CSV.encode() + b"Zo\xe9,zoe@example.com\n"
    key = storage.save(io.BytesIO(bad))

    with pytest.raises(Exception, match="byte 0xE9 at byte position .* \\(line 52\\)"):
        check_file(lambda: storage.open(key), max_line_length=1000, limits=LIMITS)
    checked = check_file(lambda: storage.open(key), encoding="latin-1", max_line_length=1000, limits=LIMITS)
    assert checked.columns == ["name", "email"]


# Memory.


class GeneratedCsv(io.RawIOBase):
    """`size` bytes of contact rows made on the fly, hashed as they are read: no copy of the file exists."""

    def __init__(self, size):
        self.left = size
        self.digest = hashlib.sha256()
        self._pending = b"name,email,company\n"
        self._row = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while len(self._pending) < len(buffer) and self.left > len(self._pending):
            self._pending += b"".join(
                f"Person {n},person{n}@example.com,Company {n % 97}\n".encode()
                for n in range(self._row, self._row + 1000)
            )
            self._row += 1000
        size = min(len(buffer), len(self._pending), self.left)
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.left -= size
        self.digest.update(buffer[:size])
        return size


MEMORY_FILE_MB = 50
# Generous: a chunk being written or read is 1 MB, and the driver may copy it once or twice. A store that held
# the file would need 50 MB.
MEMORY_BOUND_MB = 12


def test_a_large_file_streams_through_the_database_in_flat_memory(app):
    storage = get_runtime(app).storage
    database = build_storage(app.config | {"UPLOAD_STORAGE": "database"}, storage._stores["db"].engine)
    source = GeneratedCsv(MEMORY_FILE_MB * 1024 * 1024)

    tracemalloc.start()
    try:
        key = database.save(io.BufferedReader(source, buffer_size=64 * 1024))
        saved_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        digest, size = hashlib.sha256(), 0
        with database.open(key) as stream:
            while block := stream.read(64 * 1024):
                digest.update(block)
                size += len(block)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert (size, digest.hexdigest()) == (MEMORY_FILE_MB * 1024 * 1024, source.digest.hexdigest())
    print(f"peak traced memory: save {saved_peak / 2**20:.1f} MB, read {read_peak / 2**20:.1f} MB")
    assert saved_peak < MEMORY_BOUND_MB * 2**20, f"saving took {saved_peak / 2**20:.1f} MB"
    assert read_peak < MEMORY_BOUND_MB * 2**20, f"reading took {read_peak / 2**20:.1f} MB"
    database.delete(key)
    assert db.session.execute(text("SELECT count(*) FROM upload_chunks")).scalar() == 0

"""Where uploaded files live: a local folder, the database, or an S3 bucket, so any instance can read, resume and
delete any job's file.

A job's `path` names its file by a key whose prefix says which store holds it: "local:<name in UPLOAD_FOLDER>",
"db:<upload id>" or "s3:<object key>". Rows written before keys existed hold a plain path, read from this machine's
disk: an upload when it lies inside UPLOAD_FOLDER, else a file of someone else's (the bundled sample, a file
imported from the command line) that is never deleted. Files go in and out as streams: no store ever holds a
whole file in memory.
"""

import io
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Protocol

from sqlalchemy import Engine, delete, func, insert, select

from ..models import UploadChunk
from .ledger import DatabaseUnavailable, OutagePolicy, is_transient

log = logging.getLogger(__name__)

STORAGE_KINDS = {"local": "local", "database": "db", "s3": "s3"}  # UPLOAD_STORAGE's choices -> their key prefixes
_READ_BUFFER_BYTES = 64 * 1024  # what a reader asks of a store at a time


class StoreUnavailable(OSError):
    """A job's file is in a store this instance is not configured to reach (an s3: key without S3_BUCKET)."""


class Store(Protocol):
    """One place files are kept, named by keys it makes (without the prefix that names the store)."""

    def save(self, stream: BinaryIO) -> str: ...

    def open(self, name: str) -> BinaryIO: ...

    def delete(self, name: str) -> bool: ...

    def exists(self, name: str) -> bool: ...


class UploadStorage:
    """The store new uploads go to (UPLOAD_STORAGE), and every store a job's key may name.

    save() returns a key for the job's `path`; open(), delete() and exists() take any job's path, so a job
    keeps working wherever its file was stored (a local key only on the machine whose folder holds it).
    """

    def __init__(self, *, kind: str, stores: Mapping[str, Store], upload_folder: str):
        if kind not in STORAGE_KINDS:
            choices = ", ".join(f"'{choice}'" for choice in STORAGE_KINDS)
            raise ValueError(f"unknown IMPORTDASH_UPLOAD_STORAGE {kind!r}; expected one of {choices}")
        self.kind = kind
        self.prefix = STORAGE_KINDS[kind]
        if self.prefix not in stores:
            raise ValueError(f"IMPORTDASH_UPLOAD_STORAGE={kind} is not configured (s3 needs IMPORTDASH_S3_BUCKET)")
        self._stores = dict(stores)
        self.upload_folder = upload_folder

    @property
    def is_local(self) -> bool:
        """Whether new uploads stay on this machine's disk (then only this machine can run their jobs)."""
        return self.prefix == STORAGE_KINDS["local"]

    def save(self, stream: BinaryIO) -> str:
        """Store the stream's bytes, read a block at a time, and return the key that names them."""
        return f"{self.prefix}:{self._stores[self.prefix].save(stream)}"

    def save_file(self, path: str) -> str:
        """Store a local file and return its key. A file in the upload folder going to the local store is moved
        there under its stored name (no copy); any other file is copied and left where it is."""
        store = self._stores[self.prefix]
        if isinstance(store, LocalStore) and os.path.dirname(os.path.realpath(path)) == os.path.realpath(store.folder):
            return f"{self.prefix}:{store.adopt(path)}"
        with open(path, "rb") as file:
            return self.save(file)

    def open(self, key: str) -> BinaryIO:
        """Open the file as a binary stream read from the start; FileNotFoundError when it is gone."""
        store, name = self._resolve(key)
        return open(name, "rb") if store is None else store.open(name)

    def delete(self, key: str) -> bool:
        """Delete an upload; False when it was gone already, or when the key names a file that is no upload."""
        if not self.is_upload(key):
            return False
        store, name = self._resolve(key)
        if store is None:
            try:
                os.remove(name)
            except FileNotFoundError:
                return False
            return True
        return store.delete(name)

    def exists(self, key: str) -> bool:
        store, name = self._resolve(key)
        return os.path.isfile(name) if store is None else store.exists(name)

    def is_upload(self, key: str) -> bool:
        """Whether the file is the server's own copy, to delete when no run needs it: never the bundled sample,
        never a file imported in place from the command line."""
        prefix, name = split_key(key)
        if prefix is not None:
            return True
        folder = os.path.realpath(self.upload_folder)
        return os.path.commonpath([folder, os.path.realpath(name)]) == folder

    def _resolve(self, key):
        """The store and the name inside it; no store for a plain path (a row from before keys existed)."""
        prefix, name = split_key(key)
        if prefix is None:
            return None, name
        store = self._stores.get(prefix)
        if store is None:
            raise StoreUnavailable(f"the file is kept in {prefix!r} storage, which this instance is not configured for")
        return store, name


def split_key(key: str) -> tuple[str | None, str]:
    """A key's store prefix and name; (None, path) for a plain path."""
    prefix, separator, name = key.partition(":")
    if separator and prefix in STORAGE_KINDS.values():
        return prefix, name
    return None, key


def key_patterns() -> list[str]:
    """LIKE patterns that match every key a store made (plain paths are matched by their folder)."""
    return [f"{prefix}:%" for prefix in STORAGE_KINDS.values()]


# Local folder.


class LocalStore:
    """Files in a folder of this machine's disk (or one mounted on every machine at the same place)."""

    def __init__(self, *, folder: str):
        self.folder = folder

    def save(self, stream: BinaryIO) -> str:
        name = f"{uuid.uuid4().hex}.csv"
        with open(self._path(name), "xb") as target:
            shutil.copyfileobj(stream, target, _READ_BUFFER_BYTES * 16)
        return name

    def adopt(self, path: str) -> str:
        """Move a file already in the folder under a stored name (no copy) and return that name."""
        name = f"{uuid.uuid4().hex}.csv"
        os.replace(path, self._path(name))
        return name

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")

    def delete(self, name: str) -> bool:
        try:
            os.remove(self._path(name))
        except FileNotFoundError:
            return False
        return True

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def _path(self, name):
        # Names are ours (a uuid and .csv); refusing anything else keeps a tampered row from naming another file.
        if os.path.basename(name) != name or name.startswith("."):
            raise FileNotFoundError(f"not a stored file name: {name!r}")
        return os.path.join(self.folder, name)


# Database.


class DatabaseStore:
    """Files as rows of upload_chunks, chunk_bytes each: written in one transaction (a file is there whole or
    not at all), read one chunk per short query, so no transaction stays open while a job reads slowly."""

    def __init__(
        self,
        engine: Engine,
        *,
        chunk_bytes: int,
        outages: OutagePolicy,
        clock=time.monotonic,
        sleep=time.sleep,
        rand=random.random,
    ):
        self.engine = engine
        self.chunk_bytes = chunk_bytes
        self.outages = outages
        self._clock = clock
        self._sleep = sleep
        self._rand = rand

    def save(self, stream: BinaryIO) -> str:
        name = uuid.uuid4().hex
        table = UploadChunk.__table__
        with self.engine.begin() as connection:
            for sequence, data in enumerate(_blocks(stream, self.chunk_bytes)):
                connection.execute(insert(table).values(upload_key=name, sequence=sequence, data=data))
        return name

    def open(self, name: str) -> BinaryIO:
        count = self._retrying(lambda connection: connection.scalar(_chunk_count(name)))
        if not count:
            raise FileNotFoundError(f"no stored upload {name!r}")
        return _buffered(self._chunks(name, count))

    def delete(self, name: str) -> bool:
        with self.engine.begin() as connection:
            return connection.execute(delete(UploadChunk.__table__).where(_of(name))).rowcount > 0

    def exists(self, name: str) -> bool:
        return bool(self._retrying(lambda connection: connection.scalar(_chunk_count(name))))

    def _chunks(self, name, count):
        table = UploadChunk.__table__
        for sequence in range(count):
            query = select(table.c.data).where(_of(name), table.c.sequence == sequence)
            data = self._retrying(lambda connection, query=query: connection.scalar(query))
            if data is None:  # deleted while being read
                raise FileNotFoundError(f"stored upload {name!r} lost its chunk {sequence}")
            yield data

    def _retrying(self, read):
        """Run a read on a connection of its own; ride out transient faults as long as a job's writes would."""
        first_fault, attempt = None, 0
        while True:
            try:
                with self.engine.connect() as connection:
                    return read(connection)
            except Exception as error:
                if not is_transient(error):
                    raise
                now = self._clock()
                first_fault = now if first_fault is None else first_fault
                waited = now - first_fault
                if waited >= self.outages.deadline:
                    raise DatabaseUnavailable(waited) from error
                log.warning("reading a stored upload: database fault, retrying: %s", str(error).splitlines()[0])
                self._sleep(min(self.outages.backoff(attempt, self._rand), self.outages.deadline - waited))
                attempt += 1


def _of(name):
    return UploadChunk.__table__.c.upload_key == name


def _chunk_count(name):
    return select(func.count()).select_from(UploadChunk.__table__).where(_of(name))


# S3.


class S3Store:
    """Files as objects of an S3-compatible bucket: written by multipart upload a part at a time, read from
    get_object's streaming body (reopened where it broke off if the connection drops mid-file)."""

    def __init__(self, *, bucket: str, key_prefix: str, part_bytes: int, endpoint_url: str | None, client=None):
        # boto3 is imported only by instances that use S3: it takes a noticeable time to import.
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.key_prefix = key_prefix
        # Credentials and region come from boto3's usual sources (AWS_ACCESS_KEY_ID, ~/.aws, an instance role).
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url or None)
        # Parts are read into memory to be sent, two at most at a time (sending may copy one): memory is bounded by
        # the part size, never by the size of the file.
        self.transfer = TransferConfig(
            multipart_threshold=part_bytes, multipart_chunksize=part_bytes, max_concurrency=2
        )
        self.transfer.max_in_memory_upload_chunks = 2

    def save(self, stream: BinaryIO) -> str:
        name = f"{self.key_prefix}{uuid.uuid4().hex}.csv"
        self.client.upload_fileobj(stream, self.bucket, name, Config=self.transfer)
        return name

    def open(self, name: str) -> BinaryIO:
        body = _S3Body(self.client, self.bucket, name)
        return _buffered(body.chunks(), on_close=body.close)

    def delete(self, name: str) -> bool:
        existed = self.exists(name)  # S3 answers a delete the same way whether the object was there or not
        self.client.delete_object(Bucket=self.bucket, Key=name)
        return existed

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True


_S3_REOPENS = 3  # times in a row a dropped object stream is reopened without getting a byte before giving up


class _S3Body:
    """An object's bytes from one streaming GET, reopened at the byte it reached (the same version of the
    object, by its ETag) when the connection drops: a slow import may read one file for hours."""

    def __init__(self, client, bucket, name):
        self.client, self.bucket, self.name = client, bucket, name
        response = self._get()
        self.length, self.etag, self.body = response["ContentLength"], response["ETag"], response["Body"]

    def chunks(self) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        offset, failures = 0, 0
        try:
            while offset < self.length:
                try:
                    data = self.body.read(_READ_BUFFER_BYTES)
                except (BotoCoreError, HTTPError, OSError) as error:
                    data, reason = b"", error
                else:
                    reason = "the stream ended early"
                if data:
                    offset += len(data)
                    failures = 0
                    yield data
                    continue
                failures += 1
                if failures > _S3_REOPENS:
                    raise OSError(f"reading s3 object {self.name!r} broke off at byte {offset}: {reason}")
                log.warning("reading s3 object %r broke off at byte %s (%s); reopening", self.name, offset, reason)
                self.body.close()
                self.body = self._get(Range=f"bytes={offset}-", IfMatch=self.etag)["Body"]
        finally:
            self.body.close()

    def close(self) -> None:
        self.body.close()

    def _get(self, **options):
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.name, **options)
        except ClientError as error:
            if _is_missing(error):
                raise FileNotFoundError(f"no s3 object {self.name!r}") from None
            raise


def _is_missing(error):
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


# Streams.


def _blocks(stream, size):
    """Yield the stream's bytes in blocks of `size` (the last may be shorter); one empty block for no bytes."""
    sent = False
    while True:
        block = stream.read(size)
        # A socket or pipe may return less than asked: fill the block, so chunks are of the size configured.
        while block and len(block) < size and (more := stream.read(size - len(block))):
            block += more
        if not block:
            if not sent:
                yield b""
            return
        sent = True
        yield block


class _ChunkStream(io.RawIOBase):
    """A read-only binary stream over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes], on_close=None):
        self._chunks = chunks
        self._on_close = on_close
        self._current = memoryview(b"")
        self._failed = None

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._current:
            if self._failed is not None:  # a generator that raised is over: reading on must not look like the end
                raise OSError(f"the stored file could not be read on: {self._failed}")
            try:
                chunk = next(self._chunks, None)
            except Exception as error:
                self._failed = error
                raise
            if chunk is None:
                return 0
            self._current = memoryview(chunk)
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size

    def close(self):
        if not self.closed:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()  # a generator's finally runs now, not at garbage collection
            if self._on_close is not None:
                self._on_close()  # what the generator holds before it first runs (an S3 response body)
        super().close()


def _buffered(chunks, on_close=None):
    return io.BufferedReader(_ChunkStream(chunks, on_close), buffer_size=_READ_BUFFER_BYTES)


def build_storage(config: Mapping[str, Any], engine: Engine) -> UploadStorage:
    """Make the configured upload storage, able to read every kind of key this instance can reach."""
    stores: dict[str, Store] = {
        "local": LocalStore(folder=config["UPLOAD_FOLDER"]),
        "db": DatabaseStore(
            engine, chunk_bytes=int(config["UPLOAD_CHUNK_KB"] * 1024), outages=OutagePolicy.from_config(config)
        ),
    }
    if config["S3_BUCKET"]:
        stores["s3"] = S3Store(
            bucket=config["S3_BUCKET"],
            key_prefix=config["S3_PREFIX"],
            part_bytes=int(config["S3_PART_MB"] * 1024 * 1024),
            endpoint_url=config["S3_ENDPOINT_URL"],
        )
    return UploadStorage(kind=config["UPLOAD_STORAGE"], stores=stores, upload_folder=config["UPLOAD_FOLDER"])

"""Create import jobs from files, after checking the file can be imported at all."""

import os
import re
import uuid

from ..errors import InvalidFile
from ..models import ImportJob, JobMode
from .reader import MAX_LINE_LENGTH, check_file, count_rows
from .streams import JOB_CREATED, publish_job

ANONYMOUS = "anonymous"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def store_upload(stream, upload_folder):
    """Save an uploaded file under a server-generated name and return its path."""
    path = os.path.join(upload_folder, f"{uuid.uuid4().hex}.csv")
    with open(path, "wb") as target:
        while chunk := stream.read(1024 * 1024):
            target.write(chunk)
    return path


def create_import(
    session,
    broker,
    *,
    mode,
    path,
    source,
    encoding=None,
    delimiter=None,
    started_by=ANONYMOUS,
    max_line_length=MAX_LINE_LENGTH,
):
    """Check the file, then create and announce a pending job that reads it the way the check found; a bad file raises
    InvalidFile (a bad encoding or delimiter ApiError), writing nothing."""
    mode = JobMode(mode)
    if not os.path.isfile(path):
        raise InvalidFile(f"No such file: {source}")
    file_format = check_file(path, encoding=encoding, delimiter=delimiter, max_line_length=max_line_length)
    job = ImportJob(
        mode=mode.value,
        source=display_name(source),
        path=path,
        encoding=file_format.encoding,
        delimiter=file_format.delimiter,
        started_by=started_by,
    )
    if mode is JobMode.DEFAULT:
        # The bundled sample is small: counting first lets its progress show a percentage from the start.
        job.total_records = count_rows(path, file_format.encoding, file_format.delimiter)
    session.add(job)
    session.commit()
    publish_job(broker, session, job.id, JOB_CREATED)
    return job


def display_name(file_name):
    """The file's name as shown to people: no folders, no control characters, at most 255 characters."""
    name = _CONTROL_CHARACTERS.sub("", os.path.basename(file_name.replace("\\", "/"))).strip()
    return name[:255] or "upload.csv"

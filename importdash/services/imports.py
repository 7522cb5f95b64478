"""Create import jobs from files, after checking the file can be imported at all."""
import os
import uuid

from ..errors import InvalidFile
from ..models import ImportJob, JobMode
from .reader import count_rows, read_header
from .streams import JOB_CREATED, publish_job


def store_upload(stream, upload_folder):
    """Save an uploaded file under a server-generated name and return its path."""
    path = os.path.join(upload_folder, f"{uuid.uuid4().hex}.csv")
    with open(path, "wb") as target:
        while chunk := stream.read(1024 * 1024):
            target.write(chunk)
    return path


def create_import(session, broker, *, mode, path, source):
    """Check the file's header, then create and announce a pending job; a bad file raises InvalidFile."""
    mode = JobMode(mode)
    if not os.path.isfile(path):
        raise InvalidFile(f"No such file: {source}")
    read_header(path)
    job = ImportJob(mode=mode.value, source=source[:255], path=path)
    if mode is JobMode.DEFAULT:
        # The bundled sample is small: counting first lets its progress show a percentage from the start.
        job.total_records = count_rows(path)
    session.add(job)
    session.commit()
    publish_job(broker, session, job.id, JOB_CREATED)
    return job

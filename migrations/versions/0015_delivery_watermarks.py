"""Delivery watermarks (#17): import_jobs.sent_through and import_jobs.settled_through.

A fresh record is now written once, when it is staged; the job's watermarks say which of its records went out
and which were accepted (models.RecordStatus). The upgrade turns records stored in flight (and never attempted)
back into pending ones behind their job's sent_through, which shows them in flight as before; the downgrade
writes the statuses the watermarks tell into the records again. Neither loses a record or a verdict.

Revision ID: 0015_delivery_watermarks
Revises: 0014_pause_priority
Create Date: 2026-12-07 11:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015_delivery_watermarks"
down_revision = "0014_pause_priority"
branch_labels = None
depends_on = None

_FRESH = "records.status = 'pending' AND records.attempts = 0 AND records.job_id = import_jobs.id"


def upgrade():
    op.add_column("import_jobs", sa.Column("sent_through", sa.Integer(), server_default="0", nullable=False))
    op.add_column("import_jobs", sa.Column("settled_through", sa.Integer(), server_default="0", nullable=False))
    in_flight = "records.job_id = import_jobs.id AND records.status = 'in_flight' AND records.attempts = 0"
    op.execute(
        f'UPDATE import_jobs SET sent_through = (SELECT MAX(records."row") FROM records WHERE {in_flight})'
        f" WHERE EXISTS (SELECT 1 FROM records WHERE {in_flight})"
    )
    op.execute("UPDATE records SET status = 'pending' WHERE status = 'in_flight' AND attempts = 0")


def downgrade():
    op.execute(
        "UPDATE records SET status = 'succeeded', attempts = 1 WHERE EXISTS (SELECT 1 FROM import_jobs"
        f' WHERE {_FRESH} AND records."row" <= import_jobs.settled_through)'
    )
    op.execute(
        "UPDATE records SET status = 'in_flight' WHERE EXISTS (SELECT 1 FROM import_jobs"
        f' WHERE {_FRESH} AND records."row" <= import_jobs.sent_through)'
    )
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("settled_through")
        batch_op.drop_column("sent_through")

"""import_jobs.cancelled_count: records a cancel stopped before they were sent, so that processed = succeeded +
failed + cancelled. Jobs cancelled before this revision get their count from their cancelled records, and those
records are counted as processed too, as new cancels count them (only cancelled jobs, and resumed ones still
pending, hold cancelled records).

Revision ID: 0006_cancelled_count
Revises: 0005_job_runs
Create Date: 2026-12-07 06:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006_cancelled_count"
down_revision = "0005_job_runs"
branch_labels = None
depends_on = None

_CANCELLED = "(SELECT count(*) FROM records WHERE records.job_id = import_jobs.id AND records.status = 'cancelled')"


def upgrade():
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancelled_count", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        f"UPDATE import_jobs SET cancelled_count = {_CANCELLED}, processed_count = processed_count + {_CANCELLED}"
        # A cancelled job, or one resumed whose run has yet to take its cancelled records back.
        " WHERE status IN ('cancelled', 'pending')"
    )


def downgrade():
    op.execute("UPDATE import_jobs SET processed_count = processed_count - cancelled_count")
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("cancelled_count")

"""Pause and priority (#16): import_jobs.pause_requested, asked of a job's run from any process like
cancel_requested, and import_jobs.priority (0 for every existing job), with the index claims read in their order:
the runnable jobs, highest priority first, then oldest. A paused job is a status value, which needs no DDL.

Revision ID: 0014_pause_priority
Revises: 0013_schedules
Create Date: 2026-12-07 09:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014_pause_priority"
down_revision = "0013_schedules"
branch_labels = None
depends_on = None

_RUNNABLE = sa.text("status IN ('pending', 'processing')")


def upgrade():
    # Plain ADD COLUMNs with server defaults: neither database copies import_jobs for them.
    op.add_column("import_jobs", sa.Column("pause_requested", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("import_jobs", sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
    op.create_index(
        "ix_import_jobs_claim_order",
        "import_jobs",
        [sa.text("priority DESC"), "created_at", "id"],
        sqlite_where=_RUNNABLE,
        postgresql_where=_RUNNABLE,
    )


def downgrade():
    # A paused job waits again once pause is gone: it is the nearest status the older code knows.
    op.execute("UPDATE import_jobs SET status = 'pending' WHERE status = 'paused'")
    op.drop_index("ix_import_jobs_claim_order", table_name="import_jobs")
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("pause_requested")

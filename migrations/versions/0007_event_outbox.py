"""event_outbox: job events announced for the other processes on one SQLite file (the event relay). PostgreSQL
carries them with NOTIFY and never writes here; the table exists on both so one schema serves both.

Revision ID: 0007_event_outbox
Revises: 0006_cancelled_count
Create Date: 2026-12-07 06:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007_event_outbox"
down_revision = "0006_cancelled_count"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )


def downgrade():
    op.drop_table("event_outbox")

"""rate_limits: one row per downstream holding its shared rate limit (GCRA's theoretical arrival time), the pause a
429 asked for and the circuit breaker's state, on the database's clock, for every process that calls it.

Revision ID: 0009_rate_limits
Revises: 0008_upload_chunks
Create Date: 2026-12-07 06:05:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009_rate_limits"
down_revision = "0008_upload_chunks"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.Column("paused_until", sa.Double(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("probe_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade():
    op.drop_table("rate_limits")

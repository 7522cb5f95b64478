"""upload_chunks: uploads kept in the database (UPLOAD_STORAGE = "database"), one row per block of a file, so every
instance can read any job's file. Existing jobs keep their plain paths and are read as before.

Revision ID: 0008_upload_chunks
Revises: 0007_event_outbox
Create Date: 2026-12-07 06:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008_upload_chunks"
down_revision = "0007_event_outbox"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "upload_chunks",
        sa.Column("upload_key", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("upload_key", "sequence"),
    )


def downgrade():
    op.drop_table("upload_chunks")

"""import_jobs.columns (the file's header, so errors.csv needs no file) and import_jobs.upload_removed_at (when
the uploaded file was deleted). Existing jobs keep NULL in both: their errors.csv reads the header from the file
while it is there, as before.

Revision ID: 0003_job_file_columns
Revises: 0002_ledger_writes
Create Date: 2026-12-01 22:22:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003_job_file_columns"
down_revision = "0002_ledger_writes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("columns", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("upload_removed_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("upload_removed_at")
        batch_op.drop_column("columns")

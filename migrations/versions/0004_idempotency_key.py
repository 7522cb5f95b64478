"""import_jobs.idempotency_key, unique: a script that retries the request starting an import, with the same
Idempotency-Key header, gets the first job back instead of a second one. Existing jobs have none.

Revision ID: 0004_idempotency_key
Revises: 0003_job_file_columns
Create Date: 2026-12-01 22:35:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004_idempotency_key"
down_revision = "0003_job_file_columns"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.create_index("uq_import_jobs_idempotency_key", ["idempotency_key"], unique=True)


def downgrade():
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_index("uq_import_jobs_idempotency_key")
        batch_op.drop_column("idempotency_key")

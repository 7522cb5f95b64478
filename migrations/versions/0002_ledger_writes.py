"""import_jobs.ledger_writes: commits by the lease holder's ledger, read back after a commit whose outcome it did
not see (a dropped connection), so that no write is applied twice. Existing jobs start at 0.

Revision ID: 0002_ledger_writes
Revises: 0001_initial
Create Date: 2026-12-01 22:03:10.232371

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002_ledger_writes"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ledger_writes", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("ledger_writes")

"""records.job_id and import_errors.job_id without their foreign keys (#17).

A foreign key is checked row by row: on PostgreSQL each inserted record ran a lookup of its job, which was about
30 % of a staging INSERT; SQLite does the same lookup per row. The two tables are written in bulk, by imports
whose job row exists for their whole run, and every place that deletes jobs deletes their records and error rows
itself (services/jobs.py), so their ON DELETE CASCADE was never what removed them. No data changes; the downgrade
puts the keys back after deleting the rows of jobs that no longer exist, which the keys would refuse.

SQLite's keys are unnamed, so batch mode names them by a naming convention to find them.

Revision ID: 0016_no_job_keys
Revises: 0015_delivery_watermarks
Create Date: 2026-12-07 14:10:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0016_no_job_keys"
down_revision = "0015_delivery_watermarks"
branch_labels = None
depends_on = None

_TABLES = ("records", "import_errors")
# PostgreSQL's default name for an unnamed foreign key, which SQLite's batch mode is told to use too.
_NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def upgrade():
    for table in _TABLES:
        with op.batch_alter_table(table, naming_convention=_NAMING) as batch_op:
            batch_op.drop_constraint(f"{table}_job_id_fkey", type_="foreignkey")


def downgrade():
    for table in _TABLES:
        op.execute(f"DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM import_jobs WHERE import_jobs.id = job_id)")
        with op.batch_alter_table(table, naming_convention=_NAMING) as batch_op:
            batch_op.create_foreign_key(f"{table}_job_id_fkey", "import_jobs", ["job_id"], ["id"], ondelete="CASCADE")

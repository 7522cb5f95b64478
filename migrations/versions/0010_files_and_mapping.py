"""Files as people have them (#13): how each job's file is read (format, sheet, column mapping), its duplicate
policy, template and estimated rows; every record's extra columns and version; saved templates, mapping memory
and previews.

Existing jobs read CSV with the columns name, email and company (mapping NULL means exactly that) and skipped
duplicates; existing records have no extra fields and are at version 1.

Revision ID: 0010_files_and_mapping
Revises: 0009_rate_limits
Create Date: 2026-12-07 08:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010_files_and_mapping"
down_revision = "0009_rate_limits"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "import_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("file_format", sa.String(length=16), nullable=True),
        sa.Column("encoding", sa.String(length=64), nullable=True),
        sa.Column("delimiter", sa.String(length=1), nullable=True),
        sa.Column("sheet", sa.Text(), nullable=True),
        sa.Column("mapping", sa.JSON(), nullable=True),
        sa.Column("duplicate_policy", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "header_mappings",
        sa.Column("header_key", sa.String(length=64), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("header_key"),
    )
    op.create_table(
        "import_previews",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index("ix_import_previews_expires_at", "import_previews", ["expires_at"])
    # import_jobs is small: batch mode rebuilds it on SQLite, which cannot add a foreign key otherwise.
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file_format", sa.String(length=16), server_default="csv", nullable=False))
        batch_op.add_column(sa.Column("sheet", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("mapping", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("duplicate_policy", sa.String(length=16), server_default="skip", nullable=False))
        batch_op.add_column(sa.Column("template_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("estimated_total", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_import_jobs_template_id_import_templates",
            "import_templates",
            ["template_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # records may hold millions of rows: plain ADD COLUMNs, which neither database copies the table for.
    op.add_column("records", sa.Column("extra", sa.JSON(), nullable=True))
    op.add_column("records", sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade():
    op.drop_column("records", "version")
    op.drop_column("records", "extra")
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_import_jobs_template_id_import_templates", type_="foreignkey")
        batch_op.drop_column("estimated_total")
        batch_op.drop_column("template_id")
        batch_op.drop_column("duplicate_policy")
        batch_op.drop_column("mapping")
        batch_op.drop_column("sheet")
        batch_op.drop_column("file_format")
    op.drop_index("ix_import_previews_expires_at", table_name="import_previews")
    op.drop_table("import_previews")
    op.drop_table("header_mappings")
    op.drop_table("import_templates")

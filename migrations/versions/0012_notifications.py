"""Notifications when an import ends (#15): per-template webhook, email addresses and endings, and the delivery
log of every notification (notification_deliveries).

Existing templates notify as the global settings say (their new columns are NULL).

Revision ID: 0012_notifications
Revises: 0011_accounts
Create Date: 2026-12-07 08:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_notifications"
down_revision = "0011_accounts"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("import_templates", sa.Column("notify_webhook_url", sa.Text(), nullable=True))
    op.add_column("import_templates", sa.Column("notify_email", sa.JSON(), nullable=True))
    op.add_column("import_templates", sa.Column("notify_on", sa.JSON(), nullable=True))
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("ending", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["import_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_notification_deliveries_job_id_id", "notification_deliveries", ["job_id", "id"])
    op.create_index("ix_notification_deliveries_status_next", "notification_deliveries", ["status", "next_attempt_at"])


def downgrade():
    op.drop_index("ix_notification_deliveries_status_next", table_name="notification_deliveries")
    op.drop_index("ix_notification_deliveries_job_id_id", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    with op.batch_alter_table("import_templates", schema=None) as batch_op:
        batch_op.drop_column("notify_on")
        batch_op.drop_column("notify_email")
        batch_op.drop_column("notify_webhook_url")

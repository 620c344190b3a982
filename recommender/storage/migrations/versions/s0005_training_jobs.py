"""Training jobs in the store: every process of the service sees the jobs any of them runs.

The release before Alembic ignores the table, so luban_meta's schema_version stays 4 and that
release still opens the store."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("activated", sa.Integer, nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
    )
    op.create_index("ix_training_jobs_tenant_started", "training_jobs", ["tenant_id", "started_us"])


def downgrade() -> None:
    op.drop_index("ix_training_jobs_tenant_started", table_name="training_jobs")
    op.drop_table("training_jobs")

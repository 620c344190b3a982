"""Paths shared by every server process (decision 15): a read landing on another process than
the one that planned the path serves the stored path while nothing it depends on changed.

A cache: the release before Alembic ignores the table, so luban_meta's schema_version stays 4."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_paths",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("learner_id", sa.String(128), primary_key=True),
        sa.Column("request_key", sa.String(64), primary_key=True),
        sa.Column("planner_key", sa.String(255), nullable=False),
        sa.Column("version_key", sa.String(64), nullable=False),
        sa.Column("generated_us", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shared_paths")

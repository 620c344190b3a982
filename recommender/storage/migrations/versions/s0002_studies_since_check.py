"""Schema 2: skill states count studies since the last check; erasures are remembered.

Existing states start at 0 studies since a check: no check is due until new studies."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("skill_states") as batch:
        batch.add_column(sa.Column("studies_since_check", sa.Integer, nullable=False, server_default="0"))
    # a keyed hash of (tenant, learner id), never the id itself, and when
    op.create_table(
        "erasures",
        sa.Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("erased_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_erasures_time", "erasures", ["erased_us"])


def downgrade() -> None:
    op.drop_table("erasures")
    with op.batch_alter_table("skill_states") as batch:
        batch.drop_column("studies_since_check")

"""Skill states remember whether a module assessment has taught the skill: an item result on a
taught skill is read with emissions of its own (kt/bkt.py).

Existing states are marked taught: which of them a module taught is not known without the
catalog, and the taught pair is the cautious reading (fitted only from checks after studies, the
defaults otherwise), where the placement pair could read a right answer as proof of mastery."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN (SQLite takes one with a constant default), not a batch table copy
    op.add_column("skill_states", sa.Column("studied", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE skill_states SET studied = :taught").bindparams(taught=True))


def downgrade() -> None:
    with op.batch_alter_table("skill_states") as batch:
        batch.drop_column("studied")

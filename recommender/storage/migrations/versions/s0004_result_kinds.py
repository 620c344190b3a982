"""Schema 4: assessment results keep their kind as sent.

Results recorded before kinds existed are unspecified (0): their kind is inferred from the item
id when read, and their fingerprints are unchanged, so idempotent replays stay duplicates."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessment_events") as batch:
        batch.add_column(sa.Column("kind", sa.Integer, nullable=False, server_default="0"))
    # the hand-written upgrades' counter, for the release before Alembic, which reads it: that
    # release opens a store at 4 (this schema) and refuses one above; a revision it could not read
    # sets it higher
    meta = sa.table("luban_meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.execute(meta.delete().where(meta.c.key == "schema_version"))
    op.execute(meta.insert().values(key="schema_version", value="4"))


def downgrade() -> None:
    with op.batch_alter_table("assessment_events") as batch:
        batch.drop_column("kind")

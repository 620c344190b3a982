"""Skill states remember whether a module assessment has taught the skill: an item result on a
taught skill is read with emissions of its own (kt/bkt.py).

Existing states are marked from the stored results, as training reads them: taught where a module
assessment of the learner names the skill (kind 1, or an unspecified kind without an item: the
store keeps each result's resolved skills and kind). A result stored with no skills, which no
release writes, counts as teaching: the taught pair is the cautious reading. Results that arrived
out of time order are read as the store applied them, in arrival order."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MODULE_ASSESSMENT, UNSPECIFIED = 1, 0  # domain.assessment.ResultKind, as stored


def upgrade() -> None:
    # a plain ADD COLUMN (SQLite takes one with a constant default), not a batch table copy
    op.add_column("skill_states", sa.Column("studied", sa.Boolean, nullable=False, server_default=sa.false()))
    find = "instr" if op.get_bind().dialect.name == "sqlite" else "strpos"
    op.execute(
        sa.text(
            "UPDATE skill_states SET studied = :taught WHERE EXISTS (SELECT 1 FROM assessment_events e "
            "WHERE e.tenant_id = skill_states.tenant_id AND e.learner_id = skill_states.learner_id "
            "AND (e.kind = :module OR (e.kind = :unspecified AND e.item_id = '')) "
            f"AND (e.skill_ids = '' OR {find}(',' || e.skill_ids || ',', ',' || skill_states.skill_id || ',') > 0))"
        ).bindparams(taught=True, module=MODULE_ASSESSMENT, unspecified=UNSPECIFIED)
    )


def downgrade() -> None:
    with op.batch_alter_table("skill_states") as batch:
        batch.drop_column("studied")

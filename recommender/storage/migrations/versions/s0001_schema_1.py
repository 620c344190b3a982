"""Schema 1: catalog, learners, assessment results, skill states, model activations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    meta = op.create_table(
        "luban_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "catalog_revision", "value": "0"}])
    op.create_table(
        "catalog_entries",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("entry_id", sa.String(128), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "learners",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("learner_id", sa.String(128), primary_key=True),
        sa.Column("cohort_id", sa.String(128), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("profile_updated_us", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "assessment_events",
        sa.Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("learner_id", sa.String(128), nullable=False),
        sa.Column("module_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("skill_ids", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("occurred_us", sa.BigInteger, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(40), nullable=False),
        sa.UniqueConstraint("tenant_id", "event_id", name="uq_events_tenant_event"),
    )
    op.create_index("ix_events_learner", "assessment_events", ["tenant_id", "learner_id", "seq"])
    op.create_table(
        "skill_states",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("learner_id", sa.String(128), primary_key=True),
        sa.Column("skill_id", sa.String(128), primary_key=True),
        sa.Column("mastery", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_practiced_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "model_activations",
        sa.Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("activated_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("model_activations", "skill_states", "assessment_events", "learners", "catalog_entries"):
        op.drop_table(table)
    op.drop_table("luban_meta")

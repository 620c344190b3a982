"""Schema 3: model activations belong to a tenant; tenants have catalogs of their own.

Earlier activations were for every tenant at once: they are marked with the legacy tenant ("")
and the model registry decides at start what becomes of them (adopted by the one tenant whose
learners the model holds, or retired). The catalog stored so far becomes the shared one."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_activations") as batch:
        batch.add_column(sa.Column("tenant_id", sa.String(128), nullable=False, server_default=""))
    op.create_table(
        "tenant_catalog_entries",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("entry_id", sa.String(128), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "tenant_catalogs",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("inherits", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_catalogs")
    op.drop_table("tenant_catalog_entries")
    with op.batch_alter_table("model_activations") as batch:
        batch.drop_column("tenant_id")

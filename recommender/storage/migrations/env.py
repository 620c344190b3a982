"""Alembic's environment: migrations run on the connection the store hands over (in its own
transaction, so a failed upgrade leaves the store as it was), or, for the `alembic` command, on
an engine for the store named by `-x url=STORE_URL`. SQLite ALTERs go through batch mode."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if isinstance(given, sa.Connection):
    _run(given)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("name the store: alembic -x url=STORE_URL ...")
    engine = sa.create_engine(url)
    with engine.connect() as own:
        _run(own)
    engine.dispose()

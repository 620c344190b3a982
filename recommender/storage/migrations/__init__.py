"""The store's schema migrations (Alembic), run at store open on the store's own connection.

The revisions are in versions/, one per schema change, each frozen as it was written. A store
opens at the newest (`head`); one whose revision this code does not know was written by a newer
release and is refused rather than misread.

Stores written before Alembic carry the hand-written upgrades' counter instead
(luban_meta.schema_version, 1 to 4) and no alembic_version table. Such a store is adopted: its
version maps to the revision with the same schema (LEGACY_REVISIONS), the tables that version
created at start rather than in an upgrade step are created if it lacks them (ADDED_WITHIN), it
is stamped with that revision, then upgraded like any other. The counter is left as it was, so
the release before Alembic still opens a store this one upgraded from version 4.

A store already at HEAD opens with one query and without importing Alembic (a large share of a
command's start); anything else goes through Alembic.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from recommender.errors import PreconditionFailed

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent

# the newest revision in versions/ (a test holds it to Alembic's head: bump it with each new one)
HEAD = "0007"

# luban_meta.schema_version -> the revision whose schema it is
LEGACY_REVISIONS = {1: "0001", 2: "0002", 3: "0003", 4: "0004"}

# Tables that appeared within a legacy version (created at start, with no version bump), frozen
# as that version made them: a store of the version may lack them.
_FROZEN = sa.MetaData()
_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ERASURES = sa.Table(
    "erasures",
    _FROZEN,
    sa.Column("seq", _SEQUENCE, primary_key=True, autoincrement=True),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("erased_us", sa.BigInteger, nullable=False),
    sa.Index("ix_erasures_time", "erased_us"),
)
_TENANT_CATALOG_ENTRIES = sa.Table(
    "tenant_catalog_entries",
    _FROZEN,
    sa.Column("tenant_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("entry_id", sa.String(128), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)
_TENANT_CATALOGS = sa.Table(
    "tenant_catalogs",
    _FROZEN,
    sa.Column("tenant_id", sa.String(128), primary_key=True),
    sa.Column("inherits", sa.Integer, nullable=False),
)
ADDED_WITHIN: dict[int, tuple[sa.Table, ...]] = {
    2: (_ERASURES,),
    3: (_ERASURES, _TENANT_CATALOG_ENTRIES, _TENANT_CATALOGS),
    4: (_ERASURES, _TENANT_CATALOG_ENTRIES, _TENANT_CATALOGS),
}


def config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration without an alembic.ini: the scripts beside this module."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None, "the migrations have one head"
    return revision


def current(connection: sa.Connection) -> str | None:
    """The store's revision (None: no alembic_version table)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection) -> None:
    """Bring the store on `connection` to the head revision, inside the caller's transaction."""
    if _at_head(connection):
        return
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    cfg = config(connection)
    script = ScriptDirectory.from_config(cfg)
    found = current(connection)
    if found is None:
        legacy = _legacy_version(connection)
        if legacy is not None:
            _adopt(connection, cfg, legacy)
    else:
        try:
            script.get_revision(found)
        except CommandError:
            raise PreconditionFailed(
                f"the database schema is revision {found}, newer than this code (head {script.get_current_head()}); "
                "upgrade Luban Path"
            ) from None
    command.upgrade(cfg, "head")


def _at_head(connection: sa.Connection) -> bool:
    """Whether the store records exactly the HEAD revision (what Alembic's upgrade would find
    nothing to do for), read without Alembic."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return False
    found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return found == [HEAD]


def _legacy_version(connection: sa.Connection) -> int | None:
    if not sa.inspect(connection).has_table("luban_meta"):
        return None
    value = connection.execute(sa.text("SELECT value FROM luban_meta WHERE key = 'schema_version'")).scalar()
    return int(value) if value is not None else None


def _adopt(connection: sa.Connection, cfg: Config, version: int) -> None:
    revision = LEGACY_REVISIONS.get(version)
    if revision is None:
        newest = max(LEGACY_REVISIONS)
        if version > newest:
            raise PreconditionFailed(
                f"the database schema is version {version}, newer than this code ({newest} before "
                f"revision {head()}); upgrade Luban Path"
            )
        raise PreconditionFailed(f"the database schema version {version} is unknown")
    from alembic import command

    for table in ADDED_WITHIN.get(version, ()):
        table.create(connection, checkfirst=True)
    command.stamp(cfg, revision)

"""Persistence: one Store interface, one SQLAlchemy Core implementation (SQLite, PostgreSQL)."""

from recommender.storage.sql import SqlStore, open_store
from recommender.storage.store import EventOutcome, Store, Updater

__all__ = ["EventOutcome", "SqlStore", "Store", "Updater", "open_store"]

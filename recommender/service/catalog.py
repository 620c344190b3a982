"""Catalog use cases, with a per-process cache that follows the store's revision."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from recommender.domain.catalog import Catalog, Module, Skill, TargetRole, merge_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.errors import Conflict, InvalidInput, PreconditionFailed
from recommender.storage.store import Store


class CatalogService:
    """Reads are served from memory; the revision is re-checked every `refresh_seconds`, so
    several server processes on one database converge on the same catalog."""

    def __init__(self, store: Store, refresh_seconds: float = 2.0) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._checked_at = 0.0

    def current(self) -> Catalog:
        catalog = self._catalog
        if catalog is not None and time.monotonic() - self._checked_at < self._refresh_seconds:
            return catalog
        with self._lock:
            if self._catalog is None or self._store.catalog_revision() != self._catalog.revision:
                self._catalog = self._store.load_catalog()
            self._checked_at = time.monotonic()
            return self._catalog

    def require(self) -> Catalog:
        """The catalog, or FAILED_PRECONDITION when none is loaded yet."""
        catalog = self.current()
        if catalog.is_empty():
            raise PreconditionFailed(
                "no catalog is loaded; load one with UpsertCatalog or `recommender catalog load FILE`",
                subject="catalog",
            )
        return catalog

    def upsert(
        self,
        skills: Iterable[Skill],
        modules: Iterable[Module],
        roles: Iterable[TargetRole],
        *,
        replace: bool,
    ) -> Catalog:
        skills, modules, roles = list(skills), list(modules), list(roles)
        if not (skills or modules or roles):
            raise InvalidInput.of("skills", "the request holds no skills, modules or roles")
        for _attempt in range(3):
            with self._lock:
                self._catalog = None
            current = self.current()
            updated = merge_catalog(current, skills, modules, roles, replace=replace)
            try:
                self._store.save_catalog(updated, current.revision)
            except Conflict:
                continue
            with self._lock:
                self._catalog = updated
                self._checked_at = time.monotonic()
            return updated
        raise Conflict("the catalog kept changing concurrently; retry")

    def load_file(self, path: Path, *, replace: bool = True) -> Catalog:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise InvalidInput.of("catalog", f"cannot read {path}: {exc}") from exc
        skills, modules, roles = catalog_parts_from_dict(data)
        return self.upsert(skills, modules, roles, replace=replace)

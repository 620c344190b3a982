"""Catalog use cases, with a per-process cache that follows the store's revision.

Each tenant has its own catalog: the shared catalog (managed by the operator), with the tenant's own
entries over it by id, or, if the tenant chose not to inherit, its own entries alone. A tenant
that never wrote a catalog inherits the shared one, as every tenant did before catalogs had
tenants. A tenant's admin changes only its own entries."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from recommender.domain.catalog import Catalog, Module, Skill, TargetRole, build_catalog, merge_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.errors import Conflict, FieldViolation, InvalidInput, PreconditionFailed
from recommender.storage.store import DEFAULT_TENANT, Store, TenantCatalog

SHARED = None  # the `tenant` of the shared catalog in upsert and load_file


class CatalogService:
    """Reads are served from memory; the revision (which counts every catalog write) is re-checked
    every `refresh_seconds`, so several server processes on one database converge."""

    def __init__(self, store: Store, refresh_seconds: float = 2.0) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._catalogs: dict[str | None, tuple[Catalog, float]] = {}  # tenant (None: shared) -> (catalog, checked)

    def current(self, tenant: str = DEFAULT_TENANT) -> Catalog:
        """The tenant's catalog as it plans and validates with."""
        return self._cached(tenant)

    def shared(self) -> Catalog:
        return self._cached(SHARED)

    def _cached(self, tenant: str | None) -> Catalog:
        found = self._catalogs.get(tenant)
        if found is not None and time.monotonic() - found[1] < self._refresh_seconds:
            return found[0]
        with self._lock:
            found = self._catalogs.get(tenant)
            if found is None or self._store.catalog_revision() != found[0].revision:
                catalog = self._load(tenant)
            else:
                catalog = found[0]
            self._catalogs[tenant] = (catalog, time.monotonic())
            return catalog

    def _load(self, tenant: str | None) -> Catalog:
        if tenant is SHARED:
            return self._store.load_catalog()
        shared, own = self._store.load_tenant_catalog(tenant)
        return effective_catalog(shared, own)

    def require(self, tenant: str = DEFAULT_TENANT) -> Catalog:
        """The tenant's catalog, or FAILED_PRECONDITION when it is empty."""
        catalog = self.current(tenant)
        if catalog.is_empty():
            raise PreconditionFailed(
                "no catalog is loaded; load one with UpsertCatalog or `recommender catalog load FILE`",
                subject="catalog",
            )
        return catalog

    def any_loaded(self) -> bool:
        """Whether any catalog was ever written (the revision counts every write)."""
        return self._store.catalog_revision() > 0

    def upsert(
        self,
        skills: Iterable[Skill],
        modules: Iterable[Module],
        roles: Iterable[TargetRole],
        *,
        replace: bool,
        tenant: str | None = SHARED,
        inherit: bool | None = None,
    ) -> Catalog:
        """Merge (or replace) the shared catalog (`tenant` None: the operator's) or the tenant's own
        entries; `inherit` sets whether the tenant's catalog includes the shared one (unchanged
        when None; a tenant's first write inherits). Returns the catalog as its owner now sees it."""
        skills, modules, roles = list(skills), list(modules), list(roles)
        if not (skills or modules or roles):
            raise InvalidInput.of("skills", "the request holds no skills, modules or roles")
        for _attempt in range(3):
            with self._lock:
                self._catalogs.clear()
            try:
                updated = (
                    self._upsert_shared(skills, modules, roles, replace)
                    if tenant is SHARED
                    else self._upsert_own(tenant, skills, modules, roles, replace, inherit)
                )
            except Conflict:
                continue
            with self._lock:
                self._catalogs.clear()
            return updated
        raise Conflict("the catalog kept changing concurrently; retry")

    def _upsert_shared(
        self, skills: list[Skill], modules: list[Module], roles: list[TargetRole], replace: bool
    ) -> Catalog:
        current = self._store.load_catalog()
        updated = merge_catalog(current, skills, modules, roles, replace=replace)
        problems = []
        for tenant, own in sorted(self._store.tenant_catalogs().items()):
            if own.inherits:
                try:
                    effective_catalog(updated, own)
                except InvalidInput as exc:
                    problems.append(FieldViolation("skills", f"tenant {tenant}'s catalog would break: {exc}"))
        if problems:
            raise InvalidInput(problems)
        self._store.save_catalog(updated, current.revision)
        return updated

    def _upsert_own(
        self,
        tenant: str,
        skills: list[Skill],
        modules: list[Module],
        roles: list[TargetRole],
        replace: bool,
        inherit: bool | None,
    ) -> Catalog:
        shared, own = self._store.load_tenant_catalog(tenant)
        before = own or TenantCatalog([], [], [], inherits=True)
        if replace:
            merged = TenantCatalog(skills, modules, roles, before.inherits)
        else:
            merged = TenantCatalog(
                list(({s.skill_id: s for s in before.skills} | {s.skill_id: s for s in skills}).values()),
                list(({m.module_id: m for m in before.modules} | {m.module_id: m for m in modules}).values()),
                list(({r.role_id: r for r in before.roles} | {r.role_id: r for r in roles}).values()),
                before.inherits,
            )
        if inherit is not None:
            merged = TenantCatalog(merged.skills, merged.modules, merged.roles, inherit)
        revision = shared.revision + 1
        updated = effective_catalog(replace_revision(shared, revision), merged)  # validated as a whole
        self._store.save_tenant_catalog(tenant, merged, revision, shared.revision)
        return updated

    def load_file(self, path: Path, *, replace: bool = True, tenant: str | None = SHARED) -> Catalog:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise InvalidInput.of("catalog", f"cannot read {path}: {exc}") from exc
        skills, modules, roles = catalog_parts_from_dict(data)
        return self.upsert(skills, modules, roles, replace=replace, tenant=tenant)


def effective_catalog(shared: Catalog, own: TenantCatalog | None) -> Catalog:
    """What a tenant sees: the shared catalog with its own entries over it (or its own alone),
    validated as a whole; the revision is the store's."""
    if own is None:
        return shared
    if not own.inherits:
        return build_catalog(own.skills, own.modules, own.roles, shared.revision)
    merged = merge_catalog(shared, own.skills, own.modules, own.roles, replace=False)
    return replace_revision(merged, shared.revision)


def replace_revision(catalog: Catalog, revision: int) -> Catalog:
    return dataclasses.replace(catalog, revision=revision)

"""Who calls: bearer tokens from LUBAN_AUTH_TOKENS_FILE, each naming a tenant and its roles. The
gRPC API and the dashboard check the same tokens the same way."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from recommender.errors import InvalidInput
from recommender.service.models import check_tenant_name

ROLES = frozenset({"platform", "ml", "admin", "operator"})


@dataclass(frozen=True)
class Principal:
    tenant: str
    roles: frozenset[str]


class TokenBook:
    """Bearer tokens from LUBAN_AUTH_TOKENS_FILE, kept only as SHA-256 hashes in memory."""

    def __init__(self, entries: Mapping[str, Principal]) -> None:
        self._by_hash = dict(entries)

    @staticmethod
    def digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the token file {path}: {exc}") from exc
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of {{token, tenant, roles}}")
        entries: dict[str, Principal] = {}
        for i, item in enumerate(data):
            token, tenant, roles = item.get("token"), item.get("tenant"), item.get("roles")
            if not (isinstance(token, str) and len(token) >= 16 and isinstance(tenant, str) and tenant):
                raise ValueError(f"{path}[{i}]: token (16+ characters) and tenant are required")
            try:
                check_tenant_name(tenant)
            except InvalidInput as exc:
                raise ValueError(f"{path}[{i}]: {exc}") from exc
            if not (isinstance(roles, list) and set(roles) <= ROLES):
                raise ValueError(f"{path}[{i}]: roles must be a list of {', '.join(sorted(ROLES))}")
            entries[cls.digest(token)] = Principal(tenant, frozenset(roles))
        return cls(entries)

    def principal(self, token: str) -> Principal | None:
        return self._by_hash.get(self.digest(token))

    def tenants(self) -> list[str]:
        return sorted({p.tenant for p in self._by_hash.values()})

    def by_digest(self, digest: str) -> Principal | None:
        """The principal whose token hashes to `digest` (a dashboard session keeps the hash, never
        the token)."""
        return self._by_hash.get(digest)

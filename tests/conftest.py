"""Shared fixtures: real stores (a SQLite file, and PostgreSQL when configured), a real gRPC
server on a loopback port, and a small catalog whose right answers are known."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from recommender.config import Settings
from recommender.domain.catalog import Module, Skill, SkillRequirement, SkillWeight, TargetRole
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.storage import SqlStore, open_store

POSTGRES_URL = os.environ.get("LUBAN_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("LUBAN_REQUIRE_POSTGRES") == "1"
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def _postgres_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema per test, dropped afterwards."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("LUBAN_REQUIRE_POSTGRES=1 but LUBAN_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured (set LUBAN_TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as c:
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = sa.engine.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'luban.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'luban.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_schema_url()


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    s.create_schema()
    yield s
    s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def make_settings(store_url: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        store_url=store_url,
        models_dir=tmp_path / "models",
        catalog_refresh_seconds=0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def app(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[App]:
    application = build_app(make_settings(store_url, tmp_path), clock=clock)
    yield application
    application.close()


# A tiny catalog with a known right answer: welding needs safety first; Chinese-only advanced.
def tiny_catalog() -> tuple[list[Skill], list[Module], list[TargetRole]]:
    skills = [
        Skill("safety", {"en": "Safety", "zh": "安全"}, "manufacturing"),
        Skill("welding", {"en": "Welding", "zh": "焊接"}, "manufacturing"),
        Skill("inspection", {"en": "Inspection", "zh": "检验"}, "manufacturing"),
        Skill("marketing", {"en": "Marketing", "zh": "营销"}, "ecommerce"),
    ]
    modules = [
        Module("safety-101", {"en": "Safety basics"}, (SkillWeight("safety"),), (), ("en", "fr", "zh"),
               "manufacturing", 0.2, 60),
        Module("welding-101", {"en": "Welding"}, (SkillWeight("welding"),), ("safety-101",),
               ("en", "fr", "zh"), "manufacturing", 0.4, 120),
        Module("welding-301", {"en": "Advanced welding"}, (SkillWeight("welding"), SkillWeight("inspection", 0.5)),
               ("welding-101",), ("zh",), "manufacturing", 0.7, 180, 4),
        Module("inspection-101", {"en": "Inspection"}, (SkillWeight("inspection"),), ("welding-101",),
               ("en", "zh"), "manufacturing", 0.5, 90),
        Module("marketing-101", {"en": "Marketing"}, (SkillWeight("marketing"),), (), ("en", "ar"),
               "ecommerce", 0.3, 60),
    ]  # fmt: skip
    roles = [
        TargetRole("welder", {"en": "Welder", "zh": "焊工"}, "manufacturing",
                   (SkillRequirement("safety", 0.8, 1.0), SkillRequirement("welding", 0.8, 2.0),
                    SkillRequirement("inspection", 0.6, 0.5)), 0.9),
        TargetRole("marketer", {"en": "Marketer"}, "ecommerce", (SkillRequirement("marketing", 0.8, 1.0),), 0.5),
    ]  # fmt: skip
    return skills, modules, roles


@pytest.fixture
def tiny_app(app: App) -> App:
    app.catalogs.upsert(*tiny_catalog(), replace=True)
    return app


def workers_of(pid: int) -> list[int]:
    """A `recommender serve` supervisor's worker processes (not multiprocessing's resource tracker
    beside them)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]

"""Settings, read once at the entry point (CLI or server) and passed down; nothing else reads env."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def data_home() -> Path:
    """Where the default store and model folders live: the project checkout when the package runs
    from one (`make run`), else a per-user data folder. Never the working directory: run from
    another folder, a relative default would silently open a new, empty store."""
    project = Path(__file__).resolve().parent.parent
    if (project / "pyproject.toml").is_file():
        return project
    return Path.home() / ".local" / "share" / "luban-path"


DATA_HOME = data_home()


def cores() -> int:
    """The cores this process may run on (its CPU affinity, not the host's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


class Settings(BaseSettings):
    """Every setting has an environment variable LUBAN_<NAME> (docs/operations/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="LUBAN_", frozen=True, extra="forbid")

    store_url: str = Field(
        default=f"sqlite:///{DATA_HOME / 'var' / 'luban.db'}",
        description="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
    )
    address: str = Field(default="127.0.0.1:50051", description="gRPC listen address")
    models_dir: Path = Field(default=DATA_HOME / "models", description="model artifact folders")
    processes: int = Field(
        default_factory=cores,
        ge=1,
        description="server processes sharing the listen port (SO_REUSEPORT); default: the cores available",
    )
    max_workers: int = Field(
        default=8,
        ge=1,
        description="gRPC handler threads (per process); calls beyond them wait in the pool's queue, running "
        "nothing, rather than contend for the interpreter with the planning thread",
    )
    planning_threads: int = Field(
        default=1,
        ge=1,
        description="RecommendPath calls planning at once; planning is CPU-bound Python, so more threads "
        "only contend for the interpreter lock",
    )
    max_batch: int = Field(default=5000, ge=1, description="results per RecordAssessments message")
    max_ids_per_request: int = Field(default=10000, ge=1, description="learners per GeneratePaths")
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    mastery_confidence: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="estimated P(mastered) at which a skill counts as mastered: for role requirements, "
        "prerequisites, checks and readiness alike (planner)",
    )
    check_after_studies: int = Field(
        default=3,
        ge=0,
        description="module results on a role skill, since its last item result, after which a skill still "
        "estimated below its target gets a skill-check step first (planner); 0 never plans one",
    )
    max_module_attempts: int = Field(
        default=3,
        ge=0,
        description="module assessments after which a module still not mastered is no longer planned: the "
        "path routes around it or stops with REPEATED_FAILURE (planner); 0 never stops retaking",
    )
    planner_kernel: bool = Field(
        default=True,
        description="plan with the compiled step loop (Numba) when it imports; false plans with the numpy "
        "reference: the same paths, more slowly",
    )
    future_tolerance_seconds: float = Field(
        default=300.0, ge=0, description="how far in the future occurred_at may lie (clock skew)"
    )
    catalog_refresh_seconds: float = Field(
        default=2.0,
        ge=0,
        description="how often a process re-checks the catalog revision and each tenant's active model",
    )
    path_cache_size: int = Field(
        default=20_000, ge=0, description="paths cached per server process (page views); 0 turns the cache off"
    )
    path_cache_seconds: float = Field(
        default=600.0,
        gt=0,
        description="longest a cached path is served: forgetting lowers masteries as time passes without new "
        "evidence, so a path is re-planned at least this often",
    )
    path_cache_shared: bool = Field(
        default=True,
        description="store each planned path for the other server processes (a read landing on another "
        "process than the one that planned the path serves it while nothing it depends on changed)",
    )
    path_plan_ahead: bool = Field(
        default=True,
        description="after a new result (RecordAssessment), plan again, in the background, the paths this "
        "process served the learner, so their next page view finds the path planned",
    )
    path_plan_ahead_poll_seconds: float = Field(
        default=0.005,
        ge=0,
        description="with several processes, how often each looks for results the others recorded, to plan those "
        "learners' paths ahead too, while results come in (slower while none do; 0: off)",
    )
    feature_schema_file: Path | None = Field(
        default=None,
        description="JSON {attributes: [{key, kind: categorical|bucketed, values|bounds}]}: the learner "
        "attributes that may become model features; none when unset",
    )
    grace_seconds: float = Field(default=10.0, ge=0, description="graceful shutdown period")
    store_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="PostgreSQL: longest a statement may run (a lock is waited for half as long); a call's "
        "own deadline shortens it, so a stuck database answers UNAVAILABLE in bounded time",
    )
    auth_tokens_file: Path | None = Field(
        default=None, description="JSON list of {token, tenant, roles}; auth is on when set"
    )
    metrics_address: str | None = Field(default=None, description="host:port for Prometheus /metrics")
    tls_cert_file: Path | None = Field(default=None, description="server certificate (PEM); TLS when set")
    tls_key_file: Path | None = Field(default=None, description="server private key (PEM)")
    tls_client_ca_file: Path | None = Field(
        default=None, description="CA bundle for client certificates; mTLS (required) when set"
    )
    dashboard_address: str = Field(default="127.0.0.1:8080", description="web dashboard listen address (HTTP)")
    dashboard_session_secret: SecretStr | None = Field(
        default=None,
        description="signs the dashboard's session cookies; when unset each dashboard process draws its own, "
        "so sign-ins end when it restarts (set it when several dashboard processes serve one address)",
    )
    dashboard_refresh_seconds: float = Field(
        default=60.0,
        ge=0,
        description="longest the dashboard serves a tenant's cohort figures before re-checking its learners "
        "for changes (model and catalog changes show at once)",
    )
    log_format: str = Field(default="json", pattern="^(json|text)$", description="json or text")


def redact(url: str) -> str:
    """The store URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url

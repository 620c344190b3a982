"""The relational schema the store's statements are written against. It changes only with a
migration (storage/migrations/versions/, one Alembic revision per change), and a test checks that
the migrations build exactly this schema.

Times are stored as integer microseconds since the epoch (UTC): exact and portable across
SQLite and PostgreSQL. JSON bodies are text, so both backends read them alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

meta = Table(
    "luban_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

catalog_entries = Table(
    "catalog_entries",
    metadata,
    Column("kind", String(16), primary_key=True),  # skill | module | role
    Column("entry_id", String(128), primary_key=True),
    Column("body", Text, nullable=False),
)

# A tenant's own catalog entries; the rows of catalog_entries are the shared catalog (managed by
# the operator), which a tenant inherits unless tenant_catalogs says otherwise.
tenant_catalog_entries = Table(
    "tenant_catalog_entries",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("kind", String(16), primary_key=True),  # skill | module | role
    Column("entry_id", String(128), primary_key=True),
    Column("body", Text, nullable=False),
)

tenant_catalogs = Table(
    "tenant_catalogs",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("inherits", Integer, nullable=False),  # 1: the shared catalog, with the tenant's entries over it
)

learners = Table(
    "learners",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("learner_id", String(128), primary_key=True),
    Column("cohort_id", String(128), nullable=False, default=""),
    Column("body", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("profile_updated_us", BigInteger, nullable=True),
)

events = Table(
    "assessment_events",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("tenant_id", String(128), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("learner_id", String(128), nullable=False),
    Column("module_id", String(128), nullable=False),
    Column("item_id", String(128), nullable=False, default=""),
    Column("skill_ids", Text, nullable=False),  # comma-separated (ids cannot hold commas)
    Column("score", Float, nullable=False),
    Column("occurred_us", BigInteger, nullable=False),
    Column("duration_seconds", Float, nullable=False, default=0.0),
    Column("recorded_us", BigInteger, nullable=False),
    Column("fingerprint", String(40), nullable=False),
    # domain.assessment.ResultKind as sent (0: unspecified, resolved from item_id when read)
    Column("kind", Integer, nullable=False, server_default="0"),
    UniqueConstraint("tenant_id", "event_id", name="uq_events_tenant_event"),
    Index("ix_events_learner", "tenant_id", "learner_id", "seq"),
)

skill_states = Table(
    "skill_states",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("learner_id", String(128), primary_key=True),
    Column("skill_id", String(128), primary_key=True),
    Column("mastery", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_practiced_us", BigInteger, nullable=False),
    Column("studies_since_check", Integer, nullable=False, server_default="0"),
    Column("studied", Boolean, nullable=False, server_default=false()),
)

# One row per erased learner: a keyed hash of (tenant, learner id), never the id itself, and when.
# A training run that read the store before an erasure drops those learners before it saves.
erasures = Table(
    "erasures",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("subject", String(64), nullable=False),
    Column("erased_us", BigInteger, nullable=False),
    Index("ix_erasures_time", "erased_us"),
)

model_activations = Table(
    "model_activations",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("version", String(128), nullable=False),
    Column("activated_us", BigInteger, nullable=False),
    # whose model: each tenant serves its own ("" marks an activation from before models had tenants)
    Column("tenant_id", String(128), nullable=False, server_default=""),
)

# Training jobs, written by the process that runs one and read by every process (a client polls
# GetTrainingJob wherever its call lands; the dashboard lists them)
training_jobs = Table(
    "training_jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("tenant_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("progress", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("activated", Integer, nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Column("updated_us", BigInteger, nullable=False),
    Column("metrics", Text, nullable=False),  # JSON object of metric -> value
    Index("ix_training_jobs_tenant_started", "tenant_id", "started_us"),
)


# The last path planned for a learner and request, shared by every process: a call landing on a
# process that did not plan the path serves the stored one while the learner's evidence version
# and the planner (catalog revision, model) are those it was planned from. A cache: any row may
# be missing, and erasing the learner erases their rows.
shared_paths = Table(
    "shared_paths",
    metadata,
    Column("tenant_id", String(128), primary_key=True),
    Column("learner_id", String(128), primary_key=True),
    Column("request_key", String(64), primary_key=True),  # a digest of the request's options
    Column("planner_key", String(255), nullable=False),
    Column("version_key", String(64), nullable=False),  # a digest of the evidence version
    Column("generated_us", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),  # the path as the serving layer encoded it
)

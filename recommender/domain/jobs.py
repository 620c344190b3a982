"""Training jobs as the store keeps them, so every process of the service (and the dashboard)
sees the same jobs, whichever process runs one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

JOB_STATES = ("queued", "running", "succeeded", "failed")
# a running job's process writes it at least this often; one silent for JOB_LOST_AFTER has lost
# its process (stopped or crashed) and is reported failed, so the tenant can train again
JOB_HEARTBEAT = timedelta(seconds=30)
JOB_LOST_AFTER = timedelta(minutes=3)


@dataclass(frozen=True)
class TrainingJob:
    job_id: str
    started_at: datetime
    tenant: str
    state: str = "queued"  # one of JOB_STATES
    progress: float = 0.0
    message: str = ""
    model_version: str = ""
    activated: bool = False
    finished_at: datetime | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    updated_at: datetime | None = None  # when its process last wrote it

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def as_seen_at(self, now: datetime) -> TrainingJob:
        """The job as a reader should see it: an active job whose process has stopped writing it
        is failed, not running forever."""
        seen = self.updated_at or self.started_at
        if self.active and now - seen > JOB_LOST_AFTER:
            return replace(self, state="failed", message="lost: the process running it stopped", finished_at=seen)
        return self

"""A cohort job's planner on Dask workers, installed once per worker as a worker plugin.

Not a replicated `scatter(..., broadcast=True)`: replication copies data worker to worker, and a
copy that fails there (`get_data` asserting on the reply) leaves the chunk that needs it waiting
forever, with every worker idle. A plugin is sent to each
worker by the scheduler, also to workers that join later, and lives in the worker process: its
planner, and so the planner's memo, is unpickled once and kept across the job's chunks (the
active memory manager may drop a scattered copy between chunks, and each fetch would start a
new, empty memo). This module imports distributed, an optional extra: import it lazily."""

from __future__ import annotations

from datetime import datetime

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from recommender.service.cohort_files import ChunkResult, ChunkTask, CohortOptions, Encoder, plan_chunk
from recommender.service.recommend import Planner


class CohortJob(WorkerPlugin):
    """What every chunk of one job needs; registered under a name unique to the job."""

    def __init__(self, planner: Planner, options: CohortOptions, now: datetime, encode: Encoder) -> None:
        self.planner = planner
        self.options = options
        self.now = now
        self.encode = encode


def plan_on_worker(job_name: str, task: ChunkTask) -> ChunkResult:
    worker = get_worker()
    job = worker.plugins.get(job_name)
    if not isinstance(job, CohortJob):
        # the chunk fails (and so the run, with this message) instead of waiting for a planner
        raise RuntimeError(
            f"cohort job {job_name} is not installed on Dask worker {worker.address}: is the same version "
            "of Luban Path installed on every worker?"
        )
    return plan_chunk(job.planner, task, job.options, job.now, job.encode)

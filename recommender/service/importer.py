"""`recommender import`: stream event (and learner, catalog) files into the store.

Idempotent on event id; a bad row is reported with its line number and skipped, never fatal.
Learners that events mention but no learner file registered are created with their id only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from recommender.datasets.formats import BadRow, read_events, read_learners
from recommender.domain.assessment import AssessmentEvent
from recommender.domain.ids import id_violation
from recommender.domain.learner import Learner
from recommender.errors import LubanError
from recommender.service.catalog import CatalogService
from recommender.service.learners import LearnerService
from recommender.storage.store import Store

BATCH = 5000
T = TypeVar("T")


@dataclass
class ImportReport:
    learners: int = 0
    learners_created: int = 0
    accepted: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.problems)


class Importer:
    def __init__(self, store: Store, catalogs: CatalogService, learners: LearnerService) -> None:
        self._store = store
        self._catalogs = catalogs
        self._learners = learners

    def run(
        self,
        tenant: str,
        events: Path | None,
        learners: Path | None = None,
        catalog: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        report = ImportReport()
        if catalog is not None:
            self._catalogs.load_file(catalog, replace=False, tenant=tenant)  # the tenant's own entries
        if learners is not None:
            self._import_learners(tenant, learners, report)
        if events is not None:
            self._import_events(tenant, events, report, progress)
        return report

    def _import_learners(self, tenant: str, path: Path, report: ImportReport) -> None:
        def flush(batch: list[tuple[int, Learner]]) -> None:
            try:
                self._learners.upsert_many(tenant, [x for _, x in batch])
                report.learners += len(batch)
            except LubanError:
                for line, learner in batch:  # find the bad rows one by one
                    try:
                        self._learners.upsert(tenant, learner)
                        report.learners += 1
                    except LubanError as exc:
                        report.problems.append(f"{path}:{line}: {exc}")

        for batch in _batches(read_learners(path), path, report):
            flush(batch)

    def _import_events(
        self, tenant: str, path: Path, report: ImportReport, progress: Callable[[int], None] | None
    ) -> None:
        def flush(batch: list[tuple[int, AssessmentEvent]]) -> None:
            ids = sorted({e.learner_id for _, e in batch})
            known = self._store.get_learners(tenant, ids)
            # bad ids are left to record_batch, which rejects their rows with the reason
            missing = [Learner(lid) for lid in ids if lid not in known and id_violation("learner_id", lid) is None]
            if missing:
                self._learners.upsert_many(tenant, missing, placeholders=True)
                report.learners_created += len(missing)
            result = self._learners.record_batch(tenant, [e for _, e in batch])
            report.accepted += result.accepted
            report.duplicates += result.duplicates
            for rejection in result.rejected:
                report.problems.append(f"{path}:{batch[rejection.index][0]}: {rejection.error}")
            if progress:
                progress(len(batch))

        for batch in _batches(read_events(path), path, report):
            flush(batch)


def _batches(
    items: Iterable[tuple[int, T] | BadRow], path: Path, report: ImportReport
) -> Iterator[list[tuple[int, T]]]:
    """Good rows in batches of BATCH; bad rows go to the report with their line number."""
    batch: list[tuple[int, T]] = []
    for item in items:
        if isinstance(item, BadRow):
            report.problems.append(f"{path}:{item.line}: {item.error}")
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch

"""Batch paths for a cohort (`recommender paths`): files in, files out, locally or on Dask.

The input is cut into fixed chunks of CHUNK rows; each chunk is planned by a pure task
(`plan_chunk`) that returns its encoded output and error rows, and is written as a part file in
`<out>.work/`. A part appears atomically, so `--resume` redoes only chunks without one, and the
final output is the parts concatenated in input order: identical whatever the number of workers
or where they ran. Memory stays flat: only a bounded window of chunks is in flight.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from recommender.datasets.formats import BadRow, parse_learner, read_events, read_records
from recommender.domain.assessment import AssessmentEvent
from recommender.domain.learner import Learner, validate_learner
from recommender.domain.path import LearningPath
from recommender.domain.profile import NO_STUDIES, SkillState
from recommender.errors import InvalidInput, LubanError, PreconditionFailed
from recommender.kt.bkt import profile_updater
from recommender.planner.plan import warm_kernel
from recommender.service.recommend import PathRequest, PlanItem, Planner, model_key

CHUNK = 2000
ERROR_COLUMNS = ["line", "learner_id", "field", "reason"]


# Turns planned learners into one output part (bytes) in the output's format; the flag says
# whether this is the first part (CSV writes its header there).
Encoder = Callable[[Sequence[LearningPath], bool], bytes]


class Assembly(Protocol):
    """Makes the output from its parts, given in input order as each is ready."""

    def add(self, part: Path) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class ChunkTask:
    index: int
    rows: list[tuple[int, Mapping[str, Any]]]  # (line number, record)
    states: dict[str, list[SkillState]]
    studied: dict[str, Mapping[str, int]] = field(default_factory=dict)  # modules with prior results
    # where the worker writes the chunk's output itself (a worker on this machine: the output, tens
    # of MB, is not sent back through a pipe); "": returned in the result
    spill: str = ""


@dataclass(frozen=True)
class ChunkResult:
    index: int
    output: bytes | None  # None: written by the worker to the task's `spill` file
    errors: list[tuple[int, str, str, str]]
    planned: int


@dataclass(frozen=True)
class CohortOptions:
    steps: int = 10
    locale: str = ""  # "": each learner's first language that has reason texts, else en
    tenant: str = "default"


def plan_chunk(
    planner: Planner, task: ChunkTask, options: CohortOptions, now: datetime, encode: Encoder
) -> ChunkResult:
    """Pure: the same task gives the same bytes, on any worker. The chunk's valid rows are planned
    together (Planner.plan_many); a bad row or a learner no path can be planned for is an error row."""
    items: list[PlanItem] = []
    lines: list[int] = []
    errors: list[tuple[int, str, str, str]] = []
    for line, record in task.rows:
        try:
            learner = validate_learner(parse_learner(record), planner.catalog)
            request = PathRequest(learner.learner_id, options.steps, locale=options.locale)
            items.append(
                PlanItem(
                    model_key(options.tenant, learner.learner_id),
                    learner,
                    task.states.get(learner.learner_id, []),
                    planner.options_for(learner, request),
                    task.studied.get(learner.learner_id, NO_STUDIES),
                )
            )
            lines.append(line)
        except (LubanError, ValueError) as exc:
            errors.append((line, str(record.get("learner_id") or ""), _error_field(exc), str(exc)))
    paths: list[LearningPath] = []
    for line, item, path in zip(lines, items, planner.plan_many(items, now), strict=True):
        if isinstance(path, PreconditionFailed):
            errors.append((line, item.learner.learner_id, _error_field(path), str(path)))
        else:
            paths.append(path)
    errors.sort()  # in line order, whichever stage found the problem
    encode_lines = getattr(encode, "lines", None)
    if not task.spill or encode_lines is None:
        output = encode(paths, task.index == 0)
        if not task.spill:
            return ChunkResult(task.index, output, errors, len(paths))
        with open(task.spill, "wb") as handle:
            handle.write(output)  # the parent fsyncs it, while this worker plans its next chunk
        return ChunkResult(task.index, None, errors, len(paths))
    # an encoder of lines (JsonlEncoder): written through one reused buffer, not joined into a
    # part-sized bytes object first (fresh memory the size of the part, faulted in page by page)
    with open(task.spill, "wb", buffering=SPILL_BUFFER) as handle:
        handle.writelines(encode_lines(paths, task.index == 0))
    return ChunkResult(task.index, None, errors, len(paths))


SPILL_BUFFER = 1 << 20


def _error_field(exc: Exception) -> str:
    if isinstance(exc, InvalidInput) and exc.violations and exc.violations[0].field:
        return exc.violations[0].field
    return str(getattr(exc, "field", ""))


@dataclass
class CohortSummary:
    learners: int = 0
    planned: int = 0
    rejected: int = 0
    chunks_resumed: int = 0
    errors_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """Runs plan_chunk tasks: in-process, in a process pool, or on a Dask cluster."""

    # whether its workers share this machine's files (each writes its chunk's part itself)
    @property
    def local_files(self) -> bool: ...

    def submit(self, task: ChunkTask) -> Future[ChunkResult]: ...

    def close(self) -> None: ...


class LocalRunner:
    """In this process, or in a pool of worker processes that each receive the planner once (at
    start), so a worker's planner memo and encoder cache live across the chunks it plans."""

    def __init__(self, planner: Planner, options: CohortOptions, now: datetime, encode: Encoder, workers: int) -> None:
        self._args = (planner, options, now, encode)
        if workers > 1 and planner.kernel:
            # loaded once here, before the workers fork, instead of once in each of them
            warm_kernel()
        self._pool = (
            ProcessPoolExecutor(max_workers=workers, initializer=_install_worker, initargs=self._args)
            if workers > 1
            else None
        )
        self.local_files = self._pool is not None

    def submit(self, task: ChunkTask) -> Future[ChunkResult]:
        if self._pool is not None:
            return self._pool.submit(_plan_in_worker, task)
        future: Future[ChunkResult] = Future()
        with collections_after_chunk(freeze=False):
            future.set_result(plan_chunk(self._args[0], task, *self._args[1:]))
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


# A pool worker's own job, installed once by the pool's initializer; only ever set in worker
# processes, which run one job each.
_WORKER_JOB: dict[str, tuple[Planner, CohortOptions, datetime, Encoder]] = {}
_WORKER_CHUNKS = {"planned": 0}


def _install_worker(planner: Planner, options: CohortOptions, now: datetime, encode: Encoder) -> None:
    _WORKER_JOB["job"] = (planner, options, now, encode)


def _plan_in_worker(task: ChunkTask) -> ChunkResult:
    planner, options, now, encode = _WORKER_JOB["job"]
    # the pass after the first chunk collects what warming up left (module-level caches, locale
    # data); planning itself makes no cycles (tests/service/test_cohort_files.py holds it), so
    # later chunks are frozen without one
    first = _WORKER_CHUNKS["planned"] == 0
    _WORKER_CHUNKS["planned"] += 1
    with collections_after_chunk(freeze=True, collect=first):
        return plan_chunk(planner, task, options, now, encode)


@contextmanager
def collections_after_chunk(freeze: bool, collect: bool = True) -> Iterator[None]:
    """No automatic garbage collection while a chunk is planned; after it, one pass over the young
    generations (what the chunk left) unless `collect` is False, and in a pool worker (a process of
    this job alone) the survivors frozen out of later passes.

    A chunk allocates millions of small objects (steps, gains, reasons) and frees nearly all of
    them by reference counting, while the process's long-lived heap (catalog, model, the
    planner's memo, the encoder's caches) only grows: the collector's automatic passes over it
    cost a large share of planning and find nothing. Frozen objects are still freed by reference
    counting; only a cycle among them would outlive its use. The pass collects the chunk's cycles
    before freezing; it walks every survivor of the chunk, so a pool worker runs it after its first
    chunk only, planning making none."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collect:
            gc.collect(1)
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


class DaskRunner:
    """The same tasks on a Dask distributed cluster; each worker receives the planner once, as a
    worker plugin of this job (recommender.service.dask_job says why not a broadcast scatter)."""

    def __init__(self, address: str, planner: Planner, options: CohortOptions, now: datetime, encode: Encoder) -> None:
        import dask
        from distributed import Client

        from recommender.service.dask_job import CohortJob

        # a chunk's output is tens of MB: fetch it straight from the worker, not through the
        # scheduler (Dask's default outside a worker), unless Dask's own setting says otherwise
        # (DASK_DISTRIBUTED__CLIENT__DIRECT_TO_WORKERS=false where the client cannot reach workers)
        direct = dask.config.get("distributed.client.direct-to-workers", None)
        self._client = Client(address, direct_to_workers=True if direct is None else bool(direct))
        self._job = f"luban-cohort-{uuid.uuid4().hex}"
        self.local_files = False
        self._client.register_plugin(CohortJob(planner, options, now, encode), name=self._job)

    def submit(self, task: ChunkTask) -> Future[ChunkResult]:
        from recommender.service.dask_job import plan_on_worker

        dask_future = self._client.submit(plan_on_worker, self._job, task, pure=False)
        future: Future[ChunkResult] = Future()

        def done(f: Any) -> None:
            try:
                future.set_result(f.result())
            except BaseException as exc:
                future.set_exception(exc)

        dask_future.add_done_callback(done)
        return future

    def close(self) -> None:
        try:
            self._client.unregister_worker_plugin(self._job)
        finally:
            self._client.close()


@dataclass(frozen=True)
class PriorResults:
    """What a prior-results file says of each learner: skill states and studied modules."""

    states: dict[str, list[SkillState]] = field(default_factory=dict)
    studied: dict[str, Mapping[str, int]] = field(default_factory=dict)


def prior_results(events_file: Path | None, planner: Planner, problems: list[str]) -> PriorResults:
    """Skill states and studied modules from a prior-results file (the generic event format),
    replayed in time order."""
    if events_file is None:
        return PriorResults()
    by_learner: dict[str, list[AssessmentEvent]] = {}
    for item in read_events(events_file):
        if isinstance(item, BadRow):
            problems.append(f"{events_file}:{item.line}: {item.error}")
            continue
        event = item[1]
        if event.module_id not in planner.catalog.modules:
            problems.append(f"{events_file}:{item[0]}: unknown module {event.module_id!r}")
            continue
        if not event.skill_ids:
            from dataclasses import replace

            event = replace(event, skill_ids=planner.catalog.modules[event.module_id].skill_ids)
        by_learner.setdefault(event.learner_id, []).append(event)
    update = profile_updater(planner.bkt, planner.catalog.skill_weights_of)
    states: dict[str, list[SkillState]] = {}
    for learner_id, events in by_learner.items():
        current: dict[str, SkillState] = {}
        for e in sorted(events, key=lambda e: e.occurred_at):
            for s in update(current, e):
                current[s.skill_id] = s
        states[learner_id] = sorted(current.values(), key=lambda s: s.skill_id)
    studied = {k: dict(Counter(e.module_id for e in v if e.studies_module)) for k, v in by_learner.items()}
    return PriorResults(states, {k: v for k, v in studied.items() if v})


def run_cohort(
    cohort: Path,
    out: Path,
    runner: Runner,
    *,
    finish: Callable[[Path], Assembly],
    prior: PriorResults,
    resume: bool = False,
    persist: Callable[[list[Learner]], None] | None = None,
    catalog_check: Callable[[Learner], Learner] | None = None,
    progress: Callable[[int], None] | None = None,
    window: int = 4,
    chunk_size: int = CHUNK,
) -> CohortSummary:
    """Plan every row of `cohort` into `out` (format by extension; `finish(out)` assembles the
    parts, each added as soon as every part before it is done, so that the output is mostly
    written while later chunks are planned)."""
    work = Path(f"{out}.work")
    if work.exists() and not resume:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    job = {"cohort": str(cohort.resolve()), "out": str(out.resolve()), "chunk_size": chunk_size}
    job_file = work / "job.json"
    if resume and job_file.exists() and json.loads(job_file.read_text()) != job:
        raise InvalidInput.of(
            "resume", f"{work} belongs to another job ({job_file.read_text()}); rerun without --resume"
        )
    job_file.write_text(json.dumps(job))
    summary = CohortSummary()
    pending: dict[int, Future[ChunkResult]] = {}
    lock = threading.Lock()
    n_chunks = 0
    assembly = finish(out)
    ready: set[int] = set()
    assembled = 0  # parts before this one are in the assembly

    def part_ready(index: int) -> None:
        nonlocal assembled
        ready.add(index)
        while assembled in ready:
            ready.discard(assembled)
            assembly.add(work / f"part-{assembled:08d}")
            assembled += 1

    def collect(result: ChunkResult) -> None:
        part = work / f"part-{result.index:08d}"
        tmp = part.with_suffix(".tmp")
        if result.output is not None:
            tmp.write_bytes(result.output)
        errors = "".join(
            json.dumps(dict(zip(ERROR_COLUMNS, e, strict=True)), ensure_ascii=False) + "\n" for e in result.errors
        )
        (work / f"errors-{result.index:08d}.jsonl").write_text(errors, encoding="utf-8")
        (work / f"count-{result.index:08d}").write_text(str(result.planned))
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, part)  # the part's existence marks the chunk done
        part_ready(result.index)
        with lock:
            summary.planned += result.planned
            summary.rejected += len(result.errors)
        if progress:
            progress(result.planned + len(result.errors))

    def drain(keep: int) -> None:
        while len(pending) > keep:
            index = min(pending)
            collect(pending.pop(index).result())

    try:
        first_line: dict[str, int] = {}  # learner id -> the line that plans them
        for index, rows in enumerate(_chunks(_first_of_each(read_records(cohort), first_line), chunk_size)):
            n_chunks = index + 1
            summary.learners += len(rows)
            if (work / f"part-{index:08d}").exists():
                summary.chunks_resumed += 1
                done = _count_done(work, index)
                summary.planned += done[0]
                summary.rejected += done[1]
                part_ready(index)
                if progress:
                    progress(len(rows))
                continue
            if persist is not None and catalog_check is not None:
                valid = []
                for _, record in rows:
                    try:
                        valid.append(catalog_check(parse_learner(record)))
                    except (LubanError, ValueError):
                        continue
                persist(valid)
            ids = [str(r.get("learner_id")) for _, r in rows]
            pending[index] = runner.submit(
                ChunkTask(
                    index,
                    rows,
                    {k: list(prior.states[k]) for k in ids if prior.states.get(k)},
                    {k: prior.studied[k] for k in ids if prior.studied.get(k)},
                    str(work.resolve() / f"part-{index:08d}.tmp") if runner.local_files else "",
                )
            )
            drain(window)
        drain(0)
        runner.close()
    except BaseException:
        assembly.abort()  # the parts stay, for --resume
        raise
    assert assembled == n_chunks, "every part was added, in order"
    assembly.close()
    errors_file = Path(f"{out}.errors.csv")
    _write_errors(errors_file, [work / f"errors-{i:08d}.jsonl" for i in range(n_chunks)])
    summary.errors_file = errors_file
    shutil.rmtree(work)
    return summary


def _first_of_each(
    records: Iterator[tuple[int, Mapping[str, Any]]], first_line: dict[str, int]
) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The records, with a repeated learner id turned into a bad row naming the line that plans
    them: a learner is planned (and stored) once, and a repeat is reported, not silently redone."""
    for line, record in records:
        learner_id = record.get("learner_id")
        if "__error__" not in record and isinstance(learner_id, str) and learner_id:
            first = first_line.setdefault(learner_id, line)
            if first != line:
                yield (
                    line,
                    {
                        "__error__": f"duplicate learner_id {learner_id[:128]!r}: already planned from line {first}",
                        "__field__": "learner_id",
                        "learner_id": learner_id,
                    },
                )
                continue
        yield line, record


def _count_done(work: Path, index: int) -> tuple[int, int]:
    errors = (work / f"errors-{index:08d}.jsonl").read_text(encoding="utf-8").count("\n")
    return int((work / f"count-{index:08d}").read_text()), errors


def _write_errors(path: Path, parts: Iterable[Path]) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ERROR_COLUMNS)
        writer.writeheader()
        for part in parts:
            for line in part.read_text(encoding="utf-8").splitlines():
                writer.writerow(json.loads(line))


def _chunks(
    records: Iterator[tuple[int, Mapping[str, Any]]], size: int
) -> Iterator[list[tuple[int, Mapping[str, Any]]]]:
    chunk: list[tuple[int, Mapping[str, Any]]] = []
    for item in records:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

"""The generic event format (CSV, JSONL or Parquet; .gz allowed for CSV and JSONL).

Event columns: learner_id, module_id, score (0-1), occurred_at (ISO 8601) or step (per-learner
order); optional event_id, item_id, skill_ids (';'-separated in CSV, a list in JSONL/Parquet),
duration_seconds, kind (module_assessment, practice or check; empty: inferred from item_id, see
domain.assessment.ResultKind).

- A missing event_id is derived from the row's content, so importing the same file twice is
  idempotent.
- Step-ordered data (no timestamps) gets synthetic times one minute apart from STEP_EPOCH: order is
  kept and forgetting (days) is negligible, which is the honest reading of data without time.

Readers stream: rows come one at a time with their line number (CSV/JSONL: the physical line; Parquet:
the row number + 1), and a bad row is reported, not fatal.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from recommender.domain.assessment import AssessmentEvent, ResultKind
from recommender.domain.learner import Learner

STEP_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
EVENT_COLUMNS = [
    "event_id", "learner_id", "module_id", "item_id", "skill_ids", "score", "occurred_at", "step",
    "duration_seconds", "kind",
]  # fmt: skip
LEARNER_COLUMNS = [
    "learner_id", "cohort_id", "country", "languages", "program", "target_role_id", "chinese_level",
    "weekly_minutes",
]  # fmt: skip


class RowError(ValueError):
    """A row that cannot be read; carries the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class BadRow:
    line: int
    error: str


def open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def file_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for ext in ("csv", "jsonl", "parquet"):
        if name.endswith("." + ext):
            return ext
    if name.endswith(".json"):
        return "jsonl"
    raise ValueError(f"{path}: unknown format; use .csv, .jsonl or .parquet (optionally .gz for text)")


def read_records(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, record) pairs; a malformed JSON line yields ({"__error__": ...})."""
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        line = 1
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            for record in batch.to_pylist():
                line += 1
                yield line, record
        return
    with open_text(path) as handle:
        if fmt == "csv":
            reader = csv.DictReader(handle)
            for record in reader:
                # DictReader pads a short row with None and puts a long row's extra cells under
                # None: either is a malformed row, not a row whose last columns are empty
                extra = record.pop(None, None)
                if extra is not None or any(v is None for v in record.values()):
                    fields = sum(v is not None for v in record.values()) + len(extra or ())
                    header = len(reader.fieldnames or ())
                    yield (
                        reader.line_num,
                        {
                            "__error__": f"malformed row: {fields} fields where the header has {header}",
                            "learner_id": record.get("learner_id") or "",
                        },
                    )
                    continue
                yield reader.line_num, record
        else:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    yield number, {"__error__": f"not JSON: {exc}"}
                    continue
                yield number, value if isinstance(value, dict) else {"__error__": "not a JSON object"}


def parse_event(record: Mapping[str, Any]) -> tuple[AssessmentEvent, int | None]:
    """One record to an event (and its step, when given). Raises RowError."""
    if "__error__" in record:
        raise RowError("line", str(record["__error__"]))
    learner_id = _text(record, "learner_id", required=True)
    module_id = _text(record, "module_id", required=True)
    item_id = _text(record, "item_id")
    score = _number(record, "score", required=True)
    if not 0.0 <= score <= 1.0:
        raise RowError("score", f"{score} is outside [0, 1]")
    raw_skills = record.get("skill_ids")
    if raw_skills is None or raw_skills == "":
        skills: tuple[str, ...] = ()
    elif isinstance(raw_skills, str):
        skills = tuple(s.strip() for s in raw_skills.split(";") if s.strip())
    elif isinstance(raw_skills, list | tuple):
        skills = tuple(str(s) for s in raw_skills)
    else:
        raise RowError("skill_ids", "must be ';'-separated text or a list")
    occurred_text = _text(record, "occurred_at")
    step_value = record.get("step")
    step: int | None = None
    if step_value not in (None, ""):
        try:
            step = int(float(step_value))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise RowError("step", f"{step_value!r} is not an integer") from exc
        if step < 0:
            raise RowError("step", "must be >= 0")
    if occurred_text:
        try:
            occurred = datetime.fromisoformat(occurred_text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise RowError("occurred_at", f"{occurred_text!r} is not ISO 8601") from exc
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
    elif step is not None:
        occurred = STEP_EPOCH + timedelta(minutes=step)
    else:
        raise RowError("occurred_at", "either occurred_at or step is required")
    duration = _number(record, "duration_seconds") if record.get("duration_seconds") not in (None, "") else 0.0
    event_id = _text(record, "event_id") or derived_event_id(learner_id, module_id, item_id, occurred, step)
    kind_text = _text(record, "kind").lower()
    kinds = {k.name.lower(): k for k in ResultKind if k is not ResultKind.UNSPECIFIED}
    if kind_text and kind_text not in kinds:
        raise RowError("kind", f"{kind_text[:40]!r} is not one of {', '.join(kinds)}")
    event = AssessmentEvent(
        event_id=event_id,
        learner_id=learner_id,
        module_id=module_id,
        score=score,
        occurred_at=occurred,
        skill_ids=skills,
        item_id=item_id,
        duration_seconds=duration,
        kind=kinds[kind_text] if kind_text else ResultKind.UNSPECIFIED,
    )
    return event, step


def derived_event_id(learner_id: str, module_id: str, item_id: str, at: datetime, step: int | None) -> str:
    key = f"{learner_id}\x1f{module_id}\x1f{item_id}\x1f{at.isoformat()}\x1f{step}"
    return "h-" + hashlib.sha1(key.encode()).hexdigest()[:24]


def read_events(path: Path) -> Iterator[tuple[int, AssessmentEvent] | BadRow]:
    for line, record in read_records(path):
        try:
            event, _ = parse_event(record)
        except RowError as exc:
            yield BadRow(line, str(exc))
            continue
        yield line, event


def parse_learner(record: Mapping[str, Any]) -> Learner:
    if "__error__" in record:
        raise RowError(str(record.get("__field__", "line")), str(record["__error__"]))
    languages = record.get("languages") or ()
    if isinstance(languages, str):
        languages = tuple(x.strip() for x in languages.split(";") if x.strip())
    attributes = {
        str(k): str(v)
        for k, v in record.items()
        if k not in LEARNER_COLUMNS and k != "attributes" and v not in (None, "")
    }
    if isinstance(record.get("attributes"), Mapping):
        attributes.update({str(k): str(v) for k, v in record["attributes"].items()})
    return Learner(
        learner_id=_text(record, "learner_id", required=True),
        cohort_id=_text(record, "cohort_id"),
        country=_text(record, "country"),
        languages=tuple(str(x) for x in languages),
        program=_text(record, "program"),
        target_role_id=_text(record, "target_role_id"),
        chinese_level=int(_number(record, "chinese_level")) if record.get("chinese_level") not in (None, "") else 0,
        weekly_minutes=int(_number(record, "weekly_minutes")) if record.get("weekly_minutes") not in (None, "") else 0,
        attributes=attributes,
    )


def read_learners(path: Path) -> Iterator[tuple[int, Learner] | BadRow]:
    for line, record in read_records(path):
        try:
            yield line, parse_learner(record)
        except RowError as exc:
            yield BadRow(line, str(exc))


def event_record(event: AssessmentEvent, step: int | None = None) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "learner_id": event.learner_id,
        "module_id": event.module_id,
        "item_id": event.item_id,
        "skill_ids": ";".join(event.skill_ids),
        "score": event.score,
        "occurred_at": "" if step is not None else event.occurred_at.isoformat(),
        "step": "" if step is None else step,
        "duration_seconds": event.duration_seconds or "",
        "kind": event.kind.name.lower() if event.kind else "",
    }


def write_csv(path: Path, columns: list[str], rows: Iterable[Mapping[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _text(record: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise RowError(key, "is required")
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _number(record: Mapping[str, Any], key: str, *, required: bool = False) -> float:
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise RowError(key, "is required")
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise RowError(key, f"{value!r} is not a number") from exc
    if not math.isfinite(number):
        raise RowError(key, "must be finite")
    return number

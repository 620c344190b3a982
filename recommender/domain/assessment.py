"""Assessment events: what the platform reports after every graded attempt."""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from recommender.domain.catalog import Catalog
from recommender.domain.ids import all_ids, id_violation, is_id
from recommender.errors import FieldViolation, InvalidInput

MAX_SKILLS_PER_EVENT = 64
MAX_DURATION_SECONDS = 7 * 24 * 3600.0


class ResultKind(enum.IntEnum):
    """When learning happens relative to a result's evidence (the store keeps the value as sent).

    - MODULE_ASSESSMENT: the end of a module; the learner studied first, so the score is evidence
      about the state after learning: learn, then observe. The module counts as studied.
    - PRACTICE: a tutored item with feedback: observe, then learn at the skill's practice rate.
    - CHECK: placement, skill or readiness check: observe only.
    - UNSPECIFIED: inferred from item_id (none: a module assessment; an item: practice)."""

    UNSPECIFIED = 0
    MODULE_ASSESSMENT = 1
    PRACTICE = 2
    CHECK = 3


@dataclass(frozen=True)
class AssessmentEvent:
    """One graded attempt. `occurred_at` is timezone-aware UTC; skill_ids are resolved.

    `occurred_at_sent` is False when the client sent no time and `occurred_at` is the time the
    server received the result: a retry of that request then carries another receive time, so the
    duplicate check must compare what the client sent, not the filled-in default."""

    event_id: str
    learner_id: str
    module_id: str
    score: float
    occurred_at: datetime
    skill_ids: tuple[str, ...] = ()
    item_id: str = ""
    duration_seconds: float = 0.0
    occurred_at_sent: bool = True
    kind: ResultKind = ResultKind.UNSPECIFIED

    @property
    def effective_kind(self) -> ResultKind:
        """The kind with UNSPECIFIED resolved from item_id (see ResultKind)."""
        return resolve_kind(self.kind, self.item_id)

    @property
    def studies_module(self) -> bool:
        """The learner studied the module and took its own assessment: the module counts as studied
        (and, not mastered, as failed). Practice and check items are evidence about skills only."""
        return self.effective_kind is ResultKind.MODULE_ASSESSMENT

    def fingerprint(self) -> str:
        """Identity of the payload: a replay with the same fingerprint is a duplicate. Its text is
        the fields below joined by \x1f (skills sorted, the time only when the client sent it, the
        kind only when set, so results stored before kinds existed keep their fingerprint), built
        in one f-string: the writer computes one per ingested result."""
        skills = self.skill_ids
        joined = skills[0] if len(skills) == 1 else ",".join(sorted(skills))
        sent = str(to_micros(self.occurred_at)) if self.occurred_at_sent else ""
        text = (
            f"{self.learner_id}\x1f{self.module_id}\x1f{self.item_id}\x1f{joined}\x1f{float(self.score)!r}"
            f"\x1f{sent}\x1f{float(self.duration_seconds)!r}"
        )
        if self.kind:
            text += f"\x1f{int(self.kind)}"
        return _sha1(text.encode()).hexdigest()


def assessment_event(
    event_id: str,
    learner_id: str,
    module_id: str,
    score: float,
    occurred_at: datetime,
    skill_ids: tuple[str, ...],
    item_id: str,
    duration_seconds: float,
    occurred_at_sent: bool,
    kind: ResultKind,
) -> AssessmentEvent:
    """AssessmentEvent(...) with every field given, at a third of the cost, for ingest's one event
    per result (a frozen dataclass's __init__ sets each field through object.__setattr__). The
    same object: AssessmentEvent has no __post_init__ or computed fields."""
    event = _new(AssessmentEvent)
    event.__dict__.update(
        event_id=event_id,
        learner_id=learner_id,
        module_id=module_id,
        score=score,
        occurred_at=occurred_at,
        skill_ids=skill_ids,
        item_id=item_id,
        duration_seconds=duration_seconds,
        occurred_at_sent=occurred_at_sent,
        kind=kind,
    )
    return event


def resolve_kind(kind: ResultKind, item_id: str) -> ResultKind:
    if kind is not ResultKind.UNSPECIFIED:
        return kind
    return ResultKind.PRACTICE if item_id else ResultKind.MODULE_ASSESSMENT


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: the store's exact, portable time representation."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    # timedelta's positional arguments: its keywords cost twice the rest (a datetime per stored state read)
    return EPOCH + timedelta(0, 0, micros)


EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_new = object.__new__
_sha1 = hashlib.sha1


def validate_event(
    event: AssessmentEvent,
    catalog: Catalog,
    now: datetime,
    future_tolerance: timedelta,
    prefix: str = "result",
) -> AssessmentEvent:
    """The event with its skills resolved, or InvalidInput naming every bad field.

    Unknown modules and skills are argument errors here (the id in the request is wrong),
    while an unknown learner is NOT_FOUND and is checked by the store under lock.
    """
    problems: list[FieldViolation] = []
    for name in ("event_id", "learner_id", "module_id"):
        v = id_violation(f"{prefix}.{name}", getattr(event, name))
        if v:
            problems.append(v)
    v = id_violation(f"{prefix}.item_id", event.item_id, required=False)
    if v:
        problems.append(v)
    if not (math.isfinite(event.score) and 0.0 <= event.score <= 1.0):
        problems.append(FieldViolation(f"{prefix}.score", "must be a number in [0, 1]"))
    if event.occurred_at > now + future_tolerance:
        problems.append(
            FieldViolation(
                f"{prefix}.occurred_at",
                f"lies in the future ({event.occurred_at.isoformat()} > now {now.isoformat()})",
            )
        )
    if event.occurred_at.year < 1990:
        problems.append(FieldViolation(f"{prefix}.occurred_at", "is before 1990"))
    if not (math.isfinite(event.duration_seconds) and 0 <= event.duration_seconds <= MAX_DURATION_SECONDS):
        problems.append(FieldViolation(f"{prefix}.duration_seconds", f"must be in [0, {MAX_DURATION_SECONDS:.0f}]"))
    module = catalog.modules.get(event.module_id)
    if module is None and not any(p.field == f"{prefix}.module_id" for p in problems):
        problems.append(FieldViolation(f"{prefix}.module_id", f"unknown module {event.module_id!r}"))
    if len(event.skill_ids) > MAX_SKILLS_PER_EVENT:
        problems.append(FieldViolation(f"{prefix}.skill_ids", f"at most {MAX_SKILLS_PER_EVENT} skills"))
    else:
        for i, skill_id in enumerate(event.skill_ids):
            if skill_id not in catalog.skills:
                problems.append(FieldViolation(f"{prefix}.skill_ids[{i}]", f"unknown skill {skill_id[:128]!r}"))
    if problems:
        raise InvalidInput(problems)
    assert module is not None
    skills = tuple(dict.fromkeys(event.skill_ids)) if event.skill_ids else module.skill_ids
    # built directly: dataclasses.replace costs three times as much, on every ingested result
    return AssessmentEvent(
        event_id=event.event_id,
        learner_id=event.learner_id,
        module_id=event.module_id,
        score=event.score,
        occurred_at=event.occurred_at,
        skill_ids=skills,
        item_id=event.item_id,
        duration_seconds=event.duration_seconds,
        occurred_at_sent=event.occurred_at_sent,
        kind=event.kind,
    )


def validate_events(
    events: Sequence[AssessmentEvent],
    catalog: Catalog,
    now: datetime,
    future_tolerance: timedelta,
    prefix: str = "result",
) -> list[AssessmentEvent | InvalidInput]:
    """validate_event of each event of a batch, in order: the validated event, or the InvalidInput
    validate_event raises for it. The same results, at less cost per result: a batch names few
    learners and modules many times, so each of those ids and modules is checked once, and a
    result that passes every check is built directly; any other goes through validate_event, which
    names its problems exactly as for a single result."""
    latest = now + future_tolerance
    # the usual case, checked at once: every event id, and every learner id, well-formed
    event_ids_ok = all_ids([e.event_id for e in events])
    good_ids: set[str] = set()  # learner, module and item ids already found well-formed
    learners = list({e.learner_id: None for e in events})
    if all_ids(learners):
        good_ids.update(learners)
    module_skills: dict[str, tuple[str, ...]] = {}
    out: list[AssessmentEvent | InvalidInput] = []
    for e in events:
        skills = module_skills.get(e.module_id)
        if skills is None:
            module = catalog.modules.get(e.module_id)
            if module is not None and is_id(e.module_id):
                skills = module_skills[e.module_id] = module.skill_ids
        if (
            skills is not None
            and not e.skill_ids
            and (event_ids_ok or is_id(e.event_id))
            and (e.learner_id in good_ids or (is_id(e.learner_id) and _added(good_ids, e.learner_id)))
            and (not e.item_id or e.item_id in good_ids or (is_id(e.item_id) and _added(good_ids, e.item_id)))
            and 0.0 <= e.score <= 1.0  # false for NaN and infinities too
            and 0.0 <= e.duration_seconds <= MAX_DURATION_SECONDS
            and e.occurred_at <= latest
            and e.occurred_at.year >= 1990
        ):
            resolved = _new(AssessmentEvent)  # e with its module's skills, its fields copied at once
            resolved.__dict__.update(e.__dict__, skill_ids=skills)
            out.append(resolved)
            continue
        try:
            out.append(validate_event(e, catalog, now, future_tolerance, prefix))
        except InvalidInput as exc:
            out.append(exc)
    return out


def _added(found: set[str], value: str) -> bool:
    found.add(value)
    return True

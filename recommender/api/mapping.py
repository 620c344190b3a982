"""Proto <-> domain mapping. Parsing validates shapes that only the wire can get wrong
(timestamps out of range, NaN); domain validation does the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.status import code_of, field_of, message_of
from recommender.domain.assessment import AssessmentEvent, ResultKind, assessment_event, to_micros
from recommender.domain.catalog import (
    Catalog,
    Module,
    Skill,
    SkillRequirement,
    SkillWeight,
    TargetRole,
)
from recommender.domain.jobs import TrainingJob
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath, Reason, ReasonCode, StepKind, StopReason
from recommender.domain.profile import SkillProfile
from recommender.errors import FieldViolation, InvalidInput, clipped
from recommender.ml.train import TrainConfig
from recommender.service.models import ModelInfo
from recommender.service.recommend import CohortOutcome, PathRequest


def timestamp(moment: datetime | None) -> Timestamp | None:
    """Timestamp.FromDatetime without its cost (a profile has a time per skill): the same seconds
    and nanos for a timezone-aware moment; a naive one goes through FromDatetime (read as UTC)."""
    if moment is None:
        return None
    ts = Timestamp()
    _set_time(ts, moment)
    return ts


def parse_timestamp(ts: Timestamp, field: str) -> datetime:
    """Timestamp.ToDatetime without its cost (a tenth of ingest's per-result time): the same
    instant, truncated to microseconds, and the same range (years 1 to 9999)."""
    if not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidInput.of(field, f"is not a valid timestamp (nanos {ts.nanos} out of range)")
    try:
        return _UNIX_EPOCH + timedelta(0, ts.seconds, ts.nanos // 1000)  # (days, seconds, microseconds)
    except OverflowError as exc:
        raise InvalidInput.of(field, f"is not a valid timestamp ({exc})") from exc


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# learners -----------------------------------------------------------------------------------
def learner_from_proto(msg: pb.Learner) -> Learner:
    return Learner(
        learner_id=msg.learner_id,
        cohort_id=msg.cohort_id,
        country=msg.country,
        languages=tuple(msg.languages),
        program=msg.program,
        target_role_id=msg.target_role_id,
        chinese_level=msg.chinese_level,
        weekly_minutes=msg.weekly_minutes,
        attributes=dict(msg.attributes),
    )


def learner_to_proto(learner: Learner) -> pb.Learner:
    return pb.Learner(
        learner_id=learner.learner_id,
        cohort_id=learner.cohort_id,
        country=learner.country,
        languages=list(learner.languages),
        program=learner.program,
        target_role_id=learner.target_role_id,
        chinese_level=learner.chinese_level,
        weekly_minutes=learner.weekly_minutes,
        attributes=dict(learner.attributes),
        created_at=timestamp(learner.created_at),
        updated_at=timestamp(learner.updated_at),
    )


# assessments --------------------------------------------------------------------------------
# proto3 sends no 0 for a field without presence: a client whose stubs predate `optional` on
# score sends a score of 0 as no score at all, and is told how to mend it
MISSING_SCORE = (
    "is required (a score of 0 is sent too: regenerate client stubs from a .proto that declares"
    " `optional double score`)"
)


def event_from_proto(msg: pb.AssessmentResult, now: datetime, prefix: str = "result") -> AssessmentEvent:
    sent = msg.HasField("occurred_at")
    occurred = now
    if sent:  # parse_timestamp, its field's name built only for an error (once per ingested result)
        ts = msg.occurred_at
        nanos = ts.nanos
        try:
            if not 0 <= nanos < 1_000_000_000:
                raise OverflowError
            occurred = _UNIX_EPOCH + timedelta(0, ts.seconds, nanos // 1000)
        except OverflowError:
            occurred = parse_timestamp(ts, f"{prefix}.occurred_at")
    if not msg.HasField("score"):
        raise InvalidInput.of(f"{prefix}.score", MISSING_SCORE)
    kind = _RESULT_KINDS.get(msg.kind)
    return assessment_event(
        msg.event_id,
        msg.learner_id,
        msg.module_id,
        msg.score,
        occurred,
        tuple(msg.skill_ids),
        msg.item_id,
        msg.duration_seconds,
        sent,
        kind if kind is not None else result_kind_from_proto(msg.kind, f"{prefix}.kind"),
    )


_RESULT_KINDS = {int(k): k for k in ResultKind}


def result_kind_from_proto(value: int, field: str) -> ResultKind:
    try:
        return ResultKind(value)  # the proto's ResultKind numbers are the domain's
    except ValueError:
        raise InvalidInput.of(field, f"unknown result kind {value}") from None


def profile_to_proto(profile: SkillProfile, into: pb.SkillProfile | None = None) -> pb.SkillProfile:
    """The profile as its message, filled in place (`into`: a response's own field): building
    each skill's message and timestamp apart and copying them in cost twice as much, on every
    RecordAssessment."""
    msg = pb.SkillProfile() if into is None else into
    msg.learner_id = profile.learner_id
    add = msg.skills.add
    for s in profile.skills:
        skill = add(
            skill_id=s.skill_id, mastery=s.mastery, attempts=s.attempts, studies_since_check=s.studies_since_check
        )
        _set_time(skill.last_practiced_at, s.last_practiced_at)
    if profile.updated_at is not None:
        _set_time(msg.updated_at, profile.updated_at)
    _set_time(msg.as_of, profile.as_of)
    return msg


def _set_time(ts: Timestamp, moment: datetime) -> None:
    """`moment` written into a Timestamp, a message's own field or a new one (timestamp())."""
    if moment.tzinfo is None:
        ts.FromDatetime(moment)
        return
    seconds, micros = divmod(to_micros(moment), 1_000_000)
    ts.seconds = seconds
    ts.nanos = micros * 1000


# catalog ------------------------------------------------------------------------------------
def skill_from_proto(msg: pb.Skill) -> Skill:
    return Skill(skill_id=msg.skill_id, names=dict(msg.names), domain=msg.domain)


def module_from_proto(msg: pb.Module) -> Module:
    return Module(
        module_id=msg.module_id,
        titles=dict(msg.titles),
        skills=tuple(SkillWeight(s.skill_id, s.weight) for s in msg.skills),
        prerequisite_module_ids=tuple(msg.prerequisite_module_ids),
        languages=tuple(msg.languages),
        track=msg.track,
        difficulty=msg.difficulty,
        estimated_minutes=msg.estimated_minutes,
        min_chinese_level=msg.min_chinese_level,
        raises_chinese_level=msg.raises_chinese_level,
    )


def role_from_proto(msg: pb.TargetRole) -> TargetRole:
    return TargetRole(
        role_id=msg.role_id,
        names=dict(msg.names),
        industry=msg.industry,
        requirements=tuple(SkillRequirement(r.skill_id, r.level, r.weight) for r in msg.requirements),
        shortage_index=msg.shortage_index,
    )


def catalog_parts_from_proto(
    msg: pb.UpsertCatalogRequest | pb.UpsertSharedCatalogRequest,
) -> tuple[list[Skill], list[Module], list[TargetRole]]:
    return (
        [skill_from_proto(s) for s in msg.skills],
        [module_from_proto(m) for m in msg.modules],
        [role_from_proto(r) for r in msg.roles],
    )


def skills_to_proto(skills: Iterable[Skill]) -> list[pb.Skill]:
    return [pb.Skill(skill_id=s.skill_id, names=dict(s.names), domain=s.domain) for s in skills]


def modules_to_proto(modules: Iterable[Module]) -> list[pb.Module]:
    return [
        pb.Module(
            module_id=m.module_id,
            titles=dict(m.titles),
            skills=[pb.SkillWeight(skill_id=s.skill_id, weight=s.weight) for s in m.skills],
            prerequisite_module_ids=list(m.prerequisite_module_ids),
            languages=list(m.languages),
            track=m.track,
            difficulty=m.difficulty,
            estimated_minutes=m.estimated_minutes,
            min_chinese_level=m.min_chinese_level,
            raises_chinese_level=m.raises_chinese_level,
        )
        for m in modules
    ]


def roles_to_proto(roles: Iterable[TargetRole]) -> list[pb.TargetRole]:
    return [
        pb.TargetRole(
            role_id=r.role_id,
            names=dict(r.names),
            industry=r.industry,
            requirements=[
                pb.SkillRequirement(skill_id=q.skill_id, level=q.level, weight=q.weight) for q in r.requirements
            ],
            shortage_index=r.shortage_index,
        )
        for r in roles
    ]


def catalog_summary(catalog: Catalog) -> pb.CatalogSummary:
    return pb.CatalogSummary(
        skills=len(catalog.skills),
        modules=len(catalog.modules),
        roles=len(catalog.roles),
        revision=catalog.revision,
    )


def catalog_to_proto(catalog: Catalog) -> pb.GetCatalogResponse:
    return pb.GetCatalogResponse(
        skills=skills_to_proto(catalog.skills.values()),
        modules=modules_to_proto(catalog.modules.values()),
        roles=roles_to_proto(catalog.roles.values()),
        revision=catalog.revision,
    )


# paths ----------------------------------------------------------------------------------------
_STOP = {
    StopReason.MAX_STEPS: pb.STOP_REASON_MAX_STEPS,
    StopReason.TIME_BUDGET: pb.STOP_REASON_TIME_BUDGET,
    StopReason.ROLE_READY: pb.STOP_REASON_ROLE_READY,
    StopReason.NO_ELIGIBLE_MODULE: pb.STOP_REASON_NO_ELIGIBLE_MODULE,
    StopReason.REPEATED_FAILURE: pb.STOP_REASON_REPEATED_FAILURE,
    StopReason.ROLE_OUT_OF_REACH: pb.STOP_REASON_ROLE_OUT_OF_REACH,
}
_REASON = {
    ReasonCode.SKILL_GAP: pb.REASON_CODE_SKILL_GAP,
    ReasonCode.PREREQUISITE_FOR: pb.REASON_CODE_PREREQUISITE_FOR,
    ReasonCode.ROLE_REQUIRES: pb.REASON_CODE_ROLE_REQUIRES,
    ReasonCode.SIMILAR_LEARNERS_SUCCEEDED: pb.REASON_CODE_SIMILAR_LEARNERS_SUCCEEDED,
    ReasonCode.REVIEW_DUE: pb.REASON_CODE_REVIEW_DUE,
    ReasonCode.LANGUAGE_MATCH: pb.REASON_CODE_LANGUAGE_MATCH,
    ReasonCode.CHECK_DUE: pb.REASON_CODE_CHECK_DUE,
    ReasonCode.REMEDIATE: pb.REASON_CODE_REMEDIATE,
    ReasonCode.NEEDS_SUPPORT: pb.REASON_CODE_NEEDS_SUPPORT,
    ReasonCode.LANGUAGE_BLOCKED: pb.REASON_CODE_LANGUAGE_BLOCKED,
    ReasonCode.CHINESE_LEVEL_BLOCKED: pb.REASON_CODE_CHINESE_LEVEL_BLOCKED,
    ReasonCode.NOT_IN_CATALOG: pb.REASON_CODE_NOT_IN_CATALOG,
    ReasonCode.MODULE_EXCLUDED: pb.REASON_CODE_MODULE_EXCLUDED,
    ReasonCode.CONFIRM_PREREQUISITE: pb.REASON_CODE_CONFIRM_PREREQUISITE,
    ReasonCode.LANGUAGE_UNLOCK: pb.REASON_CODE_LANGUAGE_UNLOCK,
}

_KIND = {StepKind.STUDY: pb.STEP_KIND_STUDY, StepKind.SKILL_CHECK: pb.STEP_KIND_SKILL_CHECK}

STOP_REASON_NAMES = {k: pb.StopReason.Name(v) for k, v in _STOP.items()}
STEP_KIND_NAMES = {k: pb.StepKind.Name(v) for k, v in _KIND.items()}
REASON_CODE_NAMES = {k: pb.ReasonCode.Name(v) for k, v in _REASON.items()}


def timestamp_json(moment: datetime) -> str:
    """RFC 3339 as protobuf's JSON mapping writes a Timestamp."""
    ts = timestamp(moment)
    assert ts is not None
    return ts.ToJsonString()


def path_request_from_proto(msg: pb.RecommendPathRequest) -> PathRequest:
    return PathRequest(
        learner_id=msg.learner_id,
        max_steps=msg.max_steps,
        target_role_id=msg.target_role_id,
        languages=tuple(msg.languages),
        time_budget_minutes=msg.time_budget_minutes,
        exclude_module_ids=tuple(msg.exclude_module_ids),
        locale=msg.locale,
    )


def path_to_proto(path: LearningPath, reason_to_proto: Callable[[Reason], pb.Reason] | None = None) -> pb.LearningPath:
    """`reason_to_proto`: a memo of reason messages (ReasonMessages); the planner shares Reason
    objects across steps and paths, and copying a built message costs a quarter of building one."""
    reason_message = reason_to_proto or _new_reason_to_proto
    return pb.LearningPath(
        learner_id=path.learner_id,
        target_role_id=path.target_role_id,
        steps=[
            pb.PathStep(
                position=s.position,
                module_id=s.module_id,
                score=s.score,
                expected_success=s.expected_success,
                gains=[
                    pb.SkillGain(skill_id=g.skill_id, mastery_before=g.mastery_before, mastery_after=g.mastery_after)
                    for g in s.gains
                ],
                estimated_minutes=s.estimated_minutes,
                review=s.review,
                reasons=[reason_message(r) for r in s.reasons],
                kind=_KIND[s.kind],
                check_skill_ids=list(s.check_skill_ids),
            )
            for s in path.steps
        ],
        readiness_now=path.readiness_now,
        readiness_after=path.readiness_after,
        stop_reason=_STOP[path.stop_reason],
        unreachable_skill_ids=list(path.unreachable_skill_ids),
        model_version=path.model_version,
        generated_at=timestamp(path.generated_at),
        blockers=[reason_message(r) for r in path.blockers],
        locale=path.locale,
    )


def _new_reason_to_proto(reason: Reason) -> pb.Reason:
    return pb.Reason(code=_REASON[reason.code], params=dict(reason.params), text=reason.text)


class ReasonMessages:
    """The message of each Reason object recently mapped, by identity (each entry holds its reason,
    so an id cannot be reused while kept); cleared when full."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._messages: dict[int, tuple[Reason, pb.Reason]] = {}

    def __call__(self, reason: Reason) -> pb.Reason:
        found = self._messages.get(id(reason))
        if found is not None and found[0] is reason:
            return found[1]
        message = _new_reason_to_proto(reason)
        if len(self._messages) >= self._limit:
            self._messages.clear()
        self._messages[id(reason)] = (reason, message)
        return message


def cohort_outcome_to_proto(outcome: CohortOutcome) -> pb.GeneratePathsResponse:
    if outcome.path is not None:
        return pb.GeneratePathsResponse(
            index=outcome.index, learner_id=outcome.learner_id, path=path_to_proto(outcome.path)
        )
    error = outcome.error
    assert error is not None
    return pb.GeneratePathsResponse(
        index=outcome.index,
        learner_id=clipped(outcome.learner_id),  # a rejected id may be of any length
        error=pb.PathError(code=code_of(error).value[0], message=message_of(error), field=field_of(error)),
    )


# models ---------------------------------------------------------------------------------------
_JOB_STATE = {
    "queued": pb.JOB_STATE_QUEUED,
    "running": pb.JOB_STATE_RUNNING,
    "succeeded": pb.JOB_STATE_SUCCEEDED,
    "failed": pb.JOB_STATE_FAILED,
}
MAX_EPOCHS = 500


def model_info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    return pb.ModelInfo(
        version=info.version,
        created_at=timestamp(info.created_at),
        active=info.active,
        metrics=dict(info.metrics),
        data_fingerprint=info.data_fingerprint,
        training_events=info.training_events,
    )


def train_config_from_proto(msg: pb.TrainModelRequest) -> TrainConfig:
    problems = []
    if msg.epochs < 0 or msg.epochs > MAX_EPOCHS:
        problems.append(FieldViolation("epochs", f"must be in [0, {MAX_EPOCHS}] (0 means the default)"))
    if msg.seed < 0 or msg.seed >= 2**31:
        problems.append(FieldViolation("seed", "must be in [0, 2^31)"))
    if problems:
        raise InvalidInput(problems)
    default = TrainConfig()
    return TrainConfig(
        seed=msg.seed or default.seed,
        epochs=msg.epochs or default.epochs,
        reset_degenerate_bkt=(
            msg.reset_degenerate_bkt if msg.HasField("reset_degenerate_bkt") else default.reset_degenerate_bkt
        ),
        learner_ability=msg.learner_ability if msg.HasField("learner_ability") else default.learner_ability,
    )


def training_job_to_proto(job: TrainingJob) -> pb.TrainingJob:
    return pb.TrainingJob(
        job_id=job.job_id,
        state=_JOB_STATE[job.state],
        progress=job.progress,
        message=job.message,
        model_version=job.model_version,
        activated=job.activated,
        started_at=timestamp(job.started_at),
        finished_at=timestamp(job.finished_at),
        metrics=dict(job.metrics),
    )

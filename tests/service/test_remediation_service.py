"""Evidence semantics and remediation through the real service and store (issue #20): a failed
module assessment reads as not learned, a studied prerequisite not mastered blocks what depends on
it until it is retaught, and the store counts each learner's studies of each module.
Real service, real SQLite store (and PostgreSQL in CI)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from recommender.domain.assessment import AssessmentEvent, ResultKind
from recommender.domain.learner import Learner
from recommender.domain.path import ReasonCode, StopReason
from recommender.kt.bkt import SkillParams
from recommender.service.app import App
from recommender.service.recommend import PathRequest, plan_cohort
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0


def _ana(app: App) -> Learner:
    ana = Learner("ana", languages=("en",), target_role_id="welder")
    app.learners.upsert(DEFAULT_TENANT, ana)
    return ana


def _study(app: App, event_id: str, score: float, hours_ago: int, kind: ResultKind = ResultKind.UNSPECIFIED) -> None:
    at = T0 - timedelta(hours=hours_ago)
    event = AssessmentEvent(event_id, "ana", "safety-101", score, at, kind=kind)
    app.learners.record_batch(DEFAULT_TENANT, [event])


def test_a_failed_module_reads_as_not_learned_and_is_retaught_before_its_dependents(tiny_app: App) -> None:
    _ana(tiny_app)
    _study(tiny_app, "e1", 0.2, 1)
    profile = tiny_app.learners.profile(DEFAULT_TENANT, "ana")
    learned = SkillParams().prior + (1 - SkillParams().prior) * SkillParams().learn
    failed = profile.mastery_of("safety", 1.0)
    assert failed < learned and failed < tiny_app.settings.mastery_confidence, "learn, then observe: not learned"
    path = tiny_app.paths.recommend(DEFAULT_TENANT, PathRequest("ana", max_steps=3))
    first = path.steps[0]
    assert first.module_id == "safety-101"
    assert first.reasons[0].code is ReasonCode.REMEDIATE and first.reasons[0].params["attempts"] == "1"


def test_studies_are_counted_per_learner_and_item_results_do_not_count(tiny_app: App) -> None:
    _ana(tiny_app)
    tiny_app.learners.upsert(DEFAULT_TENANT, Learner("bo", languages=("en",), target_role_id="welder"))
    _study(tiny_app, "e1", 0.2, 5)
    _study(tiny_app, "e2", 0.3, 4)
    _study(tiny_app, "p1", 0.0, 3, kind=ResultKind.CHECK)
    _study(tiny_app, "p2", 1.0, 2, kind=ResultKind.PRACTICE)
    tiny_app.learners.record_batch(
        DEFAULT_TENANT,
        [AssessmentEvent("q1", "ana", "welding-101", 1.0, T0 - timedelta(hours=1), item_id="q")],  # inferred: practice
    )
    record = tiny_app.store.get_learner_record(DEFAULT_TENANT, "ana")
    assert record is not None and dict(record.studied_module_ids) == {"safety-101": 2}
    bo = tiny_app.store.get_learner_record(DEFAULT_TENANT, "bo")
    assert bo is not None and not bo.studied_module_ids
    stored = {e.event_id: e.kind for e in tiny_app.store.events_of(DEFAULT_TENANT, "ana")}
    assert stored["p1"] is ResultKind.CHECK and stored["e1"] is ResultKind.UNSPECIFIED, "kinds stored as sent"


def test_repeated_failure_ends_on_a_supported_retake_named_in_single_and_batch_paths(tiny_app: App) -> None:
    ana = _ana(tiny_app)
    for i in range(3):
        _study(tiny_app, f"e{i}", 0.1, 10 - i)
    request = PathRequest("ana", max_steps=4)
    single = tiny_app.paths.recommend(DEFAULT_TENANT, request)
    # three studies of safety: a skill check comes first
    assert single.steps and single.steps[0].check_skill_ids
    for k in range(5):
        _study(tiny_app, f"c{k}", 0.0, 5, kind=ResultKind.CHECK)
    stopped = tiny_app.paths.recommend(DEFAULT_TENANT, request)
    # nothing else leads on: one more retake, with a teacher's support, and the path ends there
    assert stopped.stop_reason is StopReason.REPEATED_FAILURE
    assert [s.module_id for s in stopped.steps] == ["safety-101"]
    assert [r.params["module_id"] for r in stopped.blockers] == ["safety-101"]
    batch = list(plan_cohort(tiny_app.paths, DEFAULT_TENANT, [ana], max_steps=4, locale="", persist=False,
                             learner_service=tiny_app.learners))  # fmt: skip
    assert batch[0].path is not None and batch[0].path.blockers == stopped.blockers
    assert Counter(e.module_id for e in tiny_app.store.events_of(DEFAULT_TENANT, "ana") if e.studies_module) == {
        "safety-101": 3
    }

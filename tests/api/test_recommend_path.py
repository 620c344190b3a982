"""RecommendPath over a real server."""

from __future__ import annotations

import grpc
import pytest

from recommender.api import mapping
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from tests.api.conftest import Served, violations
from tests.api.test_core_rpcs import ana, code_of, load_tiny, result
from tests.conftest import T0


@pytest.fixture
def ready(served: Served) -> Served:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    return served


def test_path_for_a_learner_with_history(ready: Served) -> None:
    ready.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1", module_id="safety-101")))
    path = ready.stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana", locale="zh-CN"))
    assert path.learner_id == "ana" and path.target_role_id == "welder"
    assert [s.position for s in path.steps] == list(range(1, len(path.steps) + 1))
    assert path.steps[0].module_id in {"safety-101", "welding-101"}
    assert path.readiness_after >= path.readiness_now
    assert path.model_version == ""
    assert path.stop_reason != pb.STOP_REASON_UNSPECIFIED
    for step in path.steps:
        assert step.reasons
        assert all(r.code != pb.REASON_CODE_UNSPECIFIED and r.text for r in step.reasons)
    gap = next(r for s in path.steps for r in s.reasons if r.code == pb.REASON_CODE_SKILL_GAP)
    assert "掌握度" in gap.text, "zh locale renders Chinese texts"
    assert set(gap.params) == {"skill_id", "mastery", "required"}


def test_overrides_role_languages_and_exclusions(ready: Served) -> None:
    path = ready.stub.RecommendPath(
        pb.RecommendPathRequest(learner_id="ana", target_role_id="marketer", languages=["ar"], max_steps=3, locale="xx")
    )
    assert [s.module_id for s in path.steps] == ["marketing-101"]
    # issue #24: a locale without texts falls back to the learner's first language (ana: fr, en)
    assert path.locale == "fr"
    assert "Enseigné en arabe." in [r.text for r in path.steps[0].reasons]
    excluded = ready.stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana", exclude_module_ids=["welding-101"]))
    assert "welding-101" not in [s.module_id for s in excluded.steps]
    assert "welding" in excluded.unreachable_skill_ids


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (pb.RecommendPathRequest(learner_id="ghost"), grpc.StatusCode.NOT_FOUND, "learner_id"),
        (pb.RecommendPathRequest(learner_id="ana", target_role_id="pilot"), grpc.StatusCode.NOT_FOUND,
         "target_role_id"),
        (pb.RecommendPathRequest(learner_id="ana", max_steps=51), grpc.StatusCode.INVALID_ARGUMENT, "max_steps"),
        (pb.RecommendPathRequest(learner_id="ana", max_steps=-1), grpc.StatusCode.INVALID_ARGUMENT, "max_steps"),
        (pb.RecommendPathRequest(learner_id="ana", time_budget_minutes=-5), grpc.StatusCode.INVALID_ARGUMENT,
         "time_budget_minutes"),
        (pb.RecommendPathRequest(learner_id="ana", languages=["??"]), grpc.StatusCode.INVALID_ARGUMENT, "languages[0]"),
        (pb.RecommendPathRequest(learner_id="ana", exclude_module_ids=["nope"]), grpc.StatusCode.NOT_FOUND,
         "exclude_module_ids[0]"),
    ],
)  # fmt: skip
def test_bad_requests(ready: Served, request_: pb.RecommendPathRequest, code: grpc.StatusCode, field: str) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        ready.stub.RecommendPath(request_)
    assert code_of(exc.value) == code
    assert field in violations(exc.value)


def test_impossible_path_is_failed_precondition_naming_the_constraint(ready: Served) -> None:
    # without Chinese (ana reads it at HSK 2), nothing of the catalog is taught in Thai
    thai = pb.Learner(learner_id="som", languages=["th"], target_role_id="welder")
    ready.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=thai))
    with pytest.raises(grpc.RpcError) as exc:
        ready.stub.RecommendPath(pb.RecommendPathRequest(learner_id="som"))
    assert code_of(exc.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert "languages (th)" in str(exc.value.details())


def test_learner_without_role_must_name_one(ready: Served) -> None:
    ready.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=pb.Learner(learner_id="norole", languages=["en"])))
    with pytest.raises(grpc.RpcError) as exc:
        ready.stub.RecommendPath(pb.RecommendPathRequest(learner_id="norole"))
    assert code_of(exc.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert "has no target role yet" in str(exc.value.details())


def test_a_stalled_skill_gets_a_skill_check_until_item_results_answer_it(ready: Served) -> None:
    """Three module results on welding and its estimate is still below the role's level: the path
    starts with a skill check of welding (not more welding study); item results answer it."""
    for i in range(3):
        ready.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result(f"w{i}", score=0.1)))
    profile = ready.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"))
    assert {s.skill_id: s.studies_since_check for s in profile.skills} == {"welding": 3}
    path = ready.stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana", locale="zh-CN"))
    first = path.steps[0]
    assert first.kind == pb.STEP_KIND_SKILL_CHECK and first.module_id == "" and not first.gains
    assert list(first.check_skill_ids) == ["welding"]
    due = [r for r in first.reasons if r.code == pb.REASON_CODE_CHECK_DUE]
    assert len(due) == 1 and due[0].params["skill_id"] == "welding" and due[0].params["studies"] == "3"
    assert "检测" in due[0].text
    assert [s.kind for s in path.steps[1:]] == [pb.STEP_KIND_STUDY] * (len(path.steps) - 1)
    for k in range(5):
        item = pb.AssessmentResult(
            event_id=f"check-{k}", learner_id="ana", module_id="welding-101", item_id=f"check-{k}",
            skill_ids=["welding"], score=1.0, occurred_at=mapping.timestamp(T0),
        )  # fmt: skip
        ready.stub.RecordAssessment(pb.RecordAssessmentRequest(result=item))
    after = ready.stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana"))
    assert all(s.kind == pb.STEP_KIND_STUDY and s.module_id for s in after.steps)
    profile = ready.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"))
    assert {s.skill_id: s.studies_since_check for s in profile.skills} == {"welding": 0}

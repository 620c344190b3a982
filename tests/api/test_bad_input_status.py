"""Issue #22, defect 2: every bad input answers the status that tells the client what to do
(INVALID_ARGUMENT naming the field), on SQLite and PostgreSQL alike, and an error never echoes
more than a bounded amount of what the caller sent."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from tests.api.conftest import Served, violations
from tests.api.test_core_rpcs import ana, load_tiny
from tests.api.test_models_rpc import CONFIG
from tests.service.test_models import load_world

Read = Callable[[pb_grpc.LearningPathServiceStub, str], object]

READS: dict[str, Read] = {
    "GetLearner": lambda stub, lid: stub.GetLearner(pb.GetLearnerRequest(learner_id=lid)),
    "GetSkillProfile": lambda stub, lid: stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id=lid)),
    "DeleteLearner": lambda stub, lid: stub.DeleteLearner(pb.DeleteLearnerRequest(learner_id=lid)),
    "RecommendPath": lambda stub, lid: stub.RecommendPath(pb.RecommendPathRequest(learner_id=lid)),
}


def error_text(error: grpc.RpcError) -> int:
    """Bytes of text an error carries: its message and every string in its details."""
    size = len((error.details() or "").encode())
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            size += sum(len(v.field.encode()) + len(v.description.encode()) for v in bad.field_violations)
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            size += sum(len(f"{v.type}{v.subject}{v.description}".encode()) for v in failure.violations)
    return size


@pytest.mark.parametrize("method", sorted(READS))
@pytest.mark.parametrize(
    "learner_id",
    ["", "ana\x00", "a" * 129, "a" * 20_000, "a" * 1_000_000],
    ids=["empty", "nul", "129", "20k", "1m"],
)
def test_a_malformed_learner_id_is_invalid_argument_on_every_read(served: Served, method: str, learner_id: str) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    with pytest.raises(grpc.RpcError) as exc:
        READS[method](served.stub, learner_id)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value.details()
    assert "learner_id" in violations(exc.value)
    assert error_text(exc.value) <= 1024
    assert served.app.store.count_learners() == 1, "nothing was erased"


def test_an_unknown_but_long_role_or_module_is_not_echoed_whole(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    requests = [
        pb.RecommendPathRequest(learner_id="ana", target_role_id="r" * 100_000),
        pb.RecommendPathRequest(learner_id="ana", exclude_module_ids=["m" * 100_000]),
    ]
    for request in requests:
        with pytest.raises(grpc.RpcError) as exc:
            served.stub.RecommendPath(request)
        assert exc.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
        assert error_text(exc.value) <= 1024


def test_thousands_of_field_violations_give_a_bounded_error(served: Served) -> None:
    modules = [pb.Module(module_id=f"bad id {i} " + "x" * 500, estimated_minutes=-1) for i in range(2000)]
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.UpsertCatalog(pb.UpsertCatalogRequest(modules=modules))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(exc.value), "the first violations are still named"
    assert error_text(exc.value) <= 1024
    assert "more problems not shown" in (exc.value.details() or "")


def test_a_bulk_rejection_does_not_echo_a_huge_event_id(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    huge = pb.AssessmentResult(event_id="e" * 1_000_000, learner_id="ana", module_id="safety-101", score=1.0)
    summary = served.stub.RecordAssessments(iter([pb.RecordAssessmentsRequest(results=[huge])]))
    (rejected,) = summary.rejected
    assert rejected.field == "result.event_id" and rejected.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert len(rejected.event_id) + len(rejected.reason) <= 1024


def test_a_result_without_a_score_is_refused_and_a_score_of_zero_is_recorded(served: Served) -> None:
    """proto3 would read an absent score as 0, a failed attempt that lowers mastery: the field has
    presence, and a client that forgets it is told so instead."""
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    unscored = pb.AssessmentResult(event_id="e-none", learner_id="ana", module_id="safety-101")
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=unscored))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is required" in violations(exc.value)["result.score"]
    zero = pb.AssessmentResult(event_id="e-zero", learner_id="ana", module_id="safety-101", score=0.0)
    summary = served.stub.RecordAssessments(iter([pb.RecordAssessmentsRequest(results=[unscored, zero])]))
    assert summary.accepted == 1
    (rejected,) = summary.rejected
    assert (rejected.index, rejected.field) == (0, "result.score")
    assert rejected.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [(e.event_id, e.score) for e in served.app.store.events_of("default", "ana")] == [("e-zero", 0.0)]


def test_a_batch_names_the_fields_a_single_result_names(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    ghost = pb.AssessmentResult(event_id="e-ghost", learner_id="ghost", module_id="safety-101", score=1.0)
    recorded = pb.AssessmentResult(event_id="e-1", learner_id="ana", module_id="safety-101", score=1.0)
    served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=recorded))
    changed = pb.AssessmentResult(event_id="e-1", learner_id="ana", module_id="safety-101", score=0.5)
    singles = {}
    for result in (ghost, changed):
        with pytest.raises(grpc.RpcError) as exc:
            served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result))
        singles[result.event_id] = (exc.value.code().value[0], next(iter(violations(exc.value))))
    summary = served.stub.RecordAssessments(iter([pb.RecordAssessmentsRequest(results=[ghost, changed])]))
    assert (
        {r.event_id: (r.code, r.field) for r in summary.rejected}
        == singles
        == {
            "e-ghost": (grpc.StatusCode.NOT_FOUND.value[0], "result.learner_id"),
            "e-1": (grpc.StatusCode.ALREADY_EXISTS.value[0], "result.event_id"),
        }
    )


@pytest.mark.parametrize("version", ["v" * 300, "", "bad\x00version", "a/b"], ids=["300", "empty", "nul", "slash"])
def test_a_malformed_model_version_is_invalid_argument(served: Served, version: str) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.ActivateModel(pb.ActivateModelRequest(version=version))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "version" in violations(exc.value)
    assert error_text(exc.value) <= 1024


def test_a_job_id_is_checked_like_any_id(served: Served) -> None:
    for job_id in ("", "j" * 20_000):
        with pytest.raises(grpc.RpcError) as exc:
            served.stub.GetTrainingJob(pb.GetTrainingJobRequest(job_id=job_id))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "job_id" in violations(exc.value)


def test_a_model_folder_with_a_bad_created_at_is_refused_before_any_effect(served: Served) -> None:
    load_world(served.app, 100)
    good = served.app.training.train(CONFIG).version
    bad = served.app.training.train(CONFIG, activate=False).version
    meta_file = served.app.models.folder(bad) / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["created_at"] = "yesterday-ish"
    meta_file.write_text(json.dumps(meta))
    listed = served.stub.ListModels(pb.ListModelsRequest())
    assert [m.version for m in listed.models] == [good], "the bad folder is skipped, the rest listed"
    history = served.app.store.activation_history()
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.ActivateModel(pb.ActivateModelRequest(version=bad))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert served.app.store.activation_history() == history, "no activation was recorded"
    assert served.stub.ListModels(pb.ListModelsRequest()).active_version == good, "the active model stays"


def test_a_model_version_is_its_folder_name(served: Served) -> None:
    load_world(served.app, 100)
    served.app.training.train(CONFIG)
    other = served.app.training.train(CONFIG, activate=False).version
    renamed = served.app.models.folder("renamed-by-an-operator")
    served.app.models.folder(other).rename(renamed)
    activated = served.stub.ActivateModel(pb.ActivateModelRequest(version=renamed.name))
    assert activated.model.version == renamed.name and activated.model.active
    listed = served.stub.ListModels(pb.ListModelsRequest())
    assert listed.active_version == renamed.name
    path = served.stub.RecommendPath(pb.RecommendPathRequest(learner_id="l0000", target_role_id="r"))
    assert path.model_version == renamed.name


def test_failed_precondition_carries_precondition_failure_details(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana"))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(exc.value)  # type: ignore[arg-type]
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert any(d.Unpack(failure) for d in status.details)
    (violation,) = failure.violations
    assert (violation.type, violation.subject) == ("CATALOG", "catalog")
    assert "UpsertCatalog" in violation.description

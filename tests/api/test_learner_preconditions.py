"""Issue #22, defect 5: an upsert refuses what would only fail later (a learner with no languages),
a learner may wait for a target role, and FAILED_PRECONDITION says which precondition, on what, in
google.rpc.PreconditionFailure details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from tests.api.conftest import Served, violations
from tests.api.test_core_rpcs import load_tiny


def precondition(error: grpc.RpcError) -> error_details_pb2.PreconditionFailure.Violation:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert any(d.Unpack(failure) for d in status.details), "PreconditionFailure details"
    (violation,) = failure.violations
    return violation


def test_a_learner_without_languages_is_refused_naming_the_field(served: Served) -> None:
    load_tiny(served)
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.UpsertLearner(
            pb.UpsertLearnerRequest(learner=pb.Learner(learner_id="mute", target_role_id="welder"))
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "learner.languages" in violations(exc.value)
    assert served.app.store.count_learners() == 0


def test_generate_paths_refuses_a_learner_without_languages_alone(served: Served) -> None:
    load_tiny(served)
    batch = [pb.Learner(learner_id="a", target_role_id="welder"), pb.Learner(learner_id="b", languages=["en"])]
    out = list(served.stub.GeneratePaths(pb.GeneratePathsRequest(learners=batch, persist=True)))
    assert out[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert out[0].error.field == "learners[0].languages"
    assert served.app.store.get_learner("default", "a") is None


def test_a_learner_may_wait_for_a_role_and_recommend_path_says_so(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=pb.Learner(learner_id="undecided", languages=["en"])))
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecommendPath(pb.RecommendPathRequest(learner_id="undecided"))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has no target role yet" in (exc.value.details() or "")
    violation = precondition(exc.value)
    assert (violation.type, violation.subject) == ("TARGET_ROLE", "learners/undecided")
    assert "target_role_id" in violation.description
    path = served.stub.RecommendPath(pb.RecommendPathRequest(learner_id="undecided", target_role_id="welder"))
    assert path.target_role_id == "welder" and path.steps, "a role in the request is enough"


def test_an_impossible_path_carries_precondition_failure_details(served: Served) -> None:
    load_tiny(served)
    learner = pb.Learner(learner_id="ana", languages=["en"], target_role_id="welder")
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=learner))
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana", languages=["th"]))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    violation = precondition(exc.value)
    assert violation.type == "PATH" and "(th)" in violation.description

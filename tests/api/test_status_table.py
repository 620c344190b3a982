"""The one error translator: every domain error maps to its documented status code, with field
violations where a field is at fault (ARCHITECTURE.md status table)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from recommender.api.status import code_of, status_of
from recommender.errors import (
    AlreadyExists,
    Conflict,
    FieldViolation,
    InvalidInput,
    LubanError,
    ModelArtifactError,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
)
from tests.api.conftest import Served


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput(FieldViolation("result.score", "must be in [0, 1]")), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFound("learner", "x", "learner_id"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("event e1 differs", "result.event_id"), grpc.StatusCode.ALREADY_EXISTS),
        (PreconditionFailed("no catalog"), grpc.StatusCode.FAILED_PRECONDITION),
        (ModelArtifactError("corrupt"), grpc.StatusCode.FAILED_PRECONDITION),
        (StoreUnavailable("down"), grpc.StatusCode.UNAVAILABLE),
        (Conflict("concurrent change; retry"), grpc.StatusCode.ABORTED),
    ],
)
def test_status_table(error: LubanError, code: grpc.StatusCode) -> None:
    assert code_of(error) == code
    status = status_of(error)
    assert status.code == code.value[0] and status.message == str(error)
    if isinstance(error, InvalidInput | NotFound | AlreadyExists):
        bad = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad)
        assert bad.field_violations[0].field in ("result.score", "learner_id", "result.event_id")


def test_oversized_message_is_refused(served: Served) -> None:
    from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb

    limit = served.app.settings.max_message_bytes
    huge = pb.UpsertLearnerRequest(learner=pb.Learner(learner_id="x", program="p" * (limit + 10)))
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.UpsertLearner(huge, timeout=30)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert served.app.store.count_learners() == 0

"""Issue #22, defect 1: a client that retries a result it sent without `occurred_at` (the field is
optional; the server fills in the receive time) gets `duplicate=true`, not ALREADY_EXISTS."""

from __future__ import annotations

import grpc
import pytest

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.service.clock import ManualClock
from tests.api.conftest import Served
from tests.api.test_core_rpcs import ana, load_tiny


def untimed(eid: str, score: float = 1.0) -> pb.AssessmentResult:
    """A result as the README's examples send it: no occurred_at."""
    return pb.AssessmentResult(event_id=eid, learner_id="ana", module_id="welding-101", score=score)


def later(served: Served) -> None:
    """A retry arrives after a timeout, so the server's receive time differs."""
    clock = served.app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds=30)


def test_a_retry_without_occurred_at_is_a_duplicate(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    first = served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=untimed("kofi-0001")))
    later(served)
    replay = served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=untimed("kofi-0001")))
    assert not first.duplicate and replay.duplicate
    assert [(s.skill_id, s.attempts, s.last_practiced_at) for s in replay.profile.skills] == [
        (s.skill_id, s.attempts, s.last_practiced_at) for s in first.profile.skills
    ], "nothing applied twice"
    assert len(served.app.store.events_of("default", "ana")) == 1


def test_a_retry_without_occurred_at_but_another_payload_still_conflicts(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=untimed("e1")))
    later(served)
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=untimed("e1", score=0.0)))
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_the_bulk_stream_counts_an_untimed_retry_as_a_duplicate(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    first = served.stub.RecordAssessments(iter([pb.RecordAssessmentsRequest(results=[untimed("b0"), untimed("b1")])]))
    later(served)
    again = served.stub.RecordAssessments(iter([pb.RecordAssessmentsRequest(results=[untimed("b0"), untimed("b1")])]))
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates, list(again.rejected)) == (0, 2, [])
    # a single call replaying what the stream stored is a duplicate too
    assert served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=untimed("b1"))).duplicate

"""Every core RPC against a real server: happy paths, each error code, idempotency, health."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from recommender.api import mapping
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.service.clock import ManualClock
from tests.api.conftest import Served, violations
from tests.conftest import T0, tiny_catalog


def load_tiny(served: Served) -> None:
    skills, modules, roles = tiny_catalog()
    served.stub.UpsertCatalog(
        pb.UpsertCatalogRequest(
            skills=mapping.skills_to_proto(skills),
            modules=mapping.modules_to_proto(modules),
            roles=mapping.roles_to_proto(roles),
        )
    )


def ana() -> pb.Learner:
    return pb.Learner(
        learner_id="ana",
        cohort_id="2026-rw",
        country="RW",
        languages=["fr", "EN"],
        program="manufacturing",
        target_role_id="welder",
        chinese_level=2,
        weekly_minutes=300,
        attributes={"experience_years": "1"},
    )


def result(eid: str, score: float = 1.0, at: Timestamp | None = None, **kw: object) -> pb.AssessmentResult:
    return pb.AssessmentResult(
        event_id=eid,
        learner_id=str(kw.get("learner_id", "ana")),
        module_id=str(kw.get("module_id", "welding-101")),
        score=score,
        occurred_at=at or mapping.timestamp(T0),
        skill_ids=list(kw.get("skill_ids", [])),  # type: ignore[call-overload]
    )


def code_of(call: object) -> grpc.StatusCode:
    assert isinstance(call, grpc.RpcError)
    return call.code()


def test_health_is_not_serving_until_a_catalog_is_loaded(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    service = "luban.path.v1.LearningPathService"
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=service)).status
        == health_pb2.HealthCheckResponse.NOT_SERVING
    )
    load_tiny(served)
    deadline = time.monotonic() + 5
    while health.Check(health_pb2.HealthCheckRequest(service=service)).status != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, "health never became SERVING"
        time.sleep(0.05)


def test_a_health_watch_follows_the_status_and_ends_when_the_server_stops(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service="luban.path.v1.LearningPathService"), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    load_tiny(served)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopping = threading.Thread(target=served.running.stop, args=(20,))
    stopping.start()
    assert [m.status for m in watch] == [health_pb2.HealthCheckResponse.NOT_SERVING], "told, then ended with OK"
    stopping.join(timeout=15)
    assert not stopping.is_alive(), "an open watch does not hold the shutdown for its grace period"


def test_reflection_lists_the_services(served: Served) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"luban.path.v1.LearningPathService", "grpc.health.v1.Health"} <= names


def test_catalog_upsert_get_and_cycle_rejection(served: Served) -> None:
    load_tiny(served)
    catalog = served.stub.GetCatalog(pb.GetCatalogRequest())
    assert len(catalog.modules) == 5 and catalog.revision == 1
    cyclic = pb.UpsertCatalogRequest(
        modules=[pb.Module(module_id="safety-101", skills=[pb.SkillWeight(skill_id="safety", weight=1)],
                           prerequisite_module_ids=["inspection-101"], languages=["en"], estimated_minutes=30)]
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.UpsertCatalog(cyclic)
    assert code_of(exc.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "safety-101 -> welding-101 -> inspection-101" in violations(exc.value)["modules"]
    assert served.stub.GetCatalog(pb.GetCatalogRequest()) == catalog, "a rejected catalog changes nothing"
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.UpsertCatalog(pb.UpsertCatalogRequest())
    assert code_of(exc.value) == grpc.StatusCode.INVALID_ARGUMENT


def test_learner_lifecycle(served: Served) -> None:
    load_tiny(served)
    stored = served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    assert list(stored.languages) == ["fr", "en"], "language tags are normalized"
    assert stored.created_at.ToDatetime() == T0.replace(tzinfo=None)
    assert served.stub.GetLearner(pb.GetLearnerRequest(learner_id="ana")) == stored
    served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1")))
    deleted = served.stub.DeleteLearner(pb.DeleteLearnerRequest(learner_id="ana"))
    assert (deleted.deleted, deleted.events_deleted) == (True, 1)
    again = served.stub.DeleteLearner(pb.DeleteLearnerRequest(learner_id="ana"))
    assert (again.deleted, again.events_deleted) == (False, 0), "erasure is idempotent"
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.GetLearner(pb.GetLearnerRequest(learner_id="ana"))
    assert code_of(exc.value) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"learner_id": ""}, "learner.learner_id"),
        ({"learner_id": "x" * 129}, "learner.learner_id"),
        ({"learner_id": "bad id"}, "learner.learner_id"),
        ({"country": "Rwanda"}, "learner.country"),
        ({"chinese_level": 7}, "learner.chinese_level"),
        ({"weekly_minutes": -5}, "learner.weekly_minutes"),
        ({"target_role_id": "astronaut"}, "learner.target_role_id"),
    ],
)
def test_invalid_learner_fields(served: Served, change: dict[str, object], field: str) -> None:
    load_tiny(served)
    learner = ana()
    for key, value in change.items():
        setattr(learner, key, value)
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=learner))
    assert code_of(exc.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(exc.value)


def test_invalid_language_tag(served: Served) -> None:
    load_tiny(served)
    learner = ana()
    learner.languages.append("not a tag")
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=learner))
    assert "learner.languages[2]" in violations(exc.value)


def test_record_assessment_updates_and_replays_idempotently(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    first = served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1")))
    assert not first.duplicate
    welding = {s.skill_id: s for s in first.profile.skills}["welding"]
    assert welding.attempts == 1 and 0 < welding.mastery <= 1
    replay = served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1")))
    assert replay.duplicate and replay.profile.skills == first.profile.skills
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1", score=0.0)))
    assert code_of(exc.value) == grpc.StatusCode.ALREADY_EXISTS
    assert "result.event_id" in violations(exc.value)
    profile = served.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"))
    assert profile.skills == first.profile.skills, "nothing changed by the conflicting replay"


def test_explicit_skills_override_the_modules_skills(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    response = served.stub.RecordAssessment(
        pb.RecordAssessmentRequest(result=result("e1", module_id="welding-301", skill_ids=["inspection"]))
    )
    assert [s.skill_id for s in response.profile.skills] == ["inspection"]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"score": 1.5}, grpc.StatusCode.INVALID_ARGUMENT, "result.score"),
        ({"score": math.nan}, grpc.StatusCode.INVALID_ARGUMENT, "result.score"),
        ({"score": -0.1}, grpc.StatusCode.INVALID_ARGUMENT, "result.score"),
        ({"event_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "result.event_id"),
        ({"module_id": "ghost-101"}, grpc.StatusCode.INVALID_ARGUMENT, "result.module_id"),
        ({"skill_ids": ["ghost"]}, grpc.StatusCode.INVALID_ARGUMENT, "result.skill_ids[0]"),
        ({"duration_seconds": -1.0}, grpc.StatusCode.INVALID_ARGUMENT, "result.duration_seconds"),
        ({"learner_id": "nobody"}, grpc.StatusCode.NOT_FOUND, "result.learner_id"),
    ],
)
def test_invalid_results_change_nothing(
    served: Served, change: dict[str, object], code: grpc.StatusCode, field: str
) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e0")))
    before = served.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"))
    bad = result("e1")
    for key, value in change.items():
        if key == "skill_ids":
            bad.skill_ids.extend(value)  # type: ignore[arg-type]
        else:
            setattr(bad, key, value)
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=bad))
    assert code_of(exc.value) == code
    assert field in violations(exc.value)
    assert served.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana")) == before
    assert len(served.app.store.events_of("default", "ana")) == 1


def test_future_and_malformed_timestamps_are_rejected(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    future = mapping.timestamp(T0 + timedelta(hours=2))
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1", at=future)))
    assert "result.occurred_at" in violations(exc.value)
    broken = Timestamp(seconds=10**15)
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e2", at=broken)))
    assert code_of(exc.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "result.occurred_at" in violations(exc.value)


def test_missing_catalog_is_failed_precondition(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1")))
    assert code_of(exc.value) == grpc.StatusCode.FAILED_PRECONDITION


def test_forgetting_over_time_with_an_injected_clock(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    for i in range(4):
        served.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result(f"e{i}")))
    clock = served.app.clock
    assert isinstance(clock, ManualClock)
    fresh = served.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana")).skills[0].mastery
    clock.advance(days=60)
    later = served.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"))
    assert later.as_of.ToDatetime() == (T0 + timedelta(days=60)).replace(tzinfo=None)
    assert later.skills[0].mastery < fresh
    assert later.skills[0].last_practiced_at.ToDatetime() == T0.replace(tzinfo=None)


def test_bulk_stream_reports_bad_records_and_stores_the_rest(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    batches = [
        pb.RecordAssessmentsRequest(results=[result("b0"), result("b1", score=2.0), result("b2")]),
        pb.RecordAssessmentsRequest(results=[result("b0"), result("b3", learner_id="ghost"), result("b4")]),
        pb.RecordAssessmentsRequest(results=[result("b2", score=0.5)]),
    ]
    summary = served.stub.RecordAssessments(iter(batches))
    assert summary.accepted == 3 and summary.duplicates == 1
    rejected = {r.index: r for r in summary.rejected}
    assert sorted(rejected) == [1, 4, 6]
    assert rejected[1].field == "result.score" and rejected[1].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert rejected[4].code == grpc.StatusCode.NOT_FOUND.value[0]
    assert rejected[6].code == grpc.StatusCode.ALREADY_EXISTS.value[0] and rejected[6].event_id == "b2"
    assert len(served.app.store.events_of("default", "ana")) == 3


def test_oversized_batch_is_rejected_whole(served: Served) -> None:
    load_tiny(served)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    limit = served.app.settings.max_batch
    big = pb.RecordAssessmentsRequest(results=[result(f"x{i}") for i in range(limit + 1)])
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.RecordAssessments(iter([big]))
    assert code_of(exc.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert served.app.store.count_events() == 0


def test_unknown_learner_profile_is_not_found(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        served.stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ghost"))
    assert code_of(exc.value) == grpc.StatusCode.NOT_FOUND

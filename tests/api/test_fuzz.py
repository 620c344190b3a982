"""Issue #22: a bounded, seeded fuzz of every RPC against a real server on SQLite and PostgreSQL.

Malformed values of every kind (ids of 0, 1, 129 and 20,000 characters or with a NUL byte, NaN and
infinite numbers, timestamps far in the past and future, duplicated ids in a batch, oversized
repeated fields, catalogs with cycles and dangling references) must be answered with a status that
says what the client did wrong: never INTERNAL, UNKNOWN or UNAVAILABLE (nor RESOURCE_EXHAUSTED or a
timeout: every request is far under the size limits), and never with more than 1 KB of error text.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from tests.api.conftest import Served
from tests.api.test_bad_input_status import error_text
from tests.api.test_core_rpcs import ana, load_tiny

CALLS_PER_RPC = 60
FORBIDDEN = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
KNOWN_IDS = ["ana", "welder", "marketer", "safety-101", "welding-101", "welding", "safety", "inspection-101"]
BAD_IDS = ["", "a", "a" * 129, "a" * 20_000, "ana\x00", "\x00", "bad id", "../etc", "学生", "a,b", "-lead"]
NUMBERS = [math.nan, math.inf, -math.inf, -1.0, -0.0, 0.0, 0.5, 1.0, 1.5, 1e308, -1e308, 5e-324]
INTS = [0, 1, -1, 7, 50, 51, 2**31 - 1, -(2**31), 10**6]
LONG = 2**63 - 1


class Fuzz:
    """Random requests from a fixed seed: the same run every time."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def id(self) -> str:
        pick = self.r.random()
        if pick < 0.4:
            return self.r.choice(KNOWN_IDS)
        if pick < 0.8:
            return self.r.choice(BAD_IDS)
        return f"f{self.r.randrange(10**6)}"

    def ids(self, most: int = 5) -> list[str]:
        chosen = [self.id() for _ in range(self.r.randrange(most + 1))]
        if chosen and self.r.random() < 0.3:
            chosen.append(chosen[0])  # a duplicate in the batch
        if self.r.random() < 0.1:
            chosen = [f"s{i}" for i in range(2000)]  # an oversized repeated field, of short ids
        return chosen

    def number(self) -> float:
        return self.r.choice(NUMBERS) if self.r.random() < 0.7 else self.r.uniform(-2, 2)

    def integer(self) -> int:
        return self.r.choice(INTS)

    def text(self) -> str:
        return self.r.choice(["", "x", "x" * 300, "x" * 20_000, "\x00", "焊接", "fr", "EN", "zh-CN", "??"])

    def timestamp(self) -> Timestamp | None:
        seconds = self.r.choice(
            [-62_135_596_801, -62_135_596_800, -(10**11), 0, 1_790_000_000, 10**11, 253_402_300_799,
             253_402_300_800, LONG, -LONG - 1]
        )  # fmt: skip
        nanos = self.r.choice([0, 999_999_999, 1_000_000_000, -1])
        return None if self.r.random() < 0.2 else Timestamp(seconds=seconds, nanos=nanos)

    def learner(self) -> pb.Learner:
        x = pb.Learner(
            learner_id=self.id(),
            cohort_id=self.id() if self.r.random() < 0.5 else "",
            country=self.r.choice(["", "RW", "rw", "Rwanda", "\x00\x00", "ZZ"]),
            languages=self.r.choice([[], ["en"], ["fr", "EN"], ["??"], ["en"] * 1000, [self.text()]]),
            program=self.text(),
            target_role_id=self.r.choice(["", "welder", "marketer", self.id()]),
            chinese_level=self.integer(),
            weekly_minutes=self.integer(),
        )
        for i in range(self.r.choice([0, 1, 3, 100])):
            x.attributes[self.text() + str(i)] = self.text()
        return x

    def result(self) -> pb.AssessmentResult:
        x = pb.AssessmentResult(
            event_id=self.id(),
            learner_id=self.r.choice(["ana", self.id()]),
            module_id=self.r.choice(["safety-101", "welding-101", self.id()]),
            item_id=self.id() if self.r.random() < 0.3 else "",
            skill_ids=self.ids(3) if self.r.random() < 0.4 else [],
            score=self.number(),
            duration_seconds=self.number() if self.r.random() < 0.5 else 0.0,
        )
        at = self.timestamp()
        if at is not None:
            x.occurred_at.CopyFrom(at)
        return x

    def catalog(self) -> pb.UpsertCatalogRequest:
        skills = [
            pb.Skill(skill_id=self.id(), names={"en": self.text()}, domain=self.text())
            for _ in range(self.r.randrange(4))
        ]
        modules = []
        for _ in range(self.r.randrange(5)):
            weights = [
                pb.SkillWeight(skill_id=self.r.choice(["safety", self.id()]), weight=self.number())
                for _ in range(self.r.randrange(3))
            ]
            modules.append(
                pb.Module(
                    module_id=self.r.choice(["m1", "m2", "m3", self.id()]),  # m1, m2, m3 prerequisites: cycles
                    titles={"en": self.text()},
                    skills=weights,
                    prerequisite_module_ids=self.r.choice([[], ["m1"], ["m2"], ["m3"], ["ghost"], self.ids(2)]),
                    languages=self.r.choice([[], ["en"], ["??"], ["en"] * 500]),
                    difficulty=self.number(),
                    estimated_minutes=self.integer(),
                    min_chinese_level=self.integer(),
                )
            )
        roles = []
        for _ in range(self.r.randrange(3)):
            need = pb.SkillRequirement(
                skill_id=self.r.choice(["safety", self.id()]), level=self.number(), weight=self.number()
            )
            roles.append(pb.TargetRole(role_id=self.id(), requirements=[need], shortage_index=self.number()))
        return pb.UpsertCatalogRequest(skills=skills, modules=modules, roles=roles, replace=self.r.random() < 0.2)


def check(call: Callable[[], Any]) -> Any:
    """The call's response, or None when it was refused with an allowed status and a short message."""
    refused: grpc.RpcError | None = None
    try:
        return call()
    except grpc.RpcError as exc:
        refused = exc
    assert refused.code() not in FORBIDDEN, f"{refused.code()}: {(refused.details() or '')[:300]}"
    assert error_text(refused) <= 1024
    return None


def drain_paths(stub: pb_grpc.LearningPathServiceStub, request: pb.GeneratePathsRequest) -> None:
    out = list(stub.GeneratePaths(request, timeout=30))
    for item in out:
        assert len(item.learner_id.encode()) + len(item.error.message.encode()) <= 1024


@pytest.mark.parametrize("seed", [22, 2022])
def test_every_rpc_answers_malformed_input_with_the_right_status(served: Served, seed: int) -> None:
    fuzz, stub = Fuzz(seed), served.stub
    load_tiny(served)
    stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    # training first, while the store holds too few events for a job to start
    for _ in range(CALLS_PER_RPC):
        check(lambda: stub.TrainModel(pb.TrainModelRequest(epochs=fuzz.integer(), seed=fuzz.integer()), timeout=30))
        check(lambda: stub.GetTrainingJob(pb.GetTrainingJobRequest(job_id=fuzz.id()), timeout=30))
        check(lambda: stub.ActivateModel(pb.ActivateModelRequest(version=fuzz.id()), timeout=30))
        check(lambda: stub.ListModels(pb.ListModelsRequest(), timeout=30))
    for _ in range(CALLS_PER_RPC):
        check(lambda: stub.UpsertCatalog(fuzz.catalog(), timeout=30))
        check(lambda: stub.GetCatalog(pb.GetCatalogRequest(), timeout=30))
    load_tiny(served)  # whatever the fuzz merged or replaced, plan against the known catalog again
    for _ in range(CALLS_PER_RPC):
        check(lambda: stub.UpsertLearner(pb.UpsertLearnerRequest(learner=fuzz.learner()), timeout=30))
        check(lambda: stub.GetLearner(pb.GetLearnerRequest(learner_id=fuzz.id()), timeout=30))
        check(lambda: stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id=fuzz.id()), timeout=30))
        check(lambda: stub.RecordAssessment(pb.RecordAssessmentRequest(result=fuzz.result()), timeout=30))
        batches = [pb.RecordAssessmentsRequest(results=[fuzz.result() for _ in range(fuzz.r.randrange(6))])
                   for _ in range(fuzz.r.randrange(1, 4))]  # fmt: skip
        summary = check(partial(stub.RecordAssessments, iter(batches), timeout=30))
        for rejected in summary.rejected if summary is not None else ():
            assert len(rejected.event_id.encode()) + len(rejected.reason.encode()) <= 1024
        request = pb.RecommendPathRequest(
            learner_id=fuzz.r.choice(["ana", fuzz.id()]),
            max_steps=fuzz.integer(),
            target_role_id=fuzz.r.choice(["", "welder", fuzz.id()]),
            languages=fuzz.r.choice([[], ["en"], ["??"], [fuzz.text()]]),
            time_budget_minutes=fuzz.integer(),
            exclude_module_ids=fuzz.ids(3),
            locale=fuzz.text(),
        )
        check(partial(stub.RecommendPath, request, timeout=30))
        learners = [fuzz.learner() for _ in range(fuzz.r.randrange(4))]
        paths = pb.GeneratePathsRequest(learners=learners, max_steps=fuzz.integer(), locale=fuzz.text(),
                                        persist=fuzz.r.random() < 0.3)  # fmt: skip
        check(partial(drain_paths, stub, paths))
        check(lambda: stub.DeleteLearner(pb.DeleteLearnerRequest(learner_id=fuzz.id()), timeout=30))
    # the oversized batches, once each
    limit = served.app.settings.max_batch
    huge = pb.RecordAssessmentsRequest(
        results=[
            pb.AssessmentResult(event_id=f"h{i}", learner_id="ana", module_id="safety-101") for i in range(limit + 1)
        ]
    )
    check(lambda: stub.RecordAssessments(iter([huge]), timeout=30))
    many = pb.GeneratePathsRequest(
        learners=[pb.Learner(learner_id="x")] * (served.app.settings.max_ids_per_request + 1)
    )
    check(partial(drain_paths, stub, many))
    check(partial(stub.GetLearner, pb.GetLearnerRequest(learner_id="ana"), timeout=30))

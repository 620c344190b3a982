"""A client that has only the .proto (stubs generated in a temporary folder, not the package's)
can register a learner, record assessments and read the profile."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.api.conftest import Served
from tests.api.test_core_rpcs import load_tiny

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"

CLIENT = textwrap.dedent(
    """
    import sys
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp
    from luban.path.v1 import learning_path_pb2 as pb, learning_path_pb2_grpc as rpc

    stub = rpc.LearningPathServiceStub(grpc.insecure_channel(sys.argv[1]))
    stub.UpsertLearner(pb.UpsertLearnerRequest(learner=pb.Learner(
        learner_id="kofi", country="RW", languages=["fr"], target_role_id="welder")))
    at = Timestamp(seconds=1788249600)  # 2026-09-01T08:00:00Z, the test clock's now
    for i, score in enumerate([1.0, 0.0, 1.0]):
        stub.RecordAssessment(pb.RecordAssessmentRequest(result=pb.AssessmentResult(
            event_id=f"k{i}", learner_id="kofi", module_id="safety-101", score=score, occurred_at=at)))
    profile = stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="kofi"))
    print(profile.skills[0].skill_id, profile.skills[0].attempts, round(profile.skills[0].mastery, 6))
    """
)


def test_client_generated_from_the_proto_alone(served: Served, tmp_path: Path) -> None:
    load_tiny(served)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", str(PROTO_ROOT / "luban/path/v1/learning_path.proto")],
        check=True,
    )  # fmt: skip
    (tmp_path / "client.py").write_text(CLIENT)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "client.py"), f"127.0.0.1:{served.running.port}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    skill, attempts, mastery = out.stdout.split()
    assert (skill, attempts) == ("safety", "3")
    profile = served.app.learners.profile("default", "kofi")
    assert float(mastery) == round(profile.skills[0].mastery, 6)

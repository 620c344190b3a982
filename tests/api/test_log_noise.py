"""Issue #22, defect 7: what a bad client sends is answered, and logged, as the client's mistake:
no ERROR and no traceback for malformed protobuf or an oversized client stream, and no log line
carries a megabyte argument whole."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.composition_root import configure_logging
from recommender.config import Settings
from recommender.service.app import build_app
from recommender.service.clock import ManualClock
from tests.api.conftest import Served, serving
from tests.api.test_core_rpcs import ana, load_tiny
from tests.conftest import make_settings

SERVICE = "/luban.path.v1.LearningPathService/"


def loud(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(
    ("method", "streaming"),
    [("GetLearner", False), ("RecordAssessments", True), ("GeneratePaths", False)],
)
def test_malformed_protobuf_is_invalid_argument_and_not_an_error_log(
    served: Served, caplog: pytest.LogCaptureFixture, method: str, streaming: bool
) -> None:
    caplog.set_level(logging.INFO)
    garbage = b"\xff\xff\xff\xff\x0f"
    if streaming:
        call = served.channel.stream_unary(SERVICE + method, None, None)
        with pytest.raises(grpc.RpcError) as exc:
            call(iter([garbage]), timeout=10)
    elif method == "GeneratePaths":
        call_stream = served.channel.unary_stream(SERVICE + method, None, None)
        with pytest.raises(grpc.RpcError) as exc:
            list(call_stream(garbage, timeout=10))
    else:
        call_unary = served.channel.unary_unary(SERVICE + method, None, None)
        with pytest.raises(grpc.RpcError) as exc:
            call_unary(garbage, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid" in (exc.value.details() or "")
    assert not loud(caplog), [r.getMessage()[:200] for r in loud(caplog)]


@pytest.fixture
def small_limit(tmp_path: Path, sqlite_url: str, clock: ManualClock) -> Iterator[Served]:
    app = build_app(make_settings(sqlite_url, tmp_path, max_message_bytes=64 * 1024), clock=clock)
    try:
        with serving(app) as server:
            yield server
    finally:
        app.close()


def test_an_oversized_client_stream_logs_no_traceback(small_limit: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    load_tiny(small_limit)
    small_limit.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    results = [pb.AssessmentResult(event_id=f"e{i}", learner_id="ana", module_id="safety-101", score=1.0)
               for i in range(3000)]  # fmt: skip
    fine = pb.RecordAssessmentsRequest(results=results[:10])
    big = pb.RecordAssessmentsRequest(results=results)
    assert big.ByteSize() > 64 * 1024
    with pytest.raises(grpc.RpcError) as exc:
        small_limit.stub.RecordAssessments(iter([fine, big]), timeout=10)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    small_limit.running.stop(5)  # the handler has finished and logged whatever it logs
    assert not loud(caplog), [r.getMessage()[:200] for r in loud(caplog)]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_megabyte_argument_is_not_logged_whole(log_format: str) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(Settings(store_url="sqlite://", log_format=log_format))
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        huge = "x" * 1_000_000
        logging.getLogger("recommender.test").warning("refused learner %s", huge)
        try:
            raise ValueError(huge)
        except ValueError:
            logging.getLogger("recommender.test").exception("failed on %s", huge)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert lines and all(len(line) <= 10_000 for line in lines)
    assert "refused learner xxx" in stream.getvalue()

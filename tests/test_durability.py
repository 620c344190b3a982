"""Faults against real server processes: SIGKILL mid-stream, SIGTERM drain, a store outage, and
two servers on one PostgreSQL database. Each server is two processes sharing its port
(LUBAN_PROCESSES=2), as on a two-core host: a signal to the server reaches every process."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recommender.api import mapping
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.kt.bkt import BKTModel, replay
from recommender.storage import open_store
from tests.conftest import T0, tiny_catalog, workers_of

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(store_url: str, tmp: Path, port: int, **overrides: str) -> dict[str, str]:
    """A server process's environment: two processes on `port`, unless `overrides` (LUBAN_* names) say else."""
    return {**os.environ, "LUBAN_STORE_URL": store_url, "LUBAN_ADDRESS": f"127.0.0.1:{port}",
            "LUBAN_MODELS_DIR": str(tmp / "models"), "LUBAN_LOG_FORMAT": "text", "LUBAN_GRACE_SECONDS": "60",
            "LUBAN_CATALOG_REFRESH_SECONDS": "0", "LUBAN_PROCESSES": "2", **overrides}  # fmt: skip


@contextmanager
def server_process(store_url: str, tmp: Path, port: int | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = port or free_port()
    env = server_env(store_url, tmp, port)
    log = (tmp / f"server-{port}.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "recommender", "serve"], env=env, stdout=log, stderr=log)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def stub_for(port: int) -> tuple[grpc.Channel, pb_grpc.LearningPathServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, pb_grpc.LearningPathServiceStub(channel)


def seed(stub: pb_grpc.LearningPathServiceStub, learners: list[str]) -> None:
    skills, modules, roles = tiny_catalog()
    stub.UpsertCatalog(pb.UpsertCatalogRequest(skills=mapping.skills_to_proto(skills),
                       modules=mapping.modules_to_proto(modules), roles=mapping.roles_to_proto(roles)))  # fmt: skip
    for lid in learners:
        stub.UpsertLearner(pb.UpsertLearnerRequest(learner=pb.Learner(learner_id=lid, languages=["en"])))


def assessment(eid: str, learner: str, i: int) -> pb.RecordAssessmentRequest:
    at = mapping.timestamp(T0 - timedelta(days=30) + timedelta(minutes=i))
    return pb.RecordAssessmentRequest(result=pb.AssessmentResult(
        event_id=eid, learner_id=learner, module_id=("safety-101", "welding-101")[i % 2], score=(i % 3) / 2,
        occurred_at=at))  # fmt: skip


def assert_profiles_replay(store_url: str, learners: list[str]) -> dict[str, list[str]]:
    store = open_store(store_url)
    try:
        stored = {}
        for lid in learners:
            events = store.events_of("default", lid)
            found = store.get_skill_states("default", lid)
            assert found is not None
            assert {s.skill_id: s for s in found[0]} == replay(BKTModel(), events), f"{lid}: profile != replay"
            stored[lid] = [e.event_id for e in events]
        return stored
    finally:
        store.close()


def test_sigkill_loses_no_acknowledged_event(tmp_path: Path, store_url: str) -> None:
    learners = ["k1", "k2"]
    acknowledged: list[str] = []
    with server_process(store_url, tmp_path) as (process, port):
        channel, stub = stub_for(port)
        seed(stub, learners)
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set():
                eid = f"ev-{i:05d}"
                try:
                    stub.RecordAssessment(assessment(eid, learners[i % 2], i), timeout=5)
                    acknowledged.append(eid)
                except grpc.RpcError:
                    return
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        while len(acknowledged) < 150:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        stop.set()
        thread.join()
        channel.close()
    stored = assert_profiles_replay(store_url, learners)
    every = [e for ids in stored.values() for e in ids]
    assert len(every) == len(set(every)), "each event stored exactly once"
    assert set(acknowledged) <= set(every), "every acknowledged event survived the kill"
    with server_process(store_url, tmp_path) as (_, port):
        channel, stub = stub_for(port)
        replayed = stub.RecordAssessment(assessment(acknowledged[-1], learners[(len(acknowledged) - 1) % 2],
                                                    len(acknowledged) - 1))  # fmt: skip
        assert replayed.duplicate, "a client retry after the crash is recognized"
        channel.close()


def test_sigterm_drains_in_flight_calls_then_exits(tmp_path: Path, sqlite_url: str) -> None:
    with server_process(sqlite_url, tmp_path) as (process, port):
        channel, stub = stub_for(port)
        seed(stub, [])
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status in (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        learners = [pb.Learner(learner_id=f"t{i}", languages=["en"], target_role_id="welder") for i in range(3000)]
        stream = stub.GeneratePaths(pb.GeneratePathsRequest(learners=learners), timeout=60)
        first = next(iter(stream))
        process.send_signal(signal.SIGTERM)
        statuses = []
        for message in watch:
            statuses.append(message.status)
            if message.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
        assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
        rest = list(stream)
        assert first.index == 0 and len(rest) == 2999, "the in-flight stream finished"
        # the grace period is 60 s: the open health Watch must not hold the shutdown that long
        assert process.wait(timeout=30) == 0
        assert list(watch) == [], "the health watch was ended with OK, not cut off"
        channel.close()


def holds_open(pid: int, path: Path) -> bool:
    """Whether the process has `path` open (a worker opening its store)."""
    with suppress(OSError):
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


@pytest.mark.parametrize(
    ("signum", "when"),
    [(signal.SIGTERM, "born"), (signal.SIGINT, "born"), (signal.SIGINT, "loading")],
    ids=["sigterm-as-the-workers-are-born", "ctrl-c-as-the-workers-are-born", "ctrl-c-while-they-load"],
)
def test_a_stop_while_the_workers_start_is_a_clean_exit(
    tmp_path: Path, sqlite_url: str, signum: signal.Signals, when: str
) -> None:
    """An orchestrator may stop a server that has not finished starting (SIGTERM to the
    supervisor), and a terminal's Ctrl-C reaches every process of the group (SIGINT to all): as
    soon as the workers exist, or once they have opened the store and load what they serve."""
    process = subprocess.Popen([sys.executable, "-m", "recommender", "serve"], stdout=subprocess.PIPE,
                               env=server_env(sqlite_url, tmp_path, free_port()), stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    try:
        deadline = time.monotonic() + 60

        def workers_there() -> bool:
            workers = workers_of(process.pid)
            return len(workers) == 2 and (when == "born" or all(holds_open(w, database) for w in workers))

        while not workers_there() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert workers_there(), "the supervisor started its workers"
        if signum == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signum)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if when == "born":  # the whole of a worker's start lay between the signal and a banner
        assert "Luban Path serving on" not in output, "the stop came while the workers started"
    assert process.returncode == 0, output
    assert "ERROR" not in output, output
    if when == "loading":  # a worker interrupted in the interpreter's own start may say so its way
        assert "Traceback" not in output, output


class Proxy:
    """A TCP proxy to PostgreSQL that can drop every connection and refuse new ones: an outage."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self._listener:
            self._listener.close()
        for s in self._sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets.clear()


def test_a_worker_lost_while_stopping_fails_the_exit_and_is_named(tmp_path: Path, sqlite_url: str) -> None:
    with server_process(sqlite_url, tmp_path) as (process, port):
        log_file = tmp_path / f"server-{port}.log"
        deadline = time.monotonic() + 60
        while "from 2 processes" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # every worker serving (one answering is enough for the channel to be ready)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGKILL)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 1
    log = log_file.read_text()
    named = re.findall(r"worker luban-worker-\d exited .*status -9", log)
    assert len(named) == 1, log


@pytest.mark.postgres
def test_store_outage_is_unavailable_and_the_service_recovers(tmp_path: Path, postgres_url: str) -> None:
    import sqlalchemy as sa

    url = sa.engine.make_url(postgres_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with server_process(proxied, tmp_path) as (_, port):
            channel, stub = stub_for(port)
            seed(stub, ["o1"])
            health = health_pb2_grpc.HealthStub(channel)
            stub.RecordAssessment(assessment("o-0", "o1", 0))
            proxy.stop()
            with pytest.raises(grpc.RpcError) as exc:
                stub.RecordAssessment(assessment("o-1", "o1", 1), timeout=20)
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, exc.value.details()
            deadline = time.monotonic() + 20
            while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.NOT_SERVING:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            proxy.start()
            deadline = time.monotonic() + 30
            while True:
                try:
                    recovered = stub.RecordAssessment(assessment("o-1", "o1", 1), timeout=10)
                    assert recovered.profile.learner_id == "o1"
                    break
                except grpc.RpcError as again:
                    code = again.code()
                if code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    pytest.fail(f"the service did not recover: {code}")
                time.sleep(0.2)
            while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            channel.close()
    finally:
        proxy.stop()


@pytest.mark.postgres
def test_two_servers_on_one_postgres_agree(tmp_path: Path, postgres_url: str) -> None:
    learners = ["p1", "p2"]
    with server_process(postgres_url, tmp_path) as (_, port_a), server_process(postgres_url, tmp_path) as (_, port_b):
        channel_a, a = stub_for(port_a)
        channel_b, b = stub_for(port_b)
        seed(a, learners)
        errors: list[BaseException] = []

        def write(stub: pb_grpc.LearningPathServiceStub, tag: str) -> None:
            try:
                for i in range(60):
                    stub.RecordAssessment(assessment(f"{tag}-{i}", learners[i % 2], i), timeout=10)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(s, f"{n}{k}")) for n, s in (("a", a), ("b", b)) for k in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:2]
        pa = a.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="p1"))
        pb_ = b.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="p1"))
        # both servers serve the same state (masteries differ only by forgetting between the two reads)
        assert [(s.skill_id, s.attempts) for s in pa.skills] == [(s.skill_id, s.attempts) for s in pb_.skills]
        assert [s.mastery for s in pa.skills] == pytest.approx([s.mastery for s in pb_.skills], abs=1e-6)
        channel_a.close()
        channel_b.close()
    stored = assert_profiles_replay(postgres_url, learners)
    assert sum(len(v) for v in stored.values()) == 240

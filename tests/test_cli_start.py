"""Issue #22, defect 6 (and the TLS line of defect 7): the command line says what is wrong in one
line instead of a traceback, opens the same store from any folder and says which, reports every
cohort row it does not plan, and has --version."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recommender.api.grpc_server import create_server
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.cli import main
from recommender.config import DATA_HOME, Settings
from recommender.listen import AddressInUse, ListenError
from recommender.service.app import App, build_app
from tests.api.test_hardening import openssl
from tests.conftest import make_settings
from tests.service.test_cohort_files import read_csv, store_args  # noqa: F401 - the fixture
from tests.test_durability import free_port, server_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize("command", ["serve", "run"])
def test_a_busy_port_is_one_line_naming_its_holder(
    tmp_path: Path, busy_port: int, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    code = main(["--store-url", url, "--address", f"127.0.0.1:{busy_port}", command])
    err = capsys.readouterr().err
    assert code == 1
    assert f"127.0.0.1:{busy_port} is already in use by pid {os.getpid()}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "s.db").exists(), "nothing loaded or trained before the port was known free"


def test_create_server_refuses_a_busy_port(app: App, busy_port: int) -> None:
    with pytest.raises(AddressInUse, match=f"by pid {os.getpid()}"):
        create_server(app, f"127.0.0.1:{busy_port}")


def test_a_tls_key_that_is_not_the_certificates_is_named(tmp_path: Path, sqlite_url: str) -> None:
    for name in ("one", "two"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                "-days", "1", "-subj", f"/CN={name}", cwd=tmp_path)  # fmt: skip
    settings = make_settings(
        sqlite_url, tmp_path, tls_cert_file=tmp_path / "one.pem", tls_key_file=tmp_path / "two.key"
    )
    app = build_app(settings)
    try:
        with pytest.raises(ListenError, match="not the certificate's private key") as exc:
            create_server(app, "127.0.0.1:0")
        assert "Failed to bind" not in str(exc.value)
    finally:
        app.close()


def test_the_default_store_does_not_depend_on_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LUBAN_STORE_URL", "LUBAN_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert DATA_HOME == ROOT, "run from a checkout, the project holds the store"
    assert settings.store_url == f"sqlite:///{ROOT / 'var' / 'luban.db'}"
    assert settings.models_dir == ROOT / "models"


def test_every_command_says_which_store_it_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["--store-url", url, "--models-dir", str(tmp_path / "m"), "models", "list"]) == 0
    assert f"store: {url}" in capsys.readouterr().err


def test_ctrl_c_in_a_command_is_one_line_and_the_shells_status(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "recommender", "--store-url", f"sqlite:///{tmp_path / 's.db'}", "--models-dir",
               str(tmp_path / "m"), "demo"]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        assert child.stderr is not None
        assert child.stderr.readline().startswith("store: "), "the demo world is loading"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGINT, "it ends by the signal, so a calling shell stops too"
    assert err.strip() == "interrupted"


def test_a_server_stopped_while_it_starts_exits_cleanly(tmp_path: Path) -> None:
    """Stopped once it has begun to open its store, a one-process server finishes starting, stops
    and exits 0 (the workers of several: tests/test_durability.py)."""
    database = tmp_path / "s.db"
    env = server_env(f"sqlite:///{database}", tmp_path, 0, LUBAN_PROCESSES="1")
    command = [sys.executable, "-m", "recommender", "serve"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        while not database.exists() and child.poll() is None:
            time.sleep(0.002)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert "Traceback" not in out and "stopped" in out


@pytest.mark.parametrize(
    ("command", "argument"),
    [
        (["paths", "--out", "paths.jsonl", "--cohort"], "--cohort"),
        (["import", "--events"], "--events"),
        (["train", "--events"], "--events"),
        (["catalog", "load"], "file"),
    ],
)
def test_an_input_file_that_is_not_there_is_one_line_before_the_store_opens(
    tmp_path: Path, command: list[str], argument: str, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "s.db"
    for missing, why in ((tmp_path / "nope.csv", "no such file"), (tmp_path, "a folder, not a file")):
        with pytest.raises(SystemExit) as exit_:
            main(["--store-url", f"sqlite:///{database}", *command, str(missing)])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: argument {argument}: {missing}: {why}")
    assert not database.exists()


@pytest.mark.slow
def test_run_loads_trains_and_serves_a_fresh_store_logging_as_configured(tmp_path: Path) -> None:
    """`make run`'s command end to end: the demo world loaded, a model trained and active, the
    server and dashboard up, a path for a demo learner, every log line in the configured format."""
    port, dashboard = free_port(), free_port()
    env = server_env(f"sqlite:///{tmp_path / 's.db'}", tmp_path, port, LUBAN_LOG_FORMAT="json",
                     LUBAN_DASHBOARD_ADDRESS=f"127.0.0.1:{dashboard}")  # fmt: skip
    command = [sys.executable, "-m", "recommender", "run"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            shown = "".join(iter(child.stdout.readline, "  Ctrl-C or SIGTERM stops it gracefully\n"))
            assert "2000 learners added" in shown and "active (AUC" in shown and f"127.0.0.1:{dashboard}" in shown
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                stub = pb_grpc.LearningPathServiceStub(channel)
                path = stub.RecommendPath(pb.RecommendPathRequest(learner_id="demo-0001"), timeout=30)
            assert path.steps and path.model_version, "a path from the model just trained"
        finally:
            child.send_signal(signal.SIGTERM)
            _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("store: ")
    assert all(json.loads(line)["level"] for line in lines[1:]), "one format, from loading to the last line"


def test_python_server_py_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(f"sqlite:///{tmp_path / 's.db'}", tmp_path, port, LUBAN_PROCESSES="1")
    with subprocess.Popen([sys.executable, str(ROOT / "server.py")], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as child:  # fmt: skip
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert health.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
        finally:
            child.send_signal(signal.SIGTERM)
            out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert f"Luban Path serving on 127.0.0.1:{port}" in out


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "recommender", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "recommender 0.1.0"


def test_duplicated_and_short_cohort_rows_are_reported(
    tmp_path: Path,
    store_args: list[str],  # noqa: F811 - the fixture
) -> None:
    cohort = tmp_path / "cohort.csv"
    with cohort.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["learner_id", "languages", "target_role_id", "chinese_level"])
        writer.writerow(["a-1", "en", "cnc-machine-operator", "0"])  # line 2
        writer.writerow(["a-2", "en"])  # line 3: short
        writer.writerow(["a-1", "fr", "cnc-machine-operator", "0"])  # line 4: a-1 again
        writer.writerow(["a-3", "en", "cnc-machine-operator", "0", "surplus"])  # line 5: long
    out = tmp_path / "paths.jsonl"
    assert main([*store_args, "paths", "--cohort", str(cohort), "--out", str(out)]) == 0
    planned = [line for line in out.read_text().splitlines() if line]
    assert len(planned) == 1 and '"a-1"' in planned[0]
    errors = {e["line"]: e for e in read_csv(Path(f"{out}.errors.csv"))}
    assert sorted(errors) == ["3", "4", "5"]
    assert "malformed row: 2 fields where the header has 4" in errors["3"]["reason"]
    assert errors["3"]["learner_id"] == "a-2"
    assert errors["4"]["field"] == "learner_id" and "already planned from line 2" in errors["4"]["reason"]
    assert "malformed row: 5 fields" in errors["5"]["reason"]

"""`recommender dashboard`: its own process over the same store, answering over HTTP, stopping on
SIGTERM; a taken dashboard address is one line naming it, before `run` loads or trains anything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from recommender.cli import main
from recommender.config import Settings
from recommender.service.app import build_app
from recommender.service.demo import load_demo

ROOT = Path(__file__).resolve().parents[2]


def test_the_dashboard_command_serves_the_store_until_sigterm(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'd.db'}", models_dir=tmp_path / "models")
    app = build_app(settings)
    load_demo(app, learners=12)
    app.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUBAN_")}
    with subprocess.Popen(
        [sys.executable, "-m", "recommender", "--store-url", settings.store_url, "--models-dir",
         str(settings.models_dir), "dashboard", "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as child:  # fmt: skip
        _check(child, port)


def _check(child: subprocess.Popen[str], port: int) -> None:
    try:
        assert child.stdout is not None
        banner = child.stdout.readline()
        assert f"dashboard on http://127.0.0.1:{port}/" in banner
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
                    page = response.read().decode()
                    break
            except OSError:
                assert time.monotonic() < deadline and child.poll() is None, "the dashboard did not answer"
                time.sleep(0.2)
        assert 'data-testid="auth-off"' in page and ">12<" in page
        assert "app;dur=" in response.headers["Server-Timing"]
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0


@pytest.mark.parametrize("command", ["dashboard", "run"])
def test_a_taken_dashboard_address_is_one_line(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = f"127.0.0.1:{holder.getsockname()[1]}"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = f"127.0.0.1:{probe.getsockname()[1]}"
        args = ["--store-url", f"sqlite:///{tmp_path / 's.db'}", "--address", free, command]
        code = main([*args, "--listen", busy] if command == "dashboard" else args) if command == "dashboard" else None
        if command == "run":
            os.environ["LUBAN_DASHBOARD_ADDRESS"] = busy
            try:
                code = main(args)
            finally:
                del os.environ["LUBAN_DASHBOARD_ADDRESS"]
    err = capsys.readouterr().err
    assert code == 1 and f"{busy} is already in use" in err and "LUBAN_DASHBOARD_ADDRESS" in err
    assert "Traceback" not in err
    assert not (tmp_path / "s.db").exists(), "nothing loaded before the address was known free"

"""The dashboard's cohort overview on a 10,000-learner cohort (`make bench`; alone:
`python -m bench.dashboard [--learners N]`).

A real `recommender dashboard` process over a store holding the demo world at that size with a
trained model; the figures are the server's own time per request (its Server-Timing header), not
the client's. Measured: the first build of the tenant's snapshot (every learner planned toward
readiness), overview requests on it (varied cohort, role and stall filters), the request right
after a learner's new result (that learner re-planned), and the priorities page.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 600) -> tuple[float, float, str]:
    """(server ms from Server-Timing, client seconds, body)."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read().decode()
        timing = response.headers.get("Server-Timing", "")
    found = re.search(r"app;dur=([0-9.]+)", timing)
    return float(found.group(1)) if found else float("nan"), time.perf_counter() - t0, body


def _cli(work: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [PY, "-m", "recommender", "--store-url", f"sqlite:///{work / 'dash.db'}", "--models-dir", str(work / "models"),
         *args],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - t0


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "max_ms": ordered[-1],
        "requests": len(ordered),
    }


def dashboard_bench(work: Path, learners: int = 10_000, repeats: int = 20) -> dict[str, Any]:
    result: dict[str, Any] = {"learners": learners}
    result["demo_seconds"] = _cli(work, "demo", "--learners", str(learners))
    result["train_seconds"] = _cli(work, "train", "--force")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "LUBAN_AUTH_TOKENS_FILE"},  # the demo's open dashboard
        "LUBAN_STORE_URL": f"sqlite:///{work / 'dash.db'}",
        "LUBAN_MODELS_DIR": str(work / "models"),
        "LUBAN_DASHBOARD_ADDRESS": f"127.0.0.1:{port}",
        "LUBAN_DASHBOARD_REFRESH_SECONDS": "0",  # every request checks the store for changes
    }
    server = subprocess.Popen(
        [PY, "-m", "recommender", "dashboard"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                first_ms, _, body = _get(f"{base}/")
                break
            except OSError:
                if time.perf_counter() - started > 600 or server.poll() is not None:
                    raise RuntimeError("the dashboard did not answer") from None
                time.sleep(0.2)
        result["first_answer_seconds"] = time.perf_counter() - started  # process start + snapshot build
        result["first_request_ms"] = first_ms
        print(f"dashboard bench: first answer {result['first_answer_seconds']:.1f} s", file=sys.stderr, flush=True)
        roles = re.findall(r'<option value="([a-z0-9-]+)" >', body)
        urls = ["/", "/?cohort=demo-2026", *(f"/?role={r}" for r in roles[:6]), "/?stalled_days=30"]
        timings = [_get(f"{base}{urls[i % len(urls)]}")[0] for i in range(repeats)]
        result["overview"] = _summary(timings)
        result["priorities"] = _summary([_get(f"{base}/priorities")[0] for _ in range(5)])
        result["after_a_new_result"] = _summary(_after_new_results(work, base))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return result


def _after_new_results(work: Path, base: str, times: int = 5) -> list[float]:
    """Record one result for a learner (another process: as the gRPC server would), then ask for the
    overview: that learner is re-planned in the request."""
    from recommender.config import Settings
    from recommender.domain.assessment import AssessmentEvent
    from recommender.service.app import build_app

    app = build_app(Settings(store_url=f"sqlite:///{work / 'dash.db'}", models_dir=work / "models"))
    try:
        learners = [x for _, (_, x) in zip(range(times), app.store.iter_learners("default"), strict=False)]
        module_id = app.catalogs.require().module_ids[0]
        out = []
        for i, learner in enumerate(learners):
            event = AssessmentEvent(
                event_id=f"bench-{time.time_ns()}-{i}", learner_id=learner.learner_id, module_id=module_id,
                score=0.9, occurred_at=app.clock() - timedelta(minutes=5),
            )  # fmt: skip
            app.learners.record("default", event)
            out.append(_get(f"{base}/")[0])
        return out
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="luban-dash-bench-") as work:
        print(json.dumps(dashboard_bench(Path(work), args.learners), indent=1))


if __name__ == "__main__":
    main()

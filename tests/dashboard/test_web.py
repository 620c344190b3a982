"""The dashboard over HTTP (Starlette's test client, the real app over a real SQLite store): sign-in,
bearer tokens, tenant isolation, roles, CSRF, CSV export, interface languages and right-to-left
learner content. The browser tests (test_browser.py) drive the same pages in chromium."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from recommender.config import Settings
from recommender.dashboard.web import create_dashboard
from recommender.service.app import build_app
from recommender.service.demo import load_demo
from tests.dashboard.world import ML_TOKEN, NORTH_COHORT, NORTH_TOKEN, SOUTH_COHORT, SOUTH_TOKEN, World, build_world

NORTH = {"Authorization": f"Bearer {NORTH_TOKEN}"}
SOUTH = {"Authorization": f"Bearer {SOUTH_TOKEN}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(tmp_path_factory.mktemp("dash"))
    yield built
    built.app.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_dashboard(world.app), follow_redirects=False) as c:
        yield c


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _sign_in(client: TestClient, token: str) -> None:
    page = client.get("/signin")
    r = client.post("/signin", data={"token": token, "csrf": _csrf(page.text), "next": "/"})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_pages_need_a_sign_in_and_a_wrong_token_is_refused(client: TestClient) -> None:
    r = client.get("/priorities?cohort=x")
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Fpriorities%3Fcohort%3Dx"
    page = client.get("/signin")
    r = client.post("/signin", data={"token": "not-a-token-at-all", "csrf": _csrf(page.text)})
    assert r.status_code == 401 and "not valid" in r.text
    assert client.get("/").status_code == 303
    assert client.get("/", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401


def test_session_cookie_is_signed_http_only_and_same_site(client: TestClient) -> None:
    page = client.get("/signin")
    r = client.post("/signin", data={"token": NORTH_TOKEN, "csrf": _csrf(page.text)})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert NORTH_TOKEN.lower() not in cookie  # the session keeps the token's hash only
    assert client.get("/").status_code == 200
    page = client.get("/signin")  # signing in drew a new session, with a new CSRF token
    r = client.post("/signin", data={"token": NORTH_TOKEN, "csrf": _csrf(page.text), "next": "//evil.example"})
    assert r.headers["location"] == "/"  # never an open redirect


def test_a_tenant_sees_only_its_own_learners(client: TestClient, world: World) -> None:
    south_learner = next(x for _, x in world.app.store.iter_learners("south"))
    north_learner = next(x for _, x in world.app.store.iter_learners("north"))
    assert client.get(f"/learners/{south_learner.learner_id}", headers=NORTH).status_code == 404
    assert client.get(f"/learners/{north_learner.learner_id}", headers=SOUTH).status_code == 404
    assert client.get(f"/learners/{south_learner.learner_id}", headers=SOUTH).status_code == 200
    north_pages = client.get("/", headers=NORTH).text + client.get("/priorities", headers=NORTH).text
    assert NORTH_COHORT in north_pages and SOUTH_COHORT not in north_pages and "south-" not in north_pages
    south_page = client.get("/", headers=SOUTH).text
    assert SOUTH_COHORT in south_page and NORTH_COHORT not in south_page


def test_roles_decide_the_pages(client: TestClient) -> None:
    assert client.get("/models", headers=NORTH).status_code == 200
    r = client.get("/models", headers=SOUTH)
    assert r.status_code == 403 and 'href="/models"' not in r.text  # nor is it offered
    page = client.get("/signin")
    r = client.post("/signin", data={"token": ML_TOKEN, "csrf": _csrf(page.text), "next": "/"})
    assert r.headers["location"] == "/models"  # an ML engineer lands on the page the token opens
    assert client.get("/").status_code == 403 and client.get("/models").status_code == 200


def test_activation_needs_the_csrf_token_and_rollback_restores(client: TestClient, world: World) -> None:
    registry = world.app.models
    active, other = world.north_versions
    assert registry.active("north").version == active  # type: ignore[union-attr]
    _sign_in(client, NORTH_TOKEN)
    confirm = client.get(f"/models/activate?version={other}")
    assert confirm.status_code == 200 and other in confirm.text
    r = client.post("/models/activate", data={"version": other, "csrf": "forged"})
    assert r.status_code == 403 and registry.active("north").version == active  # type: ignore[union-attr]
    r = client.post("/models/activate", data={"version": other, "csrf": _csrf(confirm.text)})
    assert r.status_code == 303 and registry.active("north").version == other  # type: ignore[union-attr]
    assert world.app.store.activation_history("north")[-1][0] == other
    # a script: bearer token, no cookie, no CSRF field
    client.cookies.clear()
    r = client.post("/models/rollback", headers=NORTH)
    assert r.status_code == 303 and registry.active("north").version == active  # type: ignore[union-attr]
    assert client.post("/models/activate", data={"version": "../x"}, headers=NORTH).status_code == 400
    assert client.get("/models/activate?version=nope", headers=NORTH).status_code == 404


def test_models_page_shows_the_evaluation_against_the_baselines(client: TestClient, world: World) -> None:
    page = client.get("/models", headers=NORTH).text
    for name in ("AUC", "RMSE", "ECE", "NDCG@10", "Luban Path", "bkt", "popularity"):
        assert name in page
    assert "<circle" in page  # the calibration plot's points
    assert world.north_versions[0] in page and world.north_versions[1] in page


def test_training_from_the_dashboard_is_a_job_with_progress(client: TestClient, world: World) -> None:
    r = client.post("/models/train", headers=NORTH)
    assert r.status_code == 303
    job = world.app.training.jobs("north")[0]
    deadline = time.monotonic() + 120
    while job.state in ("queued", "running"):
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.2)
        job = world.app.training.job(job.job_id, "north")  # as the store has it now
    assert job.state == "succeeded", job.message
    page = client.get("/models", headers=NORTH).text
    assert job.job_id in page and 'value="100"' in page  # its progress bar, full
    assert world.app.training.jobs("south") == []


def test_priorities_csv_ranks_what_the_page_shows(client: TestClient, world: World) -> None:
    r = client.get("/priorities.csv", headers=NORTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows, "the demo world has modules taught only in some languages"
    catalog = world.app.catalogs.require("north")
    firsts = [x.languages[0].split("-")[0] for _, x in world.app.store.iter_learners("north")]
    translations = [x for x in rows if x["kind"] == "translate"]
    counts = [int(x["learners"]) for x in translations]
    assert counts == sorted(counts, reverse=True)
    for row in translations:
        module = catalog.modules[row["module_id"]]
        assert row["language"] not in {lang.split("-")[0] for lang in module.languages} or row["language"] == "zh"
        assert 1 <= int(row["learners"]) <= firsts.count(row["language"])
    page = client.get("/priorities", headers=NORTH).text
    assert translations[0]["module_id"] in page


def test_interface_languages_and_right_to_left_learner_content(client: TestClient, world: World) -> None:
    assert 'lang="zh"' in client.get("/?lang=zh", headers=NORTH).text
    assert "学员群体概览" in client.get("/?lang=zh", headers=NORTH).text
    client.cookies.clear()  # the choice above is kept in the session; a new visitor's browser decides
    fr = client.get("/", headers={**NORTH, "Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}).text
    assert 'lang="fr"' in fr and "Priorités" in fr
    arabic = next(x for _, x in world.app.store.iter_learners("north") if x.languages[0].startswith("ar"))
    page = client.get(f"/learners/{arabic.learner_id}", headers=NORTH).text
    assert 'lang="ar" dir="rtl"' in page
    latin = next(x for _, x in world.app.store.iter_learners("north") if x.languages[0].startswith("en"))
    assert 'dir="rtl"' not in client.get(f"/learners/{latin.learner_id}", headers=NORTH).text


def test_bad_query_values_name_the_field(client: TestClient) -> None:
    r = client.get("/?stalled_days=-3", headers=NORTH)
    assert r.status_code == 400 and "stalled_days" in r.text


def test_with_authentication_off_every_page_says_it_serves_the_default_tenant(tmp_path: Path) -> None:
    app = build_app(Settings(store_url=f"sqlite:///{tmp_path / 'open.db'}", models_dir=tmp_path / "models"))
    try:
        load_demo(app, learners=15)
        learner = next(x for _, x in app.store.iter_learners("default"))
        with TestClient(create_dashboard(app), follow_redirects=False) as client:
            for url in ("/", "/priorities", "/models", f"/learners/{learner.learner_id}", "/nowhere-x"):
                r = client.get(url)
                if url != "/nowhere-x":
                    assert r.status_code == 200, url
                    assert 'data-testid="auth-off"' in r.text, url
            assert client.get("/signin").headers["location"] == "/"
            assert "15" in client.get("/").text
    finally:
        app.close()

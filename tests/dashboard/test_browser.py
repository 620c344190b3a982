"""The dashboard in a real browser: Debian's chromium, driven by Selenium through chromedriver,
against the real dashboard served by uvicorn on a loopback port. One browser for the module: sign
in with the keyboard, each view, a model activation, a switch to another tenant that shows nothing
of the first, and axe-core's accessibility check on every page.

Chromium is installed by `make browser` (which `make test` runs when it is missing); without it
these tests skip, and fail instead when LUBAN_REQUIRE_BROWSER=1 (CI). LUBAN_DASHBOARD_SCREENSHOTS=DIR
also saves a screenshot of each view there (the docs' images: docs/dashboard.md)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from recommender.dashboard.web import create_dashboard
from tests.dashboard.world import NORTH_COHORT, NORTH_TOKEN, SOUTH_COHORT, SOUTH_TOKEN, World, build_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
REQUIRED = os.environ.get("LUBAN_REQUIRE_BROWSER") == "1"
SCREENSHOTS = os.environ.get("LUBAN_DASHBOARD_SCREENSHOTS", "")
# the flags that keep chromium off the network (it would try to reach update and sync services)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
)  # fmt: skip

pytestmark = pytest.mark.slow


def _need(path: Path, what: str) -> None:
    if not path.exists():
        message = f"{what} is missing ({path}): `make browser` installs it"
        if REQUIRED:
            pytest.fail(f"LUBAN_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _need(CHROMIUM, "chromium")
    _need(CHROMEDRIVER, "chromedriver")
    _need(AXE, "axe-core (npm ci)")
    built = build_world(tmp_path_factory.mktemp("browser"))
    yield built
    built.app.close()


@pytest.fixture(scope="module")
def base_url(world: World) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_dashboard(world.app), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="luban-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _axe(driver: Any) -> None:
    """axe-core on the page: no serious or critical violation."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then("
        "  r => done(r.violations.map(v => ({"
        "    id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))),"
        "  e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));"
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{driver.current_url}: {bad}"


def _shot(driver: Any, name: str) -> None:
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), 2400)
    driver.set_window_size(1280, max(height, 700))
    driver.save_screenshot(str(folder / f"dashboard-{name}.png"))
    driver.set_window_size(1280, 1000)


def _focused(driver: Any) -> Any:
    return driver.switch_to.active_element


def _tab_to(driver: Any, predicate: Any, limit: int = 40) -> Any:
    """Press Tab until the focused element satisfies `predicate`: it is reachable by keyboard."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        element = _focused(driver)
        if predicate(element):
            return element
    raise AssertionError("not reachable with the Tab key")


def _sign_in(driver: Any, base_url: str, token: str) -> None:
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{base_url}/")
    assert "/signin" in driver.current_url
    field = _tab_to(driver, lambda e: e.get_attribute("id") == "token")
    field.send_keys(token, Keys.ENTER)
    _wait(driver, lambda d: d.find_element("tag name", "h1").text == "Cohort overview")


def _wait(driver: Any, condition: Any) -> None:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(d: Any) -> Any:
        try:
            return condition(d)
        except WebDriverException as exc:
            # Chrome may report an element whose page is being replaced as a node that no longer
            # belongs to the document instead of as stale: the same race, so look again
            if "does not belong to the document" in str(exc):
                return False
            raise

    # an element read while its page is being replaced is stale: look again, as for one not there yet
    WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,)).until(settled)


def test_sign_in_with_the_keyboard(browser: Any, base_url: str) -> None:
    browser.get(f"{base_url}/signin")
    _axe(browser)
    _shot(browser, "signin")
    skip = _tab_to(browser, lambda e: True, limit=1)
    assert skip.get_attribute("href").endswith("#main")  # the first stop skips the navigation
    _sign_in(browser, base_url, NORTH_TOKEN)
    assert browser.find_element("css selector", "[data-testid=tenant]").text == "north"


def test_cohort_overview(browser: Any, base_url: str, world: World) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(f"{base_url}/")
    Select(browser.find_element("id", "cohort")).select_by_value(NORTH_COHORT)
    role = Select(browser.find_element("id", "role"))
    chosen = str(role.options[1].get_attribute("value"))
    role.select_by_value(chosen)
    browser.find_element("css selector", ".filters button").click()
    _wait(browser, lambda d: f"role={chosen}" in d.current_url)
    expected = sum(1 for _, x in world.app.store.iter_learners("north") if x.target_role_id == chosen)
    assert browser.find_element("css selector", "[data-testid=learners]").text == str(expected)
    assert browser.find_elements("css selector", "svg rect.now")
    assert browser.find_elements("css selector", "[data-testid=heatmap] td")
    _axe(browser)
    browser.get(f"{base_url}/?cohort={NORTH_COHORT}&lang=zh")
    assert browser.find_element("tag name", "html").get_attribute("lang") == "zh"
    _axe(browser)
    _shot(browser, "overview-zh")
    browser.get(f"{base_url}/?cohort={NORTH_COHORT}&lang=en")
    _shot(browser, "overview")


def test_priorities(browser: Any, base_url: str) -> None:
    browser.get(f"{base_url}/")
    link = _tab_to(browser, lambda e: (e.get_attribute("href") or "").endswith("/priorities"))
    from selenium.webdriver.common.keys import Keys

    link.send_keys(Keys.ENTER)
    _wait(browser, lambda d: d.current_url.endswith("/priorities"))
    rows = browser.find_elements("css selector", "[data-testid=translations] tbody tr")
    assert rows and browser.find_element("css selector", "[data-testid=csv]").get_attribute("href").endswith(
        "/priorities.csv"
    )
    _axe(browser)
    _shot(browser, "priorities")


def test_learner_page(browser: Any, base_url: str, world: World) -> None:
    arabic = next(x for _, x in world.app.store.iter_learners("north") if x.languages[0].startswith("ar"))
    browser.get(f"{base_url}/learners/{arabic.learner_id}")
    path = browser.find_element("css selector", "[data-testid=path]")
    assert path.get_attribute("dir") == "rtl" and path.get_attribute("lang") == "ar"
    assert path.value_of_css_property("direction") == "rtl"
    _axe(browser)
    _shot(browser, "learner-rtl")
    browser.get(f"{base_url}/")
    browser.find_element("css selector", "[data-testid=stalled] a").click()
    _wait(browser, lambda d: "/learners/" in d.current_url)
    assert browser.find_elements("css selector", "svg circle")  # the results timeline
    assert browser.find_elements("css selector", ".path li")
    _axe(browser)
    _shot(browser, "learner")


def test_model_activation(browser: Any, base_url: str, world: World) -> None:
    from selenium.webdriver.common.keys import Keys

    active, other = world.north_versions
    browser.get(f"{base_url}/models")
    assert browser.find_element("css selector", "[data-testid=active]")
    _axe(browser)
    _shot(browser, "models")
    link = _tab_to(browser, lambda e: e.get_attribute("data-testid") == f"activate-{other}")
    link.send_keys(Keys.ENTER)
    _wait(browser, lambda d: "/models/activate" in d.current_url)
    _axe(browser)
    assert world.app.models.active("north").version == active  # type: ignore[union-attr]  # not before confirming
    _tab_to(browser, lambda e: e.get_attribute("data-testid") == "confirm").send_keys(Keys.ENTER)
    _wait(browser, lambda d: d.find_elements("css selector", "[data-testid=done]"))
    assert world.app.models.active("north").version == other  # type: ignore[union-attr]
    row = browser.find_element("css selector", "[data-testid=active]").find_element("xpath", "./ancestor::tr")
    assert other in row.text


def test_switching_tenant_shows_nothing_of_the_other(browser: Any, base_url: str, world: World) -> None:
    north_ids = [x.learner_id for _, x in world.app.store.iter_learners("north")]
    browser.find_element("css selector", ".signout button").click()
    _wait(browser, lambda d: "/signin" in d.current_url)
    _sign_in(browser, base_url, SOUTH_TOKEN)
    assert browser.find_element("css selector", "[data-testid=tenant]").text == "south"
    pages = []
    for url in ("/", "/priorities"):
        browser.get(f"{base_url}{url}")
        pages.append(browser.page_source)
    assert all(SOUTH_COHORT in p and NORTH_COHORT not in p for p in pages)
    assert not any(learner_id in p for p in pages for learner_id in north_ids)
    assert not browser.find_elements("css selector", 'a[href="/models"]')  # south has no ml role
    browser.get(f"{base_url}/learners/{north_ids[0]}")
    assert browser.find_element("tag name", "h1").text == "Not found"
    _axe(browser)

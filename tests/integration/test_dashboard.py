"""The dashboard in a real headless Chromium, on a live 5-node cluster.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them). Without them the test is skipped, saying so; with
``DTRIAD_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``) it fails instead. The
screenshot goes to ``test-artifacts/`` (``DTRIAD_ARTIFACTS`` to move it).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from dtriad.ops import cluster as local

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("DTRIAD_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "test-artifacts")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        why = ("needs Debian's chromium and chromium-driver "
               "(apt-get install chromium chromium-driver; .ci/run installs them)")
        if os.environ.get("DTRIAD_REQUIRE_CHROMIUM") == "1":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    # An explicit driver: Selenium Manager never tries to download one.
    service = Service(executable_path=DRIVER, log_output=str(tmp_path / "chromedriver.log"),
                      popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    group = service.process.pid  # chromedriver leads the group of every browser process
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            try:
                os.killpg(group, signal.SIGKILL)  # ours only: the group we started
            except ProcessLookupError:
                pass


@pytest.mark.timeout(300)
def test_the_page_shows_a_failed_node_and_the_new_epoch(cluster, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    config = cluster(nodes=5, replicas=1, down_after_ms=1000)
    browser.get(f"{config.nodes[0].http}/dashboard")
    browser.find_element(By.ID, "token").send_keys(config.viewer_token)
    browser.find_element(By.ID, "login").click()

    def ring_nodes(driver) -> str | None:
        found = driver.find_elements(By.CSS_SELECTOR, "#ring svg")
        return found[0].get_attribute("data-nodes") if found else None

    WebDriverWait(browser, 30).until(lambda d: ring_nodes(d) == "5")
    epoch = int(browser.find_element(By.ID, "epoch").text)
    victim = config.nodes[2].name

    def state(driver, name) -> str | None:
        found = driver.find_elements(By.CSS_SELECTOR, f'#nodes .node[data-name="{name}"]')
        return found[0].get_attribute("data-state") if found else None

    assert [state(browser, n.name) for n in config.nodes] == ["up"] * 5
    local.kill_node(config.directory, victim)
    # Sentinel's detection (1 s), the migration, the push, then the page's next poll.
    WebDriverWait(browser, 20, poll_frequency=0.2).until(lambda d: state(d, victim) == "down")
    WebDriverWait(browser, 30, poll_frequency=0.2).until(
        lambda d: int(d.find_element(By.ID, "epoch").text) > epoch)
    assert f">{victim}<" not in browser.page_source or state(browser, victim) == "down"
    assert ring_nodes(browser) in ("4", "5")  # drawn as down, or dropped from the ring
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-node-down.png"))
    page = browser.page_source
    for secret in (config.password, config.secret, config.viewer_token):
        assert secret not in page

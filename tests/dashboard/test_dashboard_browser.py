"""The dashboard in a real browser (Debian's headless Chromium) on the real test bed.

The seed example (``examples/centered_predict.py``) is deployed to h1 and h2 behind a
frontend on the bed, under a steady, bounded load. The browser opens ``/dashboard``, is refused
with a wrong token, signs in with the admin token and sees the seed model's replicas; then
version 2 is deployed and the page shows it current without being reloaded, and the version is
switched back and forth through the management API while the time from each switch to the page
showing it is measured (reported, not asserted beyond the issue's 2 s). Screenshots go to
``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import urllib.request

import browser
import centered_predict
import pytest
import yaml
from conftest import APP, HOSTS, MODEL, REPO
from selenium.webdriver.common.by import By

from clipper_deploy import Clipper
from clipper_deploy.orchestration.playbook import load_playbook
from clipper_deploy.testing.load import SteadyLoad

pytestmark = pytest.mark.bed

SWITCHES = 6
EXAMPLES = REPO / "examples"
CURRENT_CELL = f'#models tr[data-model="{MODEL}"] td.current'


def page_state(driver) -> dict:
    """What the page shows now: the model's current version, its replicas, the no-reload mark."""
    return driver.execute_script(
        """
        const cell = document.querySelector(arguments[0]);
        const rows = [...document.querySelectorAll('#hosts tr[data-replica]')];
        return {
          current: cell && cell.textContent,
          replicas: rows.map(r => [r.dataset.replica, r.dataset.version, r.dataset.state]),
          operations: !document.querySelector('#operations-section').hidden,
          ops: [...document.querySelectorAll('#operations .op')].map(o => [
            o.dataset.model, o.dataset.version, Number(o.dataset.done),
            Number(o.dataset.total), o.dataset.switched === 'true']),
          mark: window.__dashboardMark || null,
        };
        """,
        CURRENT_CELL,
    )


def wait_page(driver, predicate, timeout: float, what: str, every: float = 0.02) -> float:
    """Poll the page until ``predicate(page_state)``; returns the monotonic time it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page_state(driver)
        if predicate(state):
            return time.monotonic()
        time.sleep(every)
    raise AssertionError(f"the page did not show {what} within {timeout} s: {page_state(driver)}")


def current_version(clipper: Clipper) -> str | None:
    for m in clipper.admin.get_all_models(verbose=True):
        if m["model_name"] == MODEL and m["is_current_version"]:
            return str(m["model_version"])
    return None


@pytest.fixture(scope="module")
def seed_v1(clipper: Clipper):
    clipper.register_application(APP, "doubles", default_output="-1.0", slo_micros=1_000_000)
    clipper.deploy_predict_function(
        MODEL,
        1,
        centered_predict.make(),
        ["example"],
        "doubles",
        num_containers=len(HOSTS),
        mode="auto",
        sample_input=centered_predict.sample_inputs(),
    )
    clipper.link_model_to_app(APP, MODEL)
    url = f"{clipper.query.base_url}/{APP}/predict"
    query = {"input": [float(x) for x in centered_predict.sample_inputs(1)[0]]}
    with SteadyLoad(url, query, rate=10, max_seconds=400) as load:
        time.sleep(12)  # a bucket or two of traffic for the charts
        yield load


def page_sizes(clipper: Clipper, token: str, paths: list[str]) -> dict[str, int]:
    """Bytes of each file the page loaded (the HTML of the signed-in page included)."""
    sizes = {}
    for path in paths:
        req = urllib.request.Request(
            clipper.admin.base_url + path, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            sizes[path] = len(resp.read())
    return sizes


def admin_url(clipper: Clipper) -> str:
    return clipper.admin.base_url + "/dashboard"


def test_the_dashboard_in_a_browser(clipper: Clipper, seed_v1, driver, artifacts) -> None:
    print(f"\n{browser.chromium_version()}")
    token = clipper.admin.token
    url = admin_url(clipper)

    # The sign-in form, and a wrong token refused.
    driver.get(url)
    form = driver.find_element(By.ID, "login-form")
    assert form.get_attribute("method") == "post"
    driver.save_screenshot(str(artifacts / "01-sign-in.png"))
    driver.find_element(By.NAME, "token").send_keys(token[:-2] + "xx")
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    assert "not this frontend's admin token" in driver.find_element(By.ID, "login-error").text
    assert driver.get_cookies() == []
    refused = driver.execute_async_script(
        "fetch('/dashboard/api/state').then(r => arguments[0](r.status))"
    )
    assert refused == 401
    driver.save_screenshot(str(artifacts / "02-wrong-token.png"))

    # Signed in: the seed model's replicas on both hosts, current version 1, charts drawn.
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    (cookie,) = driver.get_cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["value"] != token

    def v1_everywhere(s: dict) -> bool:
        hosts = {rid.split("/")[0] for rid, v, state in s["replicas"] if v == "1"}
        return s["current"] == "1" and hosts == set(HOSTS)

    wait_page(driver, v1_everywhere, 10, "version 1's replicas on h1 and h2")
    assert driver.execute_script(
        "return document.querySelectorAll('#charts .card path.qps').length"
    ), "no queries/s line drawn"
    driver.save_screenshot(str(artifacts / "03-fleet-v1.png"))

    # Deploy version 2: the page shows it current without a reload.
    driver.execute_script("window.__dashboardMark = 'no reload';")
    switched: dict[str, float] = {}
    failures: list[BaseException] = []

    def deploy_v2() -> None:
        try:
            clipper.deploy_predict_function(
                MODEL,
                2,
                centered_predict.make(seed=1),
                ["example"],
                "doubles",
                num_containers=len(HOSTS),
                mode="auto",
                sample_input=centered_predict.sample_inputs(),
            )
        except BaseException as exc:
            failures.append(exc)

    def watch_switch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "at" not in switched:
            if current_version(clipper) == "2":
                switched["at"] = time.monotonic()
                return
            time.sleep(0.02)

    threads = [threading.Thread(target=f, daemon=True) for f in (deploy_v2, watch_switch)]
    for t in threads:
        t.start()
    saw_operation = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        s = page_state(driver)
        if s["operations"] and not saw_operation:
            saw_operation = True
            driver.save_screenshot(str(artifacts / "04-deploying.png"))
        if s["current"] == "2":
            shown_at = time.monotonic()
            break
        assert not failures, failures
        time.sleep(0.02)
    else:
        raise AssertionError(f"version 2 never shown current: {page_state(driver)}")
    for t in threads:
        t.join(300)
    assert not failures, failures
    assert "at" in switched
    deploy_delay = shown_at - switched["at"]
    assert page_state(driver)["mark"] == "no reload"
    wait_page(
        driver,
        lambda s: (
            {rid.split("/")[0] for rid, v, st in s["replicas"] if v == "2"} == set(HOSTS)
            and not s["operations"]
        ),
        20,
        "version 2's replicas on h1 and h2 and the deploy finished",
    )
    driver.save_screenshot(str(artifacts / "05-fleet-v2.png"))

    # Switches through the management API, each at a random moment of the page's 1 s polling
    # cycle (right after the page saw the last one would always measure a whole cycle): the
    # time until the page shows each one.
    delays = []
    rng = random.Random(14)
    for i in range(SWITCHES):
        target = "1" if i % 2 == 0 else "2"
        time.sleep(rng.uniform(0.0, 1.0))
        clipper.set_model_version(MODEL, target)
        acknowledged = time.monotonic()
        shown = wait_page(driver, lambda s, t=target: s["current"] == t, 10, f"version {target}")
        delays.append(shown - acknowledged)
    assert page_state(driver)["mark"] == "no reload"
    driver.save_screenshot(str(artifacts / "06-after-switches.png"))
    files = driver.execute_script(
        "return [...document.querySelectorAll('script[src], link[href]')]"
        ".map(e => new URL(e.src || e.href).pathname)"
    )
    sizes = page_sizes(clipper, token, ["/dashboard", *files])
    state_bytes = page_sizes(clipper, token, ["/dashboard/api/state"])["/dashboard/api/state"]
    print(f"deploy of version 2: page showed it {deploy_delay:.3f} s after the switch")
    print(
        f"{SWITCHES} switches: page showed them after "
        f"{', '.join(f'{d:.3f}' for d in delays)} s (median {statistics.median(delays):.3f} s)"
    )
    print(f"page size: {sum(sizes.values())} bytes {sizes}; one state document: {state_bytes}")
    # Each switch was shown without a reload (wait_page above); how fast is a figure printed
    # above (the page polls every second), not a timed assertion on a shared machine.
    assert len(sizes) == 4 and sum(sizes.values()) < 64 * 1024
    assert seed_v1.failed == []


def test_a_rollout_shows_its_progress_host_by_host(
    clipper: Clipper, seed_v1, driver, artifacts, tmp_path
) -> None:
    if driver.find_elements(By.ID, "login-form"):  # run alone: sign in first
        driver.find_element(By.NAME, "token").send_keys(clipper.admin.token)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    clipper.set_model_version(MODEL, "2")
    wait_page(driver, lambda s: s["current"] == "2", 10, "version 2 current")
    playbook = tmp_path / "rollout.yml"
    playbook.write_text(
        yaml.safe_dump(
            {
                "model": MODEL,
                "version": 3,
                "function": f"{EXAMPLES}/centered_predict.py:make()",
                "input_type": "doubles",
                "mode": "auto",
                "sample_input": [[2.5, 1.0, 3.2, 2.2]],
                "app": {"name": APP, "default_output": "-1.0", "slo_micros": 1_000_000},
                "replicas": len(HOSTS),
                "hosts": "model_hosts",
                "smoke": [{"input": [2.5, 1.0, 3.2, 2.2]}],
                "serial": 1,
                "max_fail_percentage": 0,
            }
        )
    )
    failures: list[BaseException] = []

    def roll() -> None:
        try:
            clipper.rollout_playbook(load_playbook(playbook), 3)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=roll, daemon=True)
    thread.start()
    seen: list[tuple] = []
    shot = False
    deadline = time.monotonic() + 300
    while thread.is_alive() and time.monotonic() < deadline:
        for op in page_state(driver)["ops"]:
            if op[0] == MODEL and (not seen or seen[-1] != tuple(op)):
                seen.append(tuple(op))
                if not shot and 0 < op[2] < op[3]:
                    shot = True
                    driver.save_screenshot(str(artifacts / "07-rollout-halfway.png"))
        time.sleep(0.05)
    thread.join(10)
    assert not failures, failures
    print(f"rollout progress as the page showed it (model, version, done, total, switched): {seen}")
    assert (MODEL, "3", 0, len(HOSTS), False) in seen  # taken, nothing moved yet
    assert any(op[1] == "3" and 0 < op[2] < op[3] for op in seen)  # one host done, one to go
    wait_page(
        driver,
        lambda s: s["current"] == "3" and not s["operations"],
        10,
        "version 3 current and the rollout ended",
    )
    driver.save_screenshot(str(artifacts / "08-after-rollout.png"))

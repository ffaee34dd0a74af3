"""The issue's browser scenarios in Debian's headless Chromium: each checks what the
page shows and what Redis holds. (The calls of scenarios 1 and 3 are in
tests/e2e/test_pages_calls.py, on the test PBX.)"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from tests.harness import chrome
from tests.harness.chrome import by, log_in, submit_forwarding, wait_for
from tests.harness.procs import free_port
from tests.harness.web import WebServer
from tests.web.conftest import ADMIN, PASSWORD
from tests.web.pages.conftest import EMPLOYEE

pytestmark = pytest.mark.skipif(bool(chrome.ensure_browser()), reason="no Chromium")
EXT = "callroute:ext:"


@pytest.fixture
def browsers(browser) -> Iterator[Callable[..., object]]:
    """Fresh Chromium sessions on the office of the `browser` fixture."""
    from selenium.webdriver.remote.webdriver import WebDriver

    with ExitStack() as made:

        def make(lang: str = "fr-FR", size: tuple[int, int] = chrome.DESKTOP) -> WebDriver:
            return made.enter_context(chrome.new_driver(lang, size))

        yield make


def test_1_admin_turns_forwarding_on_with_company_number_and_keypress(
        browsers, web_server: WebServer, redis_client: redis.Redis):
    driver = browsers("fr-FR")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    wait_for(driver, "#row-1001 a.button").click()
    assert driver.find_element(*by(".tabs [aria-current=page]")).text == "Renvoi automatique"
    submit_forwarding(driver, "06 12 34 56 78", caller_id="company", keypress=True)
    wait_for(driver, "p.saved")
    assert driver.find_element(*by("#target")).get_attribute("value") == "06 12 34 56 78"
    assert driver.find_element(*by("#summary .lamp")).text == "Activé → 06 12 34 56 78"
    behaviour = driver.find_element(*by("#behaviour")).text
    assert behaviour == ("Les appels sonnent uniquement sur le 06 12 34 56 78 (touche 1 "
                         "pour répondre), en affichant le 01 40 00 00 00 ; les appels sans "
                         "réponse vont sur la messagerie 1001@default.")
    stored = redis_client.hgetall(f"{EXT}1001")
    assert stored["forward_target"] == "+33612345678" and stored["forward_enabled"] == "1"
    assert stored["forward_caller_id"] == "company"
    assert stored["forward_require_keypress"] == "1"


def test_2_an_international_number_is_refused_beside_the_field(
        browsers, web_server: WebServer, snapshot):
    driver = browsers("fr-FR")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    driver.get(f"{web_server.url}/extensions/1001")
    before = snapshot()
    submit_forwarding(driver, "+32 470 12 34 56", caller_id="company")
    error = wait_for(driver, "#target-error")
    assert error.get_attribute("data-code") == "international"
    assert error.text.startswith("Ce numéro est à l'étranger")
    target = driver.find_element(*by("#target"))
    assert target.get_attribute("value") == "+32 470 12 34 56"
    assert target.get_attribute("aria-describedby").split()[-1] == "target-error"
    assert driver.find_element(*by("#enabled")).is_selected()
    assert {k: v[1] for k, v in snapshot().items()} == {k: v[1] for k, v in before.items()}


def test_3_an_external_phone_added_then_removed_after_confirmation(
        browsers, web_server: WebServer, redis_client: redis.Redis):
    driver = browsers("fr-FR")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    driver.get(f"{web_server.url}/extensions/1001")
    driver.find_element(*by(".tabs a[href$='tab=devices']")).click()
    assert driver.find_element(*by(".tabs [aria-current=page]")).text == "Dispositifs"
    driver.find_element(*by("#add-device summary")).click()
    driver.find_element(*by("#number")).send_keys("07 81 22 33 44")
    driver.find_element(*by("#add-device button[type=submit]")).click()
    wait_for(driver, "p.saved")
    assert driver.find_element(*by(".device h3")).text == "07 81 22 33 44"
    assert "+33781223344" in redis_client.hget(f"{EXT}1001", "external_devices")
    driver.find_element(*by(".device a.danger")).click()
    confirm = wait_for(driver, "form.confirm")
    assert "07 81 22 33 44" in confirm.text
    assert "+33781223344" in redis_client.hget(f"{EXT}1001", "external_devices")
    confirm.find_element(*by("button.danger")).click()
    wait_for(driver, "p.saved")
    assert driver.find_elements(*by(".device")) == []
    assert "+33781223344" not in (redis_client.hget(f"{EXT}1001", "external_devices") or "")


def test_4_an_employee_sees_only_their_extension(browsers, web_server: WebServer,
                                                 redis_client: redis.Redis):
    driver = browsers("en-US")
    log_in(driver, web_server.url, EMPLOYEE, PASSWORD)
    wait_for(driver, "#enabled")
    assert driver.current_url == f"{web_server.url}/extensions/1002"
    links = [a.get_attribute("href") for a in driver.find_elements(*by("header nav a"))]
    assert links == [f"{web_server.url}/extensions/1002", f"{web_server.url}/audit"]
    assert driver.find_elements(*by("input[name=caller_id]")) == []
    assert driver.find_element(*by("label[for=require_keypress]")).text == \
        "Require a keypress to answer"
    submit_forwarding(driver, "0612345678")
    wait_for(driver, "p.saved")
    assert redis_client.hget(f"{EXT}1002", "forward_enabled") == "1"
    assert redis_client.xrevrange("callroute:audit", count=1)[0][1]["actor"] == "web:max"
    driver.get(f"{web_server.url}/extensions/1001")
    assert driver.find_element(*by("h1")).text == "Not allowed"
    assert "PJSIP/1001" not in driver.page_source
    assert redis_client.hget(f"{EXT}1001", "forward_enabled") == "0"


class _EvilSite(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: object) -> None:
        return


def test_5_posts_without_the_token_or_from_another_site_are_refused(
        browsers, web_server: WebServer, snapshot):
    driver = browsers("en-US")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    driver.get(f"{web_server.url}/extensions/1001")
    token = driver.find_element(*by("input[name=csrf]")).get_attribute("value")
    before = snapshot()
    status = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/extensions/1001/forwarding', {method: 'POST', headers: {'Content-Type':
              'application/x-www-form-urlencoded'}, body: 'enabled=on&target=0612345678'})
          .then(r => done(r.status));""")
    assert status == 403
    # Another site's page posts the form, even with the right token: refused.
    port = free_port()
    _EvilSite.page = (
        f"<form id=f method=post action='{web_server.url}/extensions/1001/forwarding'>"
        f"<input name=csrf value='{token}'><input name=enabled value=on>"
        "<input name=target value=0612345678></form>"
        "<script>document.getElementById('f').submit()</script>").encode()
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", port), _EvilSite)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        driver.get(f"http://localhost:{port}/")
        wait_for(driver, "h1")
        assert driver.current_url.startswith(web_server.url)
        assert driver.find_element(*by("h1")).text == "Not allowed"
    finally:
        evil.shutdown()
        evil.server_close()
    assert {k: v[1] for k, v in snapshot().items()} == {k: v[1] for k, v in before.items()}


def test_6_a_script_in_the_company_name_shows_as_text(browsers, web_server: WebServer,
                                                      redis_client: redis.Redis):
    from selenium.common.exceptions import NoAlertPresentException

    driver = browsers("fr-FR")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    driver.get(f"{web_server.url}/company")
    name = driver.find_element(*by("#name"))
    name.clear()
    name.send_keys("<script>alert(1)</script>")
    driver.find_element(*by("form[action='/company'] button[type=submit]")).click()
    wait_for(driver, "p.saved")
    assert driver.find_element(*by("#company-name")).text == "<script>alert(1)</script>"
    assert redis_client.hget("callroute:company", "name") == "<script>alert(1)</script>"
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    driver.get(f"{web_server.url}/audit")
    assert "<script>alert(1)</script>" in driver.find_element(*by("table")).text


def test_7_the_lamp_follows_a_cli_change_within_2_s_without_a_reload(
        browsers, web_server: WebServer, redis_client: redis.Redis):
    subprocess.run([str(Path(sys.executable).parent / "callroute"), "forward", "on", "1001",
                    "0612345678"], env=web_server.env, check=True, capture_output=True)
    driver = browsers("fr-FR")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    lamp = wait_for(driver, "#row-1001 .lamp")
    assert lamp.text == "Activé → 06 12 34 56 78"
    driver.execute_script("window.notReloaded = true;")
    time.sleep(0.5)  # the page's event stream is open
    subprocess.run([str(Path(sys.executable).parent / "callroute"), "forward", "off", "1001"],
                   env=web_server.env, check=True, capture_output=True)
    changed = time.monotonic()
    wait_for(driver, "#row-1001 .lamp[data-forwarding=off]", timeout=2.0)
    assert time.monotonic() - changed <= 2.0
    assert driver.find_element(*by("#row-1001 .lamp")).text == "Désactivé"
    assert driver.execute_script("return window.notReloaded === true;")
    assert redis_client.hget(f"{EXT}1001", "forward_enabled") == "0"


def test_7b_an_open_extension_page_follows_a_change_elsewhere_within_2_s(
        browsers, web_server: WebServer):
    driver = browsers("en-US")
    log_in(driver, web_server.url, EMPLOYEE, PASSWORD)
    assert wait_for(driver, "#summary .lamp").text == "Off"
    driver.execute_script("window.notReloaded = true;")
    time.sleep(0.5)
    subprocess.run([str(Path(sys.executable).parent / "callroute"), "forward", "on", "1002",
                    "0612345678"], env=web_server.env, check=True, capture_output=True)
    changed = time.monotonic()
    wait_for(driver, "#summary .lamp[data-forwarding=on]", timeout=2.0)
    assert time.monotonic() - changed <= 2.0
    assert driver.find_element(*by("#summary .lamp")).text == "On → 06 12 34 56 78"
    assert driver.find_element(*by("#behaviour")).text.startswith(
        "Calls ring only 06 12 34 56 78")
    assert driver.execute_script("return window.notReloaded === true;")


def test_8_ten_wrong_passwords_then_the_right_one_is_refused(
        browsers, web_server: WebServer, redis_client: redis.Redis):
    driver = browsers("fr-FR")
    for _ in range(10):
        log_in(driver, web_server.url, ADMIN, "not-the-password")
        message = wait_for(driver, "#login-error").text
    assert message.startswith("Trop de tentatives")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    assert wait_for(driver, "#login-error").text.startswith("Trop de tentatives")
    assert driver.get_cookie("callroute_session") is None
    assert redis_client.keys("callroute:login-failures:*")
    assert not any(redis_client.hget(key, "kind") == "session"
                   for key in redis_client.keys("callroute:token:*"))


def test_9_keyboard_only(browsers, web_server: WebServer, redis_client: redis.Redis):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = browsers("fr-FR")
    driver.get(f"{web_server.url}/login")
    keys = ActionChains(driver)

    def tab_to(check: str, limit: int = 60) -> None:
        for _ in range(limit):
            if driver.execute_script(f"return {check};"):
                return
            ActionChains(driver).send_keys(Keys.TAB).perform()
        raise AssertionError(f"never reached {check} with the Tab key")

    keys.send_keys(ADMIN, Keys.TAB, PASSWORD, Keys.ENTER).perform()  # username has focus
    wait_for(driver, "#row-1001")
    tab_to("document.activeElement.getAttribute('href') === '/extensions/1001'")
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait_for(driver, "#enabled")
    tab_to("document.activeElement.id === 'enabled'")
    ActionChains(driver).send_keys(Keys.SPACE, Keys.TAB, "06 12 34 56 78").perform()
    tab_to("document.activeElement.type === 'submit' && "
           "document.activeElement.form.action.endsWith('/forwarding')")
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait_for(driver, "p.saved")
    assert redis_client.hget(f"{EXT}1001", "forward_target") == "+33612345678"
    assert redis_client.hget(f"{EXT}1001", "forward_enabled") == "1"


PAGES = [
    ("extensions", "/extensions"),
    ("extension-forwarding", "/extensions/1001"),
    ("extension-devices", "/extensions/1001?tab=devices"),
    ("extension-devices-remove", "/extensions/1001/devices/remove?number=%2B33698765432"),
    ("extension-voicemail", "/extensions/1001?tab=voicemail"),
    ("company", "/company"),
    ("users", "/users"),
    ("audit", "/audit"),
]


@pytest.mark.parametrize("size", [chrome.DESKTOP, chrome.PHONE], ids=["desktop", "375px"])
def test_screenshots_of_every_page_in_french_without_sideways_scrolling(
        browsers, web_server: WebServer, size: tuple[int, int]):
    """Every page, in French, as PNG artifacts; at 375 px nothing is wider than the
    screen (a phone never has to scroll sideways)."""
    shots = chrome.artifacts_dir()
    suffix = "desktop" if size == chrome.DESKTOP else "375"
    cli = str(Path(sys.executable).parent / "callroute")
    for args in (("device", "add", "1001", "0698765432"),
                 ("forward", "on", "1002", "0612345678", "--when", "busy,noanswer")):
        subprocess.run([cli, *args], env=web_server.env, check=True, capture_output=True)
    driver = browsers("fr-FR", size)

    def shoot(name: str) -> None:
        width = driver.execute_script("return document.documentElement.scrollWidth;")
        viewport = driver.execute_script("return window.innerWidth;")
        assert width <= viewport, (name, width, viewport)
        driver.save_screenshot(str(shots / f"{name}-fr-{suffix}.png"))

    driver.get(f"{web_server.url}/login")
    shoot("login")
    log_in(driver, web_server.url, ADMIN, PASSWORD)
    wait_for(driver, "#row-1001")
    for name, path in PAGES:
        driver.get(web_server.url + path)
        wait_for(driver, "main h1")
        shoot(name)
    driver.get(f"{web_server.url}/extensions/1001")
    submit_forwarding(driver, "+32 470 12 34 56")
    wait_for(driver, "#target-error")
    shoot("extension-forwarding-error")
    other = browsers("fr-FR", size)
    log_in(other, web_server.url, EMPLOYEE, PASSWORD)
    wait_for(other, "#enabled")
    driver, other = other, driver
    shoot("employee")
    driver.get(f"{web_server.url}/extensions/1001")
    shoot("forbidden")
    assert len(list(shots.glob(f"*-fr-{suffix}.png"))) >= 12

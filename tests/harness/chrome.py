"""Debian's headless Chromium driven by Selenium, for the page tests.

Chromium and ChromeDriver come from Debian (`chromium`, `chromium-driver`: one build,
so they always match), installed here like scripts/bootstrap installs the host packages.
Nothing ever downloads a browser: SE_OFFLINE keeps Selenium Manager offline, and the
driver and binary paths are given explicitly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PACKAGES = ("chromium", "chromium-driver")
ROOT = Path(__file__).resolve().parents[2]
DESKTOP, PHONE = (1280, 900), (375, 812)
MIN_WINDOW = 500


def ensure_browser() -> str:
    """"" when Chromium and its driver are there (installing them as root if not), else
    why they can't be (a reason to skip)."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"needs the Debian packages {' '.join(PACKAGES)} (apt-get, as root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return ""


@contextmanager
def new_driver(lang: str = "fr-FR", size: tuple[int, int] = DESKTOP) -> Iterator[Any]:
    """A fresh headless Chromium (its own profile: no cookie shared between drivers),
    quit afterwards with its files: Chromium leaves a singleton-socket directory in
    $TMPDIR for every run, so it gets a temporary directory of its own, removed here."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--lang={lang}", f"--window-size={size[0]},{size[1]}",
                "--disable-features=Translate,MediaRouter", "--no-first-run"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    with tempfile.TemporaryDirectory(prefix="callroute-chromium-") as tmp:
        service = Service(CHROMEDRIVER, env={**os.environ, "TMPDIR": tmp})
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.set_page_load_timeout(20)
            if size[0] < MIN_WINDOW:
                # A headless window is at least 500 px wide: emulate the phone's screen.
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                    "width": size[0], "height": size[1], "deviceScaleFactor": 1,
                    "mobile": True})
            yield driver
        finally:
            driver.quit()


def artifacts_dir() -> Path:
    """Where screenshots go: $CALLROUTE_ARTIFACTS_DIR, else .cache/artifacts (ignored)."""
    base = Path(os.environ.get("CALLROUTE_ARTIFACTS_DIR") or ROOT / ".cache" / "artifacts")
    path = base / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def by(css: str):
    from selenium.webdriver.common.by import By

    return (By.CSS_SELECTOR, css)


def wait_for(driver, css: str, timeout: float = 10.0):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located(by(css)))


def log_in(driver, base: str, name: str, password: str) -> None:
    driver.get(f"{base}/login")
    driver.find_element(*by("#username")).send_keys(name)
    driver.find_element(*by("#password")).send_keys(password)
    button = driver.find_element(*by("form[action='/login'] button"))
    button.click()
    # click() does not wait for the answer: without this, the next driver.get() can leave
    # before the session cookie arrives and land on /login again.
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda _: _left_the_page(button))


def submit_forwarding(driver, target: str, *, caller_id: str | None = None,
                      keypress: bool = False) -> None:
    """On an extension's Forwarding tab: turn forwarding on to `target` (with the caller
    ID choice `caller_id`, which only an admin sees) and send the form; the page answers
    with p.saved or an error beside the field."""
    driver.find_element(*by("#enabled")).click()
    driver.find_element(*by("#target")).send_keys(target)
    if caller_id:
        driver.find_element(*by(f"#caller_id-{caller_id}")).click()
    if keypress:
        driver.find_element(*by("#require_keypress")).click()
    driver.find_element(*by("form[action$='/forwarding'] button[type=submit]")).click()


def _left_the_page(element) -> bool:
    """Whether `element`'s document has been replaced (a form post answered).

    Selenium's staleness_of() knows only "stale element reference"; while the new page
    replaces the old one, ChromeDriver may answer "Node with given id does not belong
    to the document" instead, which means the same.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in (exc.msg or ""):
            return True
        raise
    return False

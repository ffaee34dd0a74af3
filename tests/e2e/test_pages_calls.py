"""The Office Manager pages, then real calls: what an admin sets in the browser is what
the next call on the test PBX does (the issue's scenarios 1 and 3, calls included)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agi.accounts import Accounts
from agi.admin import Actor
from agi.config import load
from agi.store import AdminStore
from tests.harness import chrome
from tests.harness.calls import COMPANY_NUMBER, carrier, desk
from tests.harness.chrome import by, log_in, submit_forwarding, wait_for
from tests.harness.pbx import TestPBX
from tests.harness.web import WebServer

# What the pages write is what the agent reads, whichever way Asterisk reaches it.
pytestmark = [pytest.mark.skipif(bool(chrome.ensure_browser()), reason="no Chromium"),
              pytest.mark.one_agi_mode]
ADMIN, PASSWORD = "ada", "correct-horse-battery"
TARGET, MOBILE = "+33612345678", "+33781223344"


@pytest.fixture
def office_manager(pbx: TestPBX, tmp_path: Path) -> Iterator[str]:
    """callroute-web on the PBX's Redis, with an admin account; its URL."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **pbx.callroute_env(),
           "CALLROUTE_CONFIG": os.devnull}
    store = AdminStore(load(env))
    try:
        Accounts(store).add_user(ADMIN, "admin", [], PASSWORD, actor=Actor("cli:test"))
    finally:
        store.close()
    with WebServer(env, tmp_path / "callroute-web.log") as server:
        yield server.url


@pytest.fixture
def driver() -> Iterator[object]:
    with chrome.new_driver("fr-FR") as browser:
        yield browser


def test_forwarding_set_in_the_page_rings_only_the_carrier_with_the_company_number(
        office_manager, driver, store: redis.Redis, call):
    log_in(driver, office_manager, ADMIN, PASSWORD)
    wait_for(driver, "#row-1001 a.button").click()
    submit_forwarding(driver, "06 12 34 56 78", caller_id="company", keypress=True)
    wait_for(driver, "p.saved")
    assert driver.find_element(*by("#target")).get_attribute("value") == "06 12 34 56 78"
    assert store.hget("callroute:ext:1001", "forward_target") == TARGET
    result = call("1001", [desk("1001"), carrier("uas_answer_press", digit="1",
                                                 press_after_ms="1500")])
    assert result.carrier_numbers() == [TARGET], result.describe()
    assert not result.rang("desk 1001"), result.describe()
    assert result.caller_id_at("carrier") == COMPANY_NUMBER, result.describe()
    assert result.connected_to("carrier"), result.describe()


def test_an_external_phone_added_in_the_page_rings_with_the_desk_then_not_once_removed(
        office_manager, driver, store: redis.Redis, call):
    log_in(driver, office_manager, ADMIN, PASSWORD)
    driver.get(f"{office_manager}/extensions/1001?tab=devices")
    driver.find_element(*by("#add-device summary")).click()
    driver.find_element(*by("#number")).send_keys("07 81 22 33 44")
    driver.find_element(*by("#add-device button[type=submit]")).click()
    wait_for(driver, "p.saved")
    assert MOBILE in store.hget("callroute:ext:1001", "external_devices")
    both = call("1001", [desk("1001", answer_delay_ms="1500"),
                         carrier("uas_ring_noanswer")])
    assert both.rang("desk 1001") and both.carrier_numbers() == [MOBILE], both.describe()
    driver.find_element(*by(".device a.danger")).click()
    wait_for(driver, "form.confirm button.danger").click()
    wait_for(driver, "p.saved")
    assert MOBILE not in (store.hget("callroute:ext:1001", "external_devices") or "")
    alone = call("1001", [desk("1001"), carrier()])
    assert alone.rang("desk 1001") and alone.carrier_numbers() == [], alone.describe()

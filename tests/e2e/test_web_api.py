"""The HTTP API on the real test PBX: what an employee sets through the PBX's own
callroute-web (started by `up`, its URL in `status()`) is what the next real SIP call does."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.calls import carrier, desk
from tests.harness.pbx import TestPBX

TARGET = "+33612345678"
# The API writes what the agent reads, whichever way Asterisk reaches it.
pytestmark = pytest.mark.one_agi_mode


def test_employee_turns_forwarding_on_and_the_next_call_rings_only_the_target(
        cli, call, pbx: TestPBX) -> None:
    web = pbx.status()["web"]
    assert httpx.get(f"{web}/healthz", timeout=10).json() == {"redis": "ok"}
    cli("user", "add", "eve", "--role", "user", "--ext", "1001")
    token = cli("token", "create", "eve").strip()
    resp = httpx.patch(f"{web}/api/v1/extensions/1001/forwarding",
                       headers={"Authorization": f"Bearer {token}"}, timeout=10,
                       json={"enabled": True, "target": "06 12 34 56 78"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["behaviour"].startswith(f"Calls ring only {TARGET}")
    result = call("1001", [desk("1001"), carrier()])
    assert result.carrier_numbers() == [TARGET], result.describe()
    assert not result.rang("desk 1001"), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()

"""The AGI environment of a real call, against the one tests/fake_asterisk.py sends.

Every protocol test trusts the fake Asterisk to send what Asterisk sends. Here a real
call goes through `callroute-inbound` on the test PBX (in each AGI mode) with
`agi set debug on`, which makes Asterisk log every line it sends to the agent
("AGI Tx >> agi_context: ..."), and the environment read back from its log must have
the fake's keys, in the fake's order, with the fake's values. Values that differ from
call to call (channel name, unique ID, thread), from build to build (the version) or
with every edit of `callroute-inbound` (the priority of its AGI line) are compared by
shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.fake_asterisk import agi_environment
from tests.harness.calls import CALLER_NUMBER, CallResult, desk
from tests.harness.pbx import TestPBX

# One line Asterisk sent to the agent, as agi debug logs it; FastAGI's first two lines
# are sent before the channel is attached, so they have no "<channel>" prefix.
TX_LINE = re.compile(r"(?:<[^>]*>)?AGI Tx >> (agi_\w+): ?(.*)$", re.MULTILINE)

SHAPES = {
    "agi_channel": r"PJSIP/inbound-[0-9a-f]{8}",
    "agi_uniqueid": r"\d+\.\d+",
    "agi_threadid": r"\d+",
    "agi_version": r"22\.\d+\.\d+.*",
    "agi_priority": r"[1-9]\d*",
}


def recorded_environment(log: str) -> dict[str, str]:
    """The first AGI environment in `log`, key by key, in the order Asterisk sent it."""
    env: dict[str, str] = {}
    for match in TX_LINE.finditer(log):
        key, value = match.groups()
        if key in env:  # the next request's environment begins
            break
        env[key] = value
    return env


@pytest.fixture
def agi_debug(pbx: TestPBX) -> Iterator[None]:
    pbx.asterisk_rx("agi set debug on")
    try:
        yield
    finally:
        pbx.asterisk_rx("agi set debug off")


def test_the_fake_asterisk_sends_what_a_real_call_sends(pbx: TestPBX, call, agi_debug) -> None:
    result: CallResult = call("1001", [desk("1001")])
    assert result.connected_to("desk 1001"), result.describe()
    real = recorded_environment(result.log)
    assert real, "no AGI environment in the Asterisk log (is `agi set debug on` working?)"

    mode = pbx.status()["agi"]
    if mode == "fastagi":
        request = real["agi_request"]
        # The extension in the script's path too (docs/dialplan-contract.md).
        assert re.fullmatch(r"agi://127\.0\.0\.1:\d+/route/1001", request), request
        fake = agi_environment(request, ["1001"], dnid="1001", network_script="route/1001")
    else:
        request = real["agi_request"]
        assert request.endswith("/callroute-agi"), request
        fake = agi_environment(request, ["1001"], dnid="1001")

    assert list(real) == list(fake), f"{mode}: keys differ\nreal {real}\nfake {fake}"
    for key, value in fake.items():
        if key in SHAPES:
            assert re.fullmatch(SHAPES[key], real[key]), (mode, key, real[key])
            assert re.fullmatch(SHAPES[key], value), (key, value, "the fake's own shape")
        else:
            assert real[key] == value, (mode, key, real[key], value)
    assert (real["agi_context"], real["agi_extension"]) == ("callroute-inbound", "s")
    assert (real["agi_callerid"], real["agi_arg_1"]) == (CALLER_NUMBER, "1001")

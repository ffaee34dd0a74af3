"""Faults injected while real calls flow: no call is ever lost (`pytest -m faults`).

The streams and their counts come from tests/harness/faults.py, which `scripts/faults`
also prints as a table.
"""

from __future__ import annotations

import pytest

from tests.harness.calls import CARRIER_PORT, DESK_PORTS, answer_strays, carrier, desk
from tests.harness.faults import FAULTS, RATE, Fault, prepare

pytestmark = pytest.mark.faults
# The agent's deadline (CALLROUTE_TIMEOUT_MS, default 300) plus room for a loaded machine.
DEADLINE_MS, MARGIN_MS = 300, 200


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.name)
def test_no_call_is_lost(pbx, tmp_path, fault: Fault):
    if pbx.status()["agi"] not in fault.agi_modes:
        pytest.skip(f"{fault.name} applies to {', '.join(fault.agi_modes)} only")
    prepare(pbx)
    result = fault.run(pbx, tmp_path)
    assert result.placed >= RATE * 5, result
    assert result.lost == 0, result
    assert not result.notes, result  # no leaked channel, one leg per call, no error
    assert result.as_configured > 0, result  # routing works around the fault
    if fault.bounded_by_deadline:
        # Post-dial delay without a fault is ~5 ms with FastAGI, ~100 ms with process AGI.
        usual_ms = 100 if pbx.status()["agi"] == "process" else 10
        assert result.max_pdd_ms <= usual_ms + DEADLINE_MS + MARGIN_MS, result


@pytest.mark.parametrize("cancel_after_ms", [5, 1500], ids=["during-agi", "while-ringing"])
def test_caller_hangs_up_early_leaves_nothing_behind(cli, call, cancel_after_ms):
    cli("forward", "on", "1001", "+33612345678", "--require-keypress")
    result = call("1001", [carrier("uas_ring_noanswer")], caller_scenario="uac_cancel",
                  caller_variables={"cancel_after_ms": str(cancel_after_ms)})
    assert result.caller.final_response() == 487, result.describe()
    assert not result.voicemail_left(), result.describe()


def test_caller_hangs_up_during_the_confirmation_prompt(cli, call):
    cli("forward", "on", "1001", "+33612345678", "--require-keypress")
    result = call("1001", [carrier("uas_answer_silent")], caller_scenario="uac_cancel",
                  caller_variables={"cancel_after_ms": "2500"})
    assert result.callees["carrier"].answered(), result.describe()
    assert result.callees["carrier"].got_bye(), result.describe()  # the prompt is cut
    assert not result.voicemail_left(), result.describe()


def test_two_legs_answering_at_once_connect_exactly_one(cli, call):
    cli("device", "add", "1001", "+33698765432")
    result = call("1001", [desk("1001"), carrier()])
    # A CANCEL crossing the losing leg's 200 OK makes that leg's SIPp abort, leaving the
    # CANCEL and the PBX's BYE unanswered: answer them here, or the next test's phone on
    # that port receives them. (Of 65 runs, only those with an aborted leg left any.)
    if any(peer.returncode for peer in result.callees.values()):
        answer_strays([DESK_PORTS["1001"], CARRIER_PORT])
    connected = [name for name in ("desk 1001", "carrier") if result.connected_to(name)]
    assert len(connected) == 1, result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()

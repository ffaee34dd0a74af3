"""Forwarding features on the real PBX: conditional forwarding, per-device settings, feature
codes, smarter confirmation, caller ID that carriers accept, and loop safety.

Like test_calls.py, every assertion is on what a SIPp peer received, how its dialog
ended, the voicemail spool, Redis (through the CLI), or Asterisk's own log (prompts
played, device states).

What a feature decides is the same in both AGI modes (one routing.decide, one dialplan;
the variable transport is tested in both): those tests are `one_agi_mode`. The feature
codes, whose entry point differs by mode, and the second pass run in both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.calls import (
    CALLER_NUMBER,
    COMPANY_NUMBER,
    DIDS,
    CallResult,
    carrier,
    desk,
)
from tests.harness.pbx import SIP_HOST, SIP_PORT, TestPBX
from tests.harness.sipp import SippPeer, from_number

TARGET = "+33612345678"
MOBILE = "+33698765432"
PHONE_LINE_PORT = 5091  # a desk phone's second line, to be "on a call" with


def forward(cli: Callable[..., str], ext: str) -> dict:
    return json.loads(cli("ext", "show", ext, "--json"))["forward"]


def seconds_between(result: CallResult, first: str, then: str) -> float:
    """Seconds from the INVITE `first` received to the INVITE `then` received."""
    a, b = result.invite(first), result.invite(then)
    assert a is not None and b is not None and a.at and b.at, result.describe()
    return (b.at - a.at).total_seconds()


# ---- forwarding modes --------------------------------------------------------------

@pytest.mark.one_agi_mode
def test_forward_when_busy_rings_the_desk_first_then_the_target(cli, call):
    cli("forward", "on", "1001", TARGET, "--when", "busy")
    result = call("1001", [desk("1001", "uas_busy"), carrier()])
    assert result.rang("desk 1001"), result.describe()
    assert result.carrier_numbers() == [TARGET], result.describe()
    assert result.connected_to("carrier"), result.describe()


@pytest.mark.one_agi_mode
def test_forward_when_busy_does_not_forward_an_answered_call(cli, call):
    cli("forward", "on", "1001", TARGET, "--when", "busy")
    result = call("1001", [desk("1001", answer_delay_ms="500"), carrier()])
    assert result.connected_to("desk 1001"), result.describe()
    assert not result.rang("carrier"), result.describe()


@pytest.mark.one_agi_mode
def test_forward_conditions_combine(cli, call):
    cli("forward", "on", "1001", TARGET, "--when", "busy,noanswer", "--after", "5")
    busy = call("1001", [desk("1001", "uas_busy"), carrier()])
    assert busy.connected_to("carrier"), busy.describe()  # at once, not after 5 s
    assert seconds_between(busy, "desk 1001", "carrier") < 2, busy.describe()


@pytest.mark.one_agi_mode
def test_forward_when_noanswer_after_n_seconds(cli, call):
    cli("forward", "on", "1001", TARGET, "--when", "noanswer", "--after", "5")
    result = call("1001", [desk("1001", "uas_ring_noanswer"), carrier()])
    assert result.callees["desk 1001"].got_cancel(), result.describe()
    assert 4.5 <= seconds_between(result, "desk 1001", "carrier") <= 7.5, result.describe()
    assert result.connected_to("carrier"), result.describe()


@pytest.mark.one_agi_mode
def test_forward_when_offline_only_when_no_phone_is_reachable(cli, call):
    cli("forward", "on", "1001", TARGET, "--when", "offline")
    online = call("1001", [desk("1001", answer_delay_ms="500"), carrier()])
    assert online.connected_to("desk 1001") and not online.rang("carrier"), online.describe()

    cli("ext", "add", "1001", "--device", "PJSIP/1004")  # never registered
    offline = call("1001", [carrier()])
    assert offline.carrier_numbers() == [TARGET], offline.describe()
    assert offline.connected_to("carrier"), offline.describe()


def test_a_second_pass_forgets_the_previous_decision(call):
    # The agent sends only non-empty variables; the dialplan clears a previous pass's.
    result = call("stale1001", [desk("1001", "uas_busy"), carrier()], mailbox="1001@default")
    assert result.rang("desk 1001"), result.describe()
    assert not result.rang("carrier"), result.describe()  # the stale busy-forward is gone
    assert result.voicemail_greeting == "busy", result.describe()


# ---- several external devices, each with its own settings ------------------------

@pytest.mark.one_agi_mode
def test_external_device_delay_and_ring_time(cli, call):
    cli("device", "add", "1001", MOBILE, "--delay", "3", "--ring", "5")
    result = call("1001", [desk("1001", answer_delay_ms="8500"),
                           carrier("uas_ring_noanswer")])
    assert 2.5 <= seconds_between(result, "desk 1001", "carrier") <= 5.0, result.describe()
    mobile = result.callees["carrier"]
    cancels = mobile.requests_received("CANCEL")
    assert cancels and cancels[0].at, result.describe()
    rang_for = (cancels[0].at - result.invite("carrier").at).total_seconds()
    assert 4.5 <= rang_for <= 7.0, result.describe()
    assert result.connected_to("desk 1001"), result.describe()


@pytest.mark.one_agi_mode
def test_keypress_is_per_device(cli, call):
    # The extension doesn't ask for a keypress; this one device does.
    cli("device", "add", "1001", MOBILE, "--require-keypress")
    asked = call("1001", [desk("1001", answer_delay_ms="4500"), carrier("uas_answer_silent")])
    assert asked.played("followme/options") >= 1, asked.describe()
    assert asked.connected_to("desk 1001"), asked.describe()
    assert not asked.connected_to("carrier"), asked.describe()

    # The extension asks for one; this device is exempted.
    cli("forward", "on", "1001", TARGET, "--require-keypress")
    cli("forward", "off", "1001")
    cli("device", "add", "1001", MOBILE, "--no-require-keypress")
    exempt = call("1001", [desk("1001", "uas_ring_noanswer"), carrier()])
    assert exempt.played("followme/options") == 0, exempt.describe()
    assert exempt.connected_to("carrier"), exempt.describe()


@pytest.fixture
def phone_line(pbx: TestPBX, tmp_path: Path) -> Iterator[Callable[[str], SippPeer]]:
    """Put a desk phone on an 8 s call: it dials 600 (answers, waits) from a second line."""
    peers: list[SippPeer] = []

    def start(ext: str) -> SippPeer:
        peer = SippPeer(f"line {ext}", tmp_path / f"line-{ext}")
        peers.append(peer)
        peer.start("uac_call", PHONE_LINE_PORT, service="600", remote=f"{SIP_HOST}:{SIP_PORT}",
                   variables={"caller": ext, "hold_ms": "8000"}, timeout_s=60)
        return peer

    yield start
    for peer in peers:
        peer.stop()


@pytest.mark.one_agi_mode
def test_external_devices_stay_silent_while_the_desk_is_on_a_call(cli, call, pbx, phone_line):
    cli("ext", "add", "1001", "--no-externals-during-calls")
    cli("device", "add", "1001", MOBILE)
    idle = call("1001", [desk("1001", answer_delay_ms="1500"), carrier("uas_ring_noanswer")])
    assert idle.carrier_numbers() == [MOBILE], idle.describe()  # not on a call: it rings

    line = phone_line("1001")
    pbx.wait_for_device_state("PJSIP/1001", "INUSE")
    busy = call("1001", [desk("1001", answer_delay_ms="1500"), carrier("uas_ring_noanswer")])
    assert not busy.rang("carrier"), busy.describe()
    assert busy.connected_to("desk 1001"), busy.describe()
    assert line.wait(20) == 0, line.describe()  # hangs up itself: nothing left up


# ---- feature codes and the busy-lamp hint -------------------------------------------

def dial_feature(call, code: str, ext: str = "1001") -> CallResult:
    """Phone `ext` dials `code`, and hangs up 6 s after the answer.

    The change is written before anything is said, and the 6 s cover the announcement
    (not the target's digits read back after it, ~1 s each).
    """
    return call(code, [], caller_number=ext, hold_ms=6000)


def test_feature_codes_turn_forwarding_on_off_and_toggle(cli, call, pbx):
    on = dial_feature(call, "*720612345678")
    assert on.played("call-fwd-unconditional") == 1 and on.played("activated") == 1, \
        on.describe()
    settings = forward(cli, "1001")
    assert settings["enabled"] is True and settings["target"] == TARGET, settings
    assert pbx.device_state("Custom:CALLROUTE_FWD_1001") == "INUSE"
    assert "InUse" in pbx.asterisk_rx("core show hint fwd1001")
    routed = call("1001", [desk("1001"), carrier()])  # calls now follow it
    assert routed.carrier_numbers() == [TARGET], routed.describe()

    toggled_off = dial_feature(call, "*74")
    assert toggled_off.played("de-activated") == 1, toggled_off.describe()
    assert forward(cli, "1001")["enabled"] is False
    assert pbx.device_state("Custom:CALLROUTE_FWD_1001") == "NOT_INUSE"
    assert "Idle" in pbx.asterisk_rx("core show hint fwd1001")

    toggled_on = dial_feature(call, "*74")  # back on, to the stored target
    assert toggled_on.played("activated") == 1, toggled_on.describe()
    settings = forward(cli, "1001")
    assert settings["enabled"] is True and settings["target"] == TARGET, settings

    off = dial_feature(call, "*73")
    assert off.played("de-activated") == 1, off.describe()
    assert forward(cli, "1001")["enabled"] is False
    assert pbx.device_state("Custom:CALLROUTE_FWD_1001") == "NOT_INUSE"


def test_feature_code_refuses_a_number_the_cli_refuses(cli, call, pbx):
    before = forward(cli, "1001")
    premium = dial_feature(call, "*720899123456")
    assert premium.played("ss-noservice") == 1, premium.describe()
    assert premium.played("activated") == 0, premium.describe()
    assert forward(cli, "1001") == before
    international = dial_feature(call, "*72+441632960123")
    assert international.played("ss-noservice") == 1, international.describe()
    assert forward(cli, "1001") == before


@pytest.mark.one_agi_mode
def test_hint_follows_a_cli_change_at_the_next_call(cli, call, pbx):
    cli("forward", "on", "1001", TARGET)
    call("1001", [carrier()])
    assert pbx.device_state("Custom:CALLROUTE_FWD_1001") == "INUSE"


# ---- smarter confirmation -----------------------------------------------------------

@pytest.mark.one_agi_mode
def test_confirmation_tries_timeout_and_prompt_per_extension(cli, call):
    cli("ext", "add", "1001", "--confirm-tries", "1", "--confirm-timeout", "2",
        "--confirm-prompt", "beep")
    cli("forward", "on", "1001", TARGET, "--require-keypress")
    result = call("1001", [carrier("uas_answer_silent")])
    assert result.played("beep", to="PJSIP/carrier") == 1, result.describe()
    assert result.played("followme/options") == 0, \
        result.describe()
    assert result.voicemail_greeting == "unavailable", result.describe()
    assert not result.connected_to("carrier"), result.describe()


@pytest.mark.one_agi_mode
def test_option_3_reads_the_callers_number_without_using_up_a_try(cli, call):
    # (SIPp replays each digit from its own pcap with the same RTP timestamps, so
    # Asterisk drops a second digit in one call as a repeat: 3 alone, then silence.)
    cli("ext", "add", "1001", "--confirm-tries", "2", "--confirm-timeout", "1",
        "--confirm-prompt", "beep")
    cli("forward", "on", "1001", TARGET, "--require-keypress")
    caller = "+33142"  # a short number: each digit takes ~1 s to say
    result = call("1001", [carrier("uas_answer_press", digit="3", press_after_ms="300")],
                  caller_number=caller)
    said = [result.played(f"digits/{digit}", to="PJSIP/carrier") for digit in "0123456789"]
    assert said == [caller.count(digit) for digit in "0123456789"], result.describe()
    # The prompt the 3 interrupted, then both tries: the 3 did not use one up.
    assert result.played("beep", to="PJSIP/carrier") == 3, result.describe()
    assert result.voicemail_greeting == "unavailable", result.describe()
    assert not result.connected_to("carrier"), result.describe()


@pytest.mark.one_agi_mode
def test_too_late_is_announced_when_a_desk_phone_took_the_call(cli, call):
    cli("device", "add", "1001", MOBILE, "--require-keypress")
    result = call("1001", [desk("1001", answer_delay_ms="1500"),
                           carrier("uas_answer_press", digit="1", press_after_ms="4000")])
    assert result.connected_to("desk 1001"), result.describe()
    assert not result.connected_to("carrier"), result.describe()
    assert result.played("im-sorry") == 1, result.describe()


# ---- caller ID that carriers accept -------------------------------------------------

@pytest.mark.one_agi_mode
def test_original_fallback_retries_with_the_company_number_on_403(cli, call):
    cli("forward", "on", "1001", TARGET, "--caller-id", "original-fallback")
    result = call("1001", [carrier("uas_reject_foreign_cid", calls=2,
                                   allowed=COMPANY_NUMBER)])
    invites = result.callees["carrier"].invites_received()
    assert len(invites) == 2, result.describe()
    # First the caller's own number, vouched for by the DID in Diversion ...
    assert result.caller_id_at("carrier") == CALLER_NUMBER, result.describe()
    assert result.pai_at("carrier") == CALLER_NUMBER, result.describe()
    assert result.diversion_at("carrier") == DIDS["1001"], result.describe()
    # ... and after the 403, once, the company number.
    assert from_number(invites[1]) == COMPANY_NUMBER, result.describe()
    assert result.connected_to("carrier"), result.describe()


# ---- loop safety --------------------------------------------------------------------

@pytest.mark.one_agi_mode
def test_forward_to_another_extensions_did_follows_its_rules(cli, call):
    cli("forward", "on", "1001", DIDS["1002"])
    result = call("1001", [desk("1001"), desk("1002"), carrier()])
    assert not result.rang("carrier"), result.describe()  # never out and back in
    assert not result.rang("desk 1001"), result.describe()
    assert result.rang("desk 1002"), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()


@pytest.mark.one_agi_mode
def test_a_forwarding_loop_between_extensions_stops(cli, call):
    cli("forward", "on", "1001", DIDS["1002"])
    cli("forward", "on", "1002", DIDS["1001"])
    result = call("1001", [carrier()], hold_ms=3000)
    assert not result.rang("carrier"), result.describe()
    assert "not following a forward" in result.log, result.describe()
    assert result.caller_answered(), result.describe()  # a voicemail took the call

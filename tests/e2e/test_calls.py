"""Every callroute behaviour, as real SIP calls through a real Asterisk.

The caller's hold time starts when Asterisk answers it: at the bridge, or when
voicemail picks up, so a voicemail test holds VOICEMAIL_HOLD_MS whatever came before.

Assertions are on what the SIPp peers received (request-URI, From, P-Asserted-
Identity, Diversion), on how each dialog ended, and on the voicemail spool.
"""

from __future__ import annotations

import pytest

from tests.harness.calls import (
    CALLER_NUMBER,
    COMPANY_NUMBER,
    DIDS,
    VOICEMAIL_HOLD_MS,
    carrier,
    desk,
)

TARGET = "+33612345678"
MOBILE = "+33698765432"


def test_forward_off_rings_desk_and_external_device_in_parallel(cli, call):
    cli("device", "add", "1001", MOBILE)
    result = call("1001", [desk("1001", answer_delay_ms="1500"), carrier("uas_ring_noanswer")])
    assert result.rang("desk 1001"), result.describe()
    assert result.carrier_numbers() == [MOBILE], result.describe()
    assert result.connected_to("desk 1001"), result.describe()
    assert result.callees["carrier"].got_cancel(), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()
    assert not result.voicemail_left()


def test_forward_on_rings_only_the_target(cli, call):
    cli("forward", "on", "1001", TARGET)
    result = call("1001", [desk("1001"), carrier()])
    assert result.carrier_numbers() == [TARGET], result.describe()
    assert not result.rang("desk 1001"), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()


def test_forward_with_original_caller_id_sends_diversion_with_the_did(cli, call):
    cli("forward", "on", "1001", TARGET, "--caller-id", "original")
    result = call("1001", [carrier()])
    assert result.caller_id_at("carrier") == CALLER_NUMBER, result.describe()
    assert result.pai_at("carrier") == CALLER_NUMBER, result.describe()
    assert result.diversion_at("carrier") == DIDS["1001"], result.describe()


def test_forward_with_company_caller_id(cli, call):
    cli("forward", "on", "1001", TARGET, "--caller-id", "company")
    result = call("1001", [carrier()])
    assert result.caller_id_at("carrier") == COMPANY_NUMBER, result.describe()
    assert result.diversion_at("carrier") == DIDS["1001"], result.describe()


def test_company_caller_id_is_shown_on_the_external_leg_only(cli, call):
    cli("forward", "on", "1001", TARGET, "--caller-id", "company")
    cli("forward", "off", "1001")
    cli("device", "add", "1001", MOBILE)
    result = call("1001", [desk("1001", answer_delay_ms="1500"), carrier("uas_ring_noanswer")])
    assert result.caller_id_at("desk 1001") == CALLER_NUMBER, result.describe()
    assert result.caller_id_at("carrier") == COMPANY_NUMBER, result.describe()


def test_keypress_required_and_callee_presses_1_connects(cli, call):
    cli("forward", "on", "1001", TARGET, "--require-keypress")
    result = call("1001", [carrier("uas_answer_press", digit="1", press_after_ms="1500")])
    assert result.connected_to("carrier"), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()
    assert not result.voicemail_left(), result.describe()


def test_keypress_required_and_mobile_voicemail_answers_silently(cli, call):
    cli("forward", "on", "1001", TARGET, "--require-keypress")
    result = call("1001", [carrier("uas_answer_silent")], hold_ms=VOICEMAIL_HOLD_MS)
    target = result.callees["carrier"]
    assert target.answered() and target.got_bye(), result.describe()  # leg released
    assert result.caller_hung_up_itself(), result.describe()
    assert result.voicemail_left(), result.describe()
    assert result.voicemail_field("callerid") is not None
    assert CALLER_NUMBER in result.voicemail_field("callerid")


@pytest.mark.parametrize("callee", [
    pytest.param(lambda: carrier("uas_answer_press", digit="2", press_after_ms="1500"),
                 id="presses-2"),
    pytest.param(lambda: carrier("uas_answer_hangup", hangup_after_ms="1500"),
                 id="hangs-up-during-prompt"),
])
def test_keypress_refused_goes_to_voicemail_without_dropping_the_caller(cli, call, callee):
    cli("forward", "on", "1001", TARGET, "--require-keypress")
    result = call("1001", [callee()], hold_ms=VOICEMAIL_HOLD_MS)
    assert result.callees["carrier"].answered(), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()
    assert result.voicemail_left(), result.describe()


@pytest.mark.parametrize(("scenario", "greeting"), [
    ("uas_busy", "busy"),
    ("uas_ring_noanswer", "unavailable"),
])
def test_forward_target_busy_or_unanswered_goes_to_voicemail(cli, call, scenario, greeting):
    cli("forward", "on", "1001", TARGET)
    result = call("1001", [carrier(scenario)], hold_ms=VOICEMAIL_HOLD_MS)
    assert result.carrier_numbers() == [TARGET], result.describe()
    assert result.voicemail_left(), result.describe()
    assert result.voicemail_greeting == greeting, result.describe()


def test_silent_external_device_does_not_stop_the_desk_phone(cli, call):
    cli("forward", "on", "1001", TARGET, "--require-keypress")
    cli("forward", "off", "1001")
    cli("device", "add", "1001", MOBILE)
    result = call("1001", [desk("1001", answer_delay_ms="8000"), carrier("uas_answer_silent")])
    assert result.carrier_numbers() == [MOBILE], result.describe()
    assert result.callees["carrier"].answered(), result.describe()
    assert result.callees["carrier"].got_bye(), result.describe()
    assert not result.connected_to("carrier"), result.describe()
    assert result.connected_to("desk 1001"), result.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), result.describe()
    assert not result.voicemail_left(), result.describe()


@pytest.mark.parametrize("planted", [
    "+447911123456",                 # international
    "+33612345678&PJSIP/1002",       # a second Dial() leg
    '+336"\nEXEC Dial PJSIP/x',      # an AGI command
    "+3315",                         # short code
    COMPANY_NUMBER,                  # the company's own number: a loop via the network
])
def test_corrupt_target_planted_in_redis_is_never_dialled(store, call, planted):
    store.hset("callroute:ext:1001", mapping={"forward_enabled": "1",
                                              "forward_target": planted})
    result = call("1001", [desk("1001"), desk("1002"), carrier()])
    assert result.rang("desk 1001"), result.describe()
    assert not result.rang("carrier"), result.describe()
    assert not result.rang("desk 1002"), result.describe()


def test_redis_stopped_still_rings_the_desk_phone(pbx, cli, call):
    cli("forward", "on", "1001", TARGET)
    pbx.stop_redis()
    result = call("1001", [desk("1001"), carrier()])
    assert result.rang("desk 1001") and result.callees["desk 1001"].answered(), \
        result.describe()
    assert not result.rang("carrier"), result.describe()


def test_agent_killed_falls_back_to_the_default_device(pbx, cli, call):
    if pbx.status()["agi"] != "fastagi":
        pytest.skip("only FastAGI runs as a separate server that can be killed")
    cli("forward", "on", "1001", TARGET)
    pbx.stop_agent()
    result = call("1001", [desk("1001"), carrier()])
    assert result.rang("desk 1001") and result.callees["desk 1001"].answered(), \
        result.describe()
    assert not result.rang("carrier"), result.describe()

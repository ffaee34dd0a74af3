"""The routing decision as a table: stored settings in, channel variables out.

`decide` is the whole product logic of a call. Each row gives the complete set of
variables the dialplan will see, so any change of behaviour shows up as a failing row.
Corrupt rows also check the security rule: a value that fails its guard is never dialled.
The rows for external legs are in test_routing_legs.py, hostile values in
test_routing_corrupt.py; below the table, the contract between those variables and
dialplan/callroute.conf.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from agi import variables as v
from agi.config import Config, load
from agi.routing import decide
from tests.routing_rows import (
    COMPANY,
    COMPANY_NUMBER,
    DESK,
    DID,
    EXT,
    INJECTION,
    MOBILE,
    MOBILE_2,
    RING_DESK,
    TRUNK,
    TWO_DESKS,
    expect,
    externals,
    forward,
    leg,
)

# (id, ext, fields, company, expected variables)
CASES = [
    ("unknown-extension", EXT, {}, COMPANY,
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="unknown extension")),
    ("one-desk", EXT, {"devices": DESK}, {}, RING_DESK),
    ("two-desks", EXT, {"devices": TWO_DESKS}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001&PJSIP/1001b")),
    ("duplicate-devices-ring-once", EXT, {"devices": '["PJSIP/1001","PJSIP/1001"]'}, {},
     RING_DESK),
    ("no-devices-field-rings-default", EXT, {"forward_enabled": "0"}, {}, RING_DESK),
    ("own-mailbox", EXT, {"devices": DESK, "mailbox": "sales@office"}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", mailbox="sales@office")),
    ("forward-on-original-no-numbers", EXT, forward(), {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("forward-on-original-company-diversion", EXT, forward(), COMPANY,
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
            diversion=COMPANY_NUMBER)),
    ("forward-on-explicit-original-did-diversion", EXT,
     forward(forward_caller_id="original", did=DID), COMPANY,
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
            diversion=DID)),
    ("forward-on-company-caller-id", EXT, forward(forward_caller_id="company", did=DID),
     COMPANY,
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
            callerid=COMPANY_NUMBER, diversion=DID)),
    ("forward-on-company-caller-id-but-no-company", EXT,
     forward(forward_caller_id="company"), {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("forward-on-keypress", EXT, forward(forward_require_keypress="1"), COMPANY,
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE, True), target=MOBILE, trunk=TRUNK, confirm="1",
            diversion=COMPANY_NUMBER)),
    ("forward-on-no-keypress", EXT, forward(forward_require_keypress="0"), COMPANY,
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
            diversion=COMPANY_NUMBER)),
    ("forward-on-ignores-devices-and-externals", EXT,
     forward(external_devices=json.dumps([MOBILE_2])), {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("forward-off-keeps-nothing-external", EXT,
     {**forward(forward_caller_id="company", forward_require_keypress="1"),
      "forward_enabled": "0"}, COMPANY, RING_DESK),
    ("forward-flag-empty-means-off", EXT, {**forward(), "forward_enabled": ""}, {}, RING_DESK),
    ("external-devices-ring-with-desks", EXT,
     {"devices": TWO_DESKS, "external_devices": json.dumps([MOBILE, MOBILE_2])}, COMPANY,
     expect(mode=v.MODE_RING,
            dial=f"PJSIP/1001&PJSIP/1001b&{leg(MOBILE)}&{leg(MOBILE_2)}",
            trunk=TRUNK, diversion=COMPANY_NUMBER)),
    ("external-devices-keypress-and-company-caller-id", EXT,
     {"devices": DESK, "external_devices": json.dumps([MOBILE]), "did": DID,
      "forward_caller_id": "company", "forward_require_keypress": "1"}, COMPANY,
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE, True)}", trunk=TRUNK,
            confirm="1", callerid=COMPANY_NUMBER, diversion=DID)),
    ("only-external-devices", EXT, {"devices": "[]", "external_devices": json.dumps([MOBILE])},
     {}, expect(mode=v.MODE_RING, dial=leg(MOBILE), trunk=TRUNK)),
    ("no-devices-no-externals-voicemail", EXT, {"devices": "[]", "forward_enabled": "0"}, {},
     expect(mode=v.MODE_VOICEMAIL)),
    ("keypress-without-external-legs-is-0", EXT,
     {"devices": DESK, "forward_require_keypress": "1"}, COMPANY, RING_DESK),
    ("unknown-extra-fields-ignored", EXT,
     {"devices": DESK, "colour": "blue", "schema": "99", "notes": INJECTION}, {"x": "y"},
     RING_DESK),
    # ---- corrupt data: FALLBACK, never dialled ----
    ("forward-target-international", EXT, forward("+447911123456"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt forward_target",
            status=v.STATUS_FALLBACK)),
    ("forward-target-short-code", EXT, forward("+3315"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt forward_target",
            status=v.STATUS_FALLBACK)),
    ("forward-target-national-format", EXT, forward("0612345678"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt forward_target",
            status=v.STATUS_FALLBACK)),
    ("forward-target-injection", EXT, forward(INJECTION), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt forward_target",
            status=v.STATUS_FALLBACK)),
    ("forward-target-missing", EXT, {"devices": DESK, "forward_enabled": "1"}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="missing forward_target",
            status=v.STATUS_FALLBACK)),
    ("forward-enabled-yes", EXT, forward(forward_enabled="yes"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt forward_enabled",
            status=v.STATUS_FALLBACK)),
    ("devices-with-ampersand", EXT, {"devices": '["PJSIP/1001&PJSIP/evil"]'}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt entry in devices",
            status=v.STATUS_FALLBACK)),
    ("devices-one-bad-entry", EXT, {"devices": '["PJSIP/1001b","Local/x,,U(evil)",7]'}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001b", reason="corrupt entry in devices",
            status=v.STATUS_FALLBACK)),
    ("devices-bad-json", EXT, {"devices": '["PJSIP/1001"'}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt devices",
            status=v.STATUS_FALLBACK)),
    ("devices-not-a-list", EXT, {"devices": '"PJSIP/evil"'}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt devices",
            status=v.STATUS_FALLBACK)),
    ("external-international-dropped", EXT,
     {"devices": DESK, "external_devices": json.dumps(["+447911123456", MOBILE])}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE)}", trunk=TRUNK,
            reason="corrupt entry in external_devices", status=v.STATUS_FALLBACK)),
    ("external-bad-json", EXT, {"devices": DESK, "external_devices": "[+33612345678"}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt external_devices",
            status=v.STATUS_FALLBACK)),
    ("caller-id-mode-bogus", EXT, forward(forward_caller_id="boss"), COMPANY,
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
            diversion=COMPANY_NUMBER, reason="corrupt forward_caller_id",
            status=v.STATUS_FALLBACK)),
    ("keypress-bogus-means-required", EXT, forward(forward_require_keypress="maybe"), {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE, True), target=MOBILE, trunk=TRUNK, confirm="1",
            reason="corrupt forward_require_keypress", status=v.STATUS_FALLBACK)),
    ("mailbox-bogus", EXT, {"devices": DESK, "mailbox": "bogus"}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt mailbox",
            status=v.STATUS_FALLBACK)),
    ("mailbox-injection", EXT, {"devices": DESK, "mailbox": INJECTION}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt mailbox",
            status=v.STATUS_FALLBACK)),
    ("did-bogus", EXT, forward(did="12345"), COMPANY,
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
            diversion=COMPANY_NUMBER, reason="corrupt did", status=v.STATUS_FALLBACK)),
    ("company-number-bogus", EXT, forward(forward_caller_id="company"),
     {"caller_id": "+442079460000"},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
            reason="corrupt company caller_id", status=v.STATUS_FALLBACK)),
    ("several-problems-all-reported", EXT,
     {"devices": "{", "forward_enabled": "2", "mailbox": "x"}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001",
            reason="corrupt devices; corrupt forward_enabled; corrupt mailbox",
            status=v.STATUS_FALLBACK)),
    # ---- conditional forwarding (forward_when, forward_after) ----
    ("when-noanswer-rings-phones-then-target", EXT, forward(forward_when="noanswer"), COMPANY,
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            diversion=COMPANY_NUMBER, ringtime="20", next_dial=leg(MOBILE),
            next_on="NOANSWER", forwarding="1")),
    ("when-busy-noanswer-after-15", EXT,
     forward(forward_when="busy,noanswer", forward_after="15"), COMPANY,
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            diversion=COMPANY_NUMBER, ringtime="15", next_dial=leg(MOBILE),
            next_on="BUSY-NOANSWER", forwarding="1")),
    ("when-offline-busy-keeps-default-ring-time", EXT,
     forward(forward_when="offline,busy", forward_after="40"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            next_dial=leg(MOBILE), next_on="CHANUNAVAIL-BUSY", forwarding="1")),
    ("when-offline", EXT, forward(forward_when="offline"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            next_dial=leg(MOBILE), next_on="CHANUNAVAIL", forwarding="1")),
    ("when-all-three", EXT, forward(forward_when="offline,busy,noanswer"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            ringtime="20", next_dial=leg(MOBILE), next_on="CHANUNAVAIL-BUSY-NOANSWER",
            forwarding="1")),
    ("when-boundaries-5", EXT, forward(forward_when="noanswer", forward_after="5"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="5",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1")),
    ("when-boundaries-300", EXT, forward(forward_when="noanswer", forward_after="300"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            ringtime="300", next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1")),
    ("when-always-explicit-is-today", EXT, forward(forward_when="always", forward_after="9"),
     {}, expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("when-empty-means-always", EXT, forward(forward_when=""), {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("when-conditional-nothing-to-ring-first-is-always", EXT,
     {**forward(forward_when="busy,noanswer"), "devices": "[]"}, {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("when-conditional-externals-only-first", EXT,
     {**forward(forward_when="noanswer"), "devices": "[]",
      "external_devices": externals(MOBILE_2)}, {},
     expect(mode=v.MODE_RING, dial=leg(MOBILE_2), target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1")),
    ("when-conditional-desks-and-externals-keypress", EXT,
     forward(forward_when="busy", forward_require_keypress="1",
             external_devices=externals(MOBILE_2), devices=TWO_DESKS), COMPANY,
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&PJSIP/1001b&{leg(MOBILE_2, True)}",
            target=MOBILE, confirm="1", trunk=TRUNK, diversion=COMPANY_NUMBER,
            next_dial=leg(MOBILE, True), next_on="BUSY", forwarding="1")),
    ("when-conditional-only-the-target-must-press-1", EXT,
     forward(forward_when="noanswer", forward_require_keypress="1"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, confirm="1", trunk=TRUNK,
            ringtime="20", next_dial=leg(MOBILE, True), next_on="NOANSWER", forwarding="1")),
    ("when-set-but-forwarding-off", EXT,
     {**forward(forward_when="busy,noanswer", forward_after="30"), "forward_enabled": "0"},
     COMPANY, RING_DESK),
    ("when-bogus-behaves-as-noanswer", EXT, forward(forward_when="sometimes"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_when", status=v.STATUS_FALLBACK)),
    ("when-not-canonical-order-is-corrupt", EXT, forward(forward_when="noanswer,busy"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_when", status=v.STATUS_FALLBACK)),
    ("when-always-combined-is-corrupt", EXT, forward(forward_when="always,busy"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_when", status=v.STATUS_FALLBACK)),
    ("when-duplicate-is-corrupt", EXT, forward(forward_when="busy,busy"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_when", status=v.STATUS_FALLBACK)),
    ("when-injection-is-corrupt", EXT, forward(forward_when=INJECTION), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_when", status=v.STATUS_FALLBACK)),
    ("after-bogus-is-20", EXT, forward(forward_when="noanswer", forward_after="soon"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_after", status=v.STATUS_FALLBACK)),
    ("after-too-short-is-20", EXT, forward(forward_when="noanswer", forward_after="4"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_after", status=v.STATUS_FALLBACK)),
    ("after-too-long-is-20", EXT, forward(forward_when="noanswer", forward_after="301"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_after", status=v.STATUS_FALLBACK)),
    ("after-negative-is-20", EXT, forward(forward_when="noanswer", forward_after="-30"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_after", status=v.STATUS_FALLBACK)),
    ("after-unicode-digits-is-20", EXT,
     forward(forward_when="noanswer", forward_after="\u0663\u0660"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK, ringtime="20",
            next_dial=leg(MOBILE), next_on="NOANSWER", forwarding="1",
            reason="corrupt forward_after", status=v.STATUS_FALLBACK)),
]


@pytest.mark.parametrize(("ext", "fields", "company", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_decide(ext: str, fields: dict[str, str], company: dict[str, str],
                expected: dict[str, str], fr_config: Config) -> None:
    assert dict(decide(ext, fields, company, fr_config).variables()) == expected


def test_only_non_empty_variables_are_set_in_order_status_last(fr_config: Config) -> None:
    pairs = decide(EXT, forward(), COMPANY, fr_config).variables()
    names = [name for name, _ in pairs]
    assert names == [name for name in v.SENT if name in names]
    assert names[-1] == v.STATUS
    assert all(value for name, value in pairs if name not in v.LEG_ALL)
    assert {v.MODE, v.DIAL, v.TARGET, v.MAILBOX, v.TRUNK, v.FORWARDING} <= set(names)
    assert set(v.LEG_ALL) <= set(names)  # the target is an external leg
    assert v.NEXT_DIAL not in names and v.CONFIRM not in names


def test_dialplan_clears_every_variable_on_a_second_pass() -> None:
    """The agent leaves empty variables unset, so the dialplan's second-pass clear must
    name every one of them (a variable added to v.ALL and not cleared would leak)."""
    conf = (Path(__file__).resolve().parents[1] / "dialplan" / "callroute.conf").read_text()
    block = conf.split('(valid),GotoIf($["${CALLROUTE_PASSED}" = ""]?first-pass)', 1)[1]
    block = block.split("(first-pass)", 1)[0]
    cleared = re.findall(r"Set\((CALLROUTE_[A-Z_]+)=\)", block)
    assert sorted(cleared) == sorted(v.ALL)


def test_the_agent_sets_every_leg_variable_the_legs_read_and_nothing_else() -> None:
    """callroute-external and callroute-confirm read CALLROUTE_LEG_* on channels created
    from the caller's: each one they read and don't set themselves must be one the agent
    sets (v.LEG_ALL) or ORIGIN (set by callroute-external), and the caller's context sets
    none of them before Dial() (only REASON, before the conditional-forwarding Dial)."""
    conf = (Path(__file__).resolve().parents[1] / "dialplan" / "callroute.conf").read_text()
    contexts = dict(re.findall(r"^\[([\w-]+)\]\n(.*?)(?=^\[|\Z)", conf, re.M | re.S))
    legs = contexts["callroute-external"] + contexts["callroute-confirm"]
    read = set(re.findall(r"(?<![A-Z_])(CALLROUTE_LEG_[A-Z_]+)(?![A-Z_=])", legs))
    # Given a value by the legs themselves (clearing one, `NAME=)`, doesn't count).
    own = set(re.findall(r"(?:Set\(|MSet\(|,)_{0,2}(CALLROUTE_LEG_[A-Z_]+)=(?!\))", legs))
    assert read - own == {name.lstrip("_") for name in v.LEG_ALL}
    assert re.findall(r"Set\(_{0,2}(CALLROUTE_LEG_[A-Z_]+)=",
                      contexts["callroute-inbound"]) == ["CALLROUTE_LEG_REASON"]


def test_templates_come_from_config(config_env: Callable[..., dict[str, str]]) -> None:
    config = load(config_env(trunk_dial="SIP/trunk/{number}", default_device="SIP/{ext}"))
    assert decide("42", {}, {}, config).dial == "SIP/42"
    route = decide("42", forward(), {}, config)
    assert (route.dial, route.trunk) == (leg(MOBILE), "SIP/trunk/{number}")


def test_us_home_region_refuses_french_target(config_env: Callable[..., dict[str, str]]) -> None:
    config = load(config_env(country="US"))
    route = decide(EXT, forward(), {}, config)
    assert (route.status, route.mode, route.dial) == (v.STATUS_FALLBACK, v.MODE_RING,
                                                      "PJSIP/1001")
    ok = decide(EXT, forward("+16502530000"), {}, config)
    assert (ok.status, ok.mode, ok.target) == (v.STATUS_OK, v.MODE_FORWARD, "+16502530000")

"""The routing decision as a table: stored settings in, channel variables out.

`decide` is the whole product logic of a call. Each row gives the complete set of
variables the dialplan will see, so any change of behaviour shows up as a failing row.
Corrupt rows also check the security rule: a value that fails its guard is never dialled.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from agi import routing
from agi import variables as v
from agi.config import Config, load
from agi.routing import decide

EXT = "1001"
MOBILE = "+33612345678"
MOBILE_2 = "+33698765432"
COMPANY_NUMBER = "+33142685300"
DID = "+33142685301"
TRUNK = "PJSIP/{number}@carrier"
COMPANY = {"caller_id": COMPANY_NUMBER, "name": "Acme"}
DESK = '["PJSIP/1001"]'
TWO_DESKS = '["PJSIP/1001","PJSIP/1001b"]'
INJECTION = 'x"\nEXEC Dial "PJSIP/itsp/00881'


def leg(number: str) -> str:
    return f"Local/{number}@callroute-external/n"


def expect(*, mode: str, dial: str = "", target: str = "", confirm: str = "0",
           callerid: str = "", diversion: str = "", mailbox: str = "1001@default",
           trunk: str = "", reason: str = "", status: str = v.STATUS_OK) -> dict[str, str]:
    """Every channel variable of one decision: unspecified ones must be empty/default."""
    return {v.MODE: mode, v.DIAL: dial, v.TARGET: target, v.CONFIRM: confirm,
            v.CALLERID: callerid, v.DIVERSION: diversion, v.MAILBOX: mailbox,
            v.TRUNK: trunk, v.REASON: reason, v.STATUS: status}


def forward(target: str = MOBILE, **extra: str) -> dict[str, str]:
    return {"devices": DESK, "forward_enabled": "1", "forward_target": target, **extra}


RING_DESK = expect(mode=v.MODE_RING, dial="PJSIP/1001")

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
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK, confirm="1",
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
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE)}", trunk=TRUNK, confirm="1",
            callerid=COMPANY_NUMBER, diversion=DID)),
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
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK, confirm="1",
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
    # ---- the extension argument itself ----
    ("invalid-extension-dial-syntax", "1001&PJSIP/x", {"devices": DESK}, {},
     expect(mode=v.MODE_VOICEMAIL, mailbox="", reason="invalid extension '1001&PJSIP/x'",
            status=v.STATUS_INVALID)),
    ("invalid-extension-empty", "", {}, {},
     expect(mode=v.MODE_VOICEMAIL, mailbox="", reason="invalid extension ''",
            status=v.STATUS_INVALID)),
    ("invalid-extension-too-long", "1" * 33, {}, {},
     expect(mode=v.MODE_VOICEMAIL, mailbox="", reason=f"invalid extension '{'1' * 33}'",
            status=v.STATUS_INVALID)),
]


@pytest.mark.parametrize(("ext", "fields", "company", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_decide(ext: str, fields: dict[str, str], company: dict[str, str],
                expected: dict[str, str], fr_config: Config) -> None:
    assert dict(decide(ext, fields, company, fr_config).variables()) == expected


# (field, planted value) pairs that must never reach Dial()
CORRUPT_VALUES = [
    ("forward_target", "+447911123456"),
    ("forward_target", "+3315"),
    ("forward_target", "+33612345678&PJSIP/itsp/0088"),
    ("forward_target", INJECTION),
    ("forward_target", "+33\uff1612345678"),
    ("external_devices", json.dumps(["+49301234567"])),
    ("external_devices", json.dumps(["+33612345678,,U(x)"])),
    ("devices", json.dumps(["PJSIP/1001&PJSIP/itsp/0088"])),
    ("devices", json.dumps(["Local/0088@default"])),
    ("devices", json.dumps(["PJSIP/x y"])),
    ("devices", json.dumps(["PJSIP/00881234@carrier"])),
    ("devices", json.dumps(["PJSIP/carrier/sip:+447911123456@itsp"])),
    ("devices", json.dumps(["local/0088@from-internal"])),
]


@pytest.mark.parametrize(("field", "value"), CORRUPT_VALUES,
                         ids=[f"{f}={val!r}" for f, val in CORRUPT_VALUES])
def test_corrupt_value_is_never_dialled(field: str, value: str, fr_config: Config) -> None:
    fields = {**forward(), field: value}
    if field == "forward_target":
        planted = value
    else:
        fields["forward_enabled"] = "0"
        planted = json.loads(value)[0]
    route = decide(EXT, fields, COMPANY, fr_config)
    assert route.status == v.STATUS_FALLBACK
    assert route.reason.startswith("corrupt")
    for used in (route.dial, route.target, route.callerid, route.diversion):
        assert planted not in used
    assert route.dial == "PJSIP/1001"


def test_status_is_always_set_last(fr_config: Config) -> None:
    names = [name for name, _ in decide(EXT, forward(), COMPANY, fr_config).variables()]
    assert names == list(v.ALL)
    assert names[-1] == v.STATUS


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


@pytest.mark.parametrize(("ext", "status", "dial", "mailbox"), [
    ("1001", v.STATUS_FALLBACK, "PJSIP/1001", "1001@default"),
    ("1001&x", v.STATUS_INVALID, "", ""),
], ids=["valid", "invalid"])
def test_fallback_route(ext: str, status: str, dial: str, mailbox: str,
                        fr_config: Config) -> None:
    route = routing.fallback(ext, fr_config, "store: timeout")
    assert (route.status, route.dial, route.mailbox) == (status, dial, mailbox)

"""Corrupt or hostile stored values: never dialled, each reported and classed for the
metrics; and the route a call gets when the settings can't be read."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from agi import routing
from agi import variables as v
from agi.config import Config, load
from agi.routing import decide
from tests.routing_rows import (
    COMPANY,
    COMPANY_NUMBER,
    DESK,
    EXT,
    INJECTION,
    MOBILE,
    MOBILE_2,
    OTHER_DID,
    TRUNK,
    expect,
    externals,
    forward,
    leg,
)

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
    ("external_devices", json.dumps([{"number": "+49301234567", "delay": 5}])),
    ("external_devices", json.dumps([{"number": "+33612345678&PJSIP/itsp/0088"}])),
    ("external_devices", json.dumps([{"number": "+33899123456", "ring": 30}])),
]


@pytest.mark.parametrize(("field", "value"), CORRUPT_VALUES,
                         ids=[f"{f}={val!r}" for f, val in CORRUPT_VALUES])
def test_corrupt_value_is_never_dialled(field: str, value: str, fr_config: Config) -> None:
    fields = {**forward(), field: value}
    if field == "forward_target":
        planted = value
    else:
        fields["forward_enabled"] = "0"
        entry = json.loads(value)[0]
        planted = entry if isinstance(entry, str) else entry["number"]
    route = decide(EXT, fields, COMPANY, fr_config)
    assert route.status == v.STATUS_FALLBACK
    assert route.reason.startswith(("corrupt", "an entry"))
    for used in (route.dial, route.target, route.callerid, route.diversion, route.next_dial,
                 route.desks, route.callerid_retry):
        assert planted not in used
    assert route.dial == "PJSIP/1001"


# Stored external_devices entries that are dropped (reported), each next to a good one.
CORRUPT_DEVICE_ENTRIES = [
    {"number": MOBILE_2, "require_keypress": "yes"},
    {"number": MOBILE_2, "require_keypress": 1},
    {"number": MOBILE_2, "delay": -1},
    {"number": MOBILE_2, "delay": 61},
    {"number": MOBILE_2, "delay": "5"},
    {"number": MOBILE_2, "delay": 5.0},
    {"number": MOBILE_2, "delay": True},
    {"number": MOBILE_2, "ring": 4},
    {"number": MOBILE_2, "ring": 121},
    {"number": MOBILE_2, "ring": 0},
    {"number": MOBILE_2, "ring": None, "delay": None},
    {"number": 33698765432},
    {"number": "0698765432"},
    {"number": INJECTION},
    {"delay": 5},
    33698765432,
    [MOBILE_2],
    None,
]


@pytest.mark.parametrize("entry", CORRUPT_DEVICE_ENTRIES, ids=repr)
def test_corrupt_external_device_entry_is_dropped(entry: object, fr_config: Config) -> None:
    fields = {"devices": DESK, "external_devices": externals(entry, MOBILE)}
    assert dict(decide(EXT, fields, {}, fr_config).variables()) == expect(
        mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE)}", trunk=TRUNK,
        reason="corrupt entry in external_devices", status=v.STATUS_FALLBACK)


# Stored confirm_* values that are ignored (reported): the dialplan's globals apply.
CORRUPT_CONFIRM = [
    ("confirm_tries", "0"), ("confirm_tries", "10"), ("confirm_tries", "x"),
    ("confirm_tries", "+3"), ("confirm_tries", " 3"), ("confirm_timeout", "0"),
    ("confirm_timeout", "31"), ("confirm_timeout", "5s"), ("confirm_prompt", "a" * 65),
    ("confirm_prompt", "custom/../x"), ("confirm_prompt", "/etc/passwd"),
    ("confirm_prompt", "press1.gsm"), ("confirm_prompt", "a b"), ("confirm_prompt", "a&b"),
    ("confirm_prompt", "custom//x"), ("confirm_prompt", "x/"), ("confirm_prompt", INJECTION),
    ("confirm_prompt", "caf\u00e9"),
]


@pytest.mark.parametrize(("field", "value"), CORRUPT_CONFIRM, ids=repr)
def test_corrupt_confirm_setting_is_ignored(field: str, value: str, fr_config: Config) -> None:
    route = decide(EXT, forward(forward_require_keypress="1", **{field: value}), {}, fr_config)
    assert (route.status, route.reason) == (v.STATUS_FALLBACK, f"corrupt {field}")
    assert (route.ask_tries, route.ask_timeout, route.ask_prompt) == ("", "", "")
    assert (route.mode, route.dial, route.confirm) == (v.MODE_FORWARD, leg(MOBILE, True), True)


@pytest.mark.parametrize(("ext", "status", "dial", "mailbox"), [
    ("1001", v.STATUS_FALLBACK, "PJSIP/1001", "1001@default"),
    ("1001&x", v.STATUS_INVALID, "", ""),
], ids=["valid", "invalid"])
def test_fallback_route(ext: str, status: str, dial: str, mailbox: str,
                        fr_config: Config) -> None:
    route = routing.fallback(ext, fr_config, "store: timeout")
    assert (route.status, route.dial, route.mailbox) == (status, dial, mailbox)


@pytest.mark.parametrize("fields", [
    {},  # unknown extension
    {"devices": DESK},  # no stored mailbox
    {"devices": DESK, "mailbox": "x@y@z"},  # a corrupt one
    {"devices": DESK, "mailbox": ""},
], ids=["unknown-extension", "no-mailbox", "corrupt-mailbox", "empty-mailbox"])
def test_default_mailbox_is_in_the_configured_context(
        fields: dict[str, str], config_env: Callable[..., dict[str, str]]) -> None:
    config = load(config_env(voicemail_context="office"))
    assert decide(EXT, fields, {}, config).mailbox == "1001@office"
    assert decide(EXT, {"devices": DESK, "mailbox": "sales@default"}, {},
                  config).mailbox == "sales@default"
    assert routing.fallback(EXT, config, "store: timeout").mailbox == "1001@office"


# The class of a FALLBACK's reason (Route.fault), which the metrics count: the first
# problem's, from the data the decision read, never from the reason's text.
FAULTS = [
    ("ok", forward(MOBILE), {}, ""),
    ("unknown-extension", {}, {}, ""),
    ("corrupt-flag", {"devices": DESK, "forward_enabled": "yes"}, {}, routing.FAULT_CORRUPT),
    ("corrupt-devices", {"devices": "[oops"}, {}, routing.FAULT_CORRUPT),
    ("corrupt-target", forward("+3315"), {}, routing.FAULT_CORRUPT),
    ("missing-target", {"devices": DESK, "forward_enabled": "1"}, {}, routing.FAULT_INVALID),
    ("premium-target", forward("+33899123456"), {}, routing.FAULT_INVALID),
    ("own-number-target", forward(COMPANY_NUMBER), COMPANY, routing.FAULT_INVALID),
    ("corrupt-did-map-target", forward(OTHER_DID), {f"did:{OTHER_DID}": "x&y"},
     routing.FAULT_CORRUPT),
    ("foreign-external", {"devices": DESK, "external_devices": externals("+33899123456")},
     {}, routing.FAULT_INVALID),
    ("corrupt-then-refused", {**forward("+33899123456"), "forward_require_keypress": "2"},
     {},
     routing.FAULT_CORRUPT),
    ("unknown-extension-corrupt-language", {}, {"language": "xx!"}, routing.FAULT_CORRUPT),
]


@pytest.mark.parametrize(("fields", "company", "fault"), [case[1:] for case in FAULTS],
                         ids=[case[0] for case in FAULTS])
def test_fallback_reason_class(fields: dict[str, str], company: dict[str, str], fault: str,
                               fr_config: Config) -> None:
    route = decide(EXT, fields, company, fr_config)
    assert (route.status == v.STATUS_FALLBACK, route.fault) == (bool(fault), fault)


def test_store_fallback_class(fr_config: Config) -> None:
    assert routing.fallback(EXT, fr_config, "store: x").fault == routing.FAULT_STORE_DOWN
    assert routing.fallback(EXT, fr_config, "store: x", timeout=True).fault \
        == routing.FAULT_STORE_TIMEOUT
    assert routing.fallback("1&x", fr_config, "store: x").fault == ""

"""The routing decision as a table: stored settings in, channel variables out.

`decide` is the whole product logic of a call. Each row gives the complete set of
variables the dialplan will see, so any change of behaviour shows up as a failing row.
Corrupt rows also check the security rule: a value that fails its guard is never dialled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

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
OTHER_DID = "+33142685302"  # extension 1002's DID
# The company hash with its DID map, as the CLI maintains it.
DID_MAP = {**COMPANY, f"did:{DID}": "1001", f"did:{OTHER_DID}": "1002"}


def externals(*entries: object) -> str:
    return json.dumps(list(entries))


def leg(number: str, keypress: bool = False, delay: int = 0, ring: int = 0) -> str:
    return f"Local/{number}-{int(keypress)}-{delay}-{ring}@callroute-external/n"


def hop(ext: str) -> str:
    return f"Local/{ext}@callroute-hop/n"


def expect(*, mode: str, dial: str = "", target: str = "", confirm: str = "",
           callerid: str = "", diversion: str = "", mailbox: str = "1001@default",
           trunk: str = "", reason: str = "", ringtime: str = "", next_dial: str = "",
           next_on: str = "", desks: str = "", ask_tries: str = "", ask_timeout: str = "",
           ask_prompt: str = "", callerid_retry: str = "", forwarding: str | None = None,
           status: str = v.STATUS_OK) -> dict[str, str]:
    """The channel variables one decision sets: the non-empty ones (unspecified ones
    must be empty, so not sent at all).

    FORWARDING defaults to "1" exactly in FORWARD mode; rows with conditional forwarding
    (MODE RING and a NEXT_DIAL) say "1" themselves.
    """
    if forwarding is None:
        forwarding = "1" if mode == v.MODE_FORWARD else ""
    every = {v.MODE: mode, v.DIAL: dial, v.TARGET: target, v.CONFIRM: confirm,
            v.CALLERID: callerid, v.DIVERSION: diversion, v.MAILBOX: mailbox,
            v.TRUNK: trunk, v.REASON: reason, v.RINGTIME: ringtime, v.NEXT_DIAL: next_dial,
            v.NEXT_ON: next_on, v.DESKS: desks, v.ASK_TRIES: ask_tries,
            v.ASK_TIMEOUT: ask_timeout, v.ASK_PROMPT: ask_prompt,
            v.CALLERID_RETRY: callerid_retry, v.FORWARDING: forwarding, v.STATUS: status}
    sent = {name: value for name, value in every.items() if value}
    if "@callroute-external/" in dial + next_dial:
        sent |= inherited(every)
    return sent


def inherited(decision: dict[str, str]) -> dict[str, str]:
    """What a decision with an external leg also sends for the legs to inherit: every
    one of v.LEG_ALL, the empty ones too."""
    return {v.LEG_TRUNK: decision[v.TRUNK], v.LEG_CONFIRM: decision[v.CONFIRM],
            v.LEG_CALLERID: decision[v.CALLERID],
            v.LEG_CALLERID_RETRY: decision[v.CALLERID_RETRY],
            v.LEG_DIVERSION: decision[v.DIVERSION], v.LEG_TRIES: decision[v.ASK_TRIES],
            v.LEG_TIMEOUT: decision[v.ASK_TIMEOUT], v.LEG_PROMPT: decision[v.ASK_PROMPT],
            v.LEG_LANGUAGE: decision.get(v.LANGUAGE, ""),
            v.LEG_REASON: "cfu" if decision[v.MODE] == v.MODE_FORWARD else "follow_me"}


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
    # ---- caller ID on external legs ----
    ("original-fallback-forward", EXT, forward(forward_caller_id="original-fallback"),
     COMPANY, expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK,
                     diversion=COMPANY_NUMBER, callerid_retry=COMPANY_NUMBER)),
    ("original-fallback-without-company-number-is-original", EXT,
     forward(forward_caller_id="original-fallback"), {"name": "Acme"},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("original-fallback-external-devices", EXT,
     {"devices": DESK, "external_devices": externals(MOBILE_2),
      "forward_caller_id": "original-fallback"}, COMPANY,
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2)}", trunk=TRUNK,
            diversion=COMPANY_NUMBER, callerid_retry=COMPANY_NUMBER)),
    ("original-fallback-desks-only-no-retry", EXT,
     {"devices": DESK, "forward_caller_id": "original-fallback"}, COMPANY, RING_DESK),
    ("original-fallback-next-dial-counts", EXT,
     forward(forward_caller_id="original-fallback", forward_when="busy"), COMPANY,
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            diversion=COMPANY_NUMBER, next_dial=leg(MOBILE), next_on="BUSY",
            callerid_retry=COMPANY_NUMBER, forwarding="1")),
    ("company-caller-id-next-dial-counts", EXT,
     forward(forward_caller_id="company", forward_when="busy"), COMPANY,
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=MOBILE, trunk=TRUNK,
            callerid=COMPANY_NUMBER, diversion=COMPANY_NUMBER, next_dial=leg(MOBILE),
            next_on="BUSY", forwarding="1")),
    # ---- external devices: object form and the old plain form ----
    ("device-object-all-settings", EXT,
     {"devices": DESK, "external_devices": externals(
         {"number": MOBILE_2, "require_keypress": True, "delay": 5, "ring": 30})}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2, True, 5, 30)}", confirm="1",
            trunk=TRUNK)),
    ("device-object-number-only-is-the-plain-form", EXT,
     {"devices": DESK, "external_devices": externals({"number": MOBILE_2})}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2)}", trunk=TRUNK)),
    ("device-object-boundaries", EXT,
     {"devices": DESK, "external_devices": externals(
         {"number": MOBILE_2, "delay": 60, "ring": 120}, {"number": MOBILE, "ring": 5})}, {},
     expect(mode=v.MODE_RING,
            dial=f"PJSIP/1001&{leg(MOBILE_2, False, 60, 120)}&{leg(MOBILE, False, 0, 5)}",
            trunk=TRUNK)),
    ("device-keypress-false-overrides-extension", EXT,
     {"devices": DESK, "forward_require_keypress": "1", "external_devices": externals(
         {"number": MOBILE_2, "require_keypress": False}, MOBILE)}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2)}&{leg(MOBILE, True)}",
            confirm="1", trunk=TRUNK)),
    ("device-keypress-false-only-confirm-0", EXT,
     {"devices": DESK, "forward_require_keypress": "1", "external_devices": externals(
         {"number": MOBILE_2, "require_keypress": False})}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2)}", trunk=TRUNK)),
    ("device-unknown-keys-ignored", EXT,
     {"devices": DESK, "external_devices": externals(
         {"number": MOBILE_2, "label": "mobile", "colour": INJECTION})}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2)}", trunk=TRUNK)),
    ("device-same-number-twice-first-wins", EXT,
     {"devices": DESK, "external_devices": externals(
         {"number": MOBILE_2, "delay": 10}, MOBILE_2)}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2, False, 10)}", trunk=TRUNK)),
    ("device-corrupt-object-dropped", EXT,
     {"devices": DESK, "external_devices": externals(
         {"number": MOBILE_2, "delay": 61}, MOBILE)}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE)}", trunk=TRUNK,
            reason="corrupt entry in external_devices", status=v.STATUS_FALLBACK)),
    # ---- externals_during_calls ----
    ("externals-quiet-during-calls", EXT,
     {"devices": TWO_DESKS, "external_devices": externals(MOBILE),
      "externals_during_calls": "0"}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&PJSIP/1001b&{leg(MOBILE)}", trunk=TRUNK,
            desks="PJSIP/1001&PJSIP/1001b")),
    ("externals-quiet-no-externals-no-desks-variable", EXT,
     {"devices": TWO_DESKS, "externals_during_calls": "0"}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001&PJSIP/1001b")),
    ("externals-quiet-no-desks", EXT,
     {"devices": "[]", "external_devices": externals(MOBILE),
      "externals_during_calls": "0"}, {},
     expect(mode=v.MODE_RING, dial=leg(MOBILE), trunk=TRUNK)),
    ("externals-quiet-forward-always-only-target", EXT,
     forward(external_devices=externals(MOBILE_2), externals_during_calls="0"), {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE), target=MOBILE, trunk=TRUNK)),
    ("externals-quiet-conditional", EXT,
     forward(forward_when="noanswer", external_devices=externals(MOBILE_2),
             externals_during_calls="0"), {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE_2)}", target=MOBILE,
            trunk=TRUNK, ringtime="20", next_dial=leg(MOBILE), next_on="NOANSWER",
            desks="PJSIP/1001", forwarding="1")),
    ("externals-quiet-hop-counts-as-external", EXT,
     {"devices": DESK, "external_devices": externals(OTHER_DID),
      "externals_during_calls": "0"}, DID_MAP,
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{hop('1002')}", desks="PJSIP/1001")),
    ("externals-during-calls-1", EXT,
     {"devices": DESK, "external_devices": externals(MOBILE),
      "externals_during_calls": "1"}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE)}", trunk=TRUNK)),
    ("externals-during-calls-bogus-rings-all", EXT,
     {"devices": DESK, "external_devices": externals(MOBILE),
      "externals_during_calls": "no"}, {},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE)}", trunk=TRUNK,
            reason="corrupt externals_during_calls", status=v.STATUS_FALLBACK)),
    # ---- per-extension confirmation settings ----
    ("confirm-settings", EXT,
     forward(forward_require_keypress="1", confirm_tries="2", confirm_timeout="8",
             confirm_prompt="custom/press-1"), {},
     expect(mode=v.MODE_FORWARD, dial=leg(MOBILE, True), target=MOBILE, confirm="1",
            trunk=TRUNK, ask_tries="2", ask_timeout="8", ask_prompt="custom/press-1")),
    ("confirm-settings-boundaries", EXT,
     {"devices": DESK, "confirm_tries": "9", "confirm_timeout": "30",
      "confirm_prompt": "a" * 64}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", ask_tries="9", ask_timeout="30",
            ask_prompt="a" * 64)),
    ("confirm-settings-low-boundaries-and-leading-zero", EXT,
     {"devices": DESK, "confirm_tries": "1", "confirm_timeout": "01", "confirm_prompt": "x"},
     {}, expect(mode=v.MODE_RING, dial="PJSIP/1001", ask_tries="1", ask_timeout="1",
                ask_prompt="x")),
    ("confirm-settings-empty-mean-absent", EXT,
     {"devices": DESK, "confirm_tries": "", "confirm_timeout": "", "confirm_prompt": ""}, {},
     RING_DESK),
    ("confirm-settings-corrupt-ignored", EXT,
     {"devices": DESK, "confirm_tries": "0", "confirm_timeout": "31",
      "confirm_prompt": "../../etc/passwd"}, {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001",
            reason="corrupt confirm_tries; corrupt confirm_timeout; corrupt confirm_prompt",
            status=v.STATUS_FALLBACK)),
    # ---- hop legs: another extension's DID is not dialled out ----
    ("hop-forward-to-another-extensions-did", EXT,
     forward(OTHER_DID, forward_require_keypress="1", forward_caller_id="company", did=DID),
     DID_MAP, expect(mode=v.MODE_FORWARD, dial=hop("1002"), target=OTHER_DID)),
    ("hop-conditional-forward", EXT,
     forward(OTHER_DID, forward_when="noanswer", did=DID), DID_MAP,
     expect(mode=v.MODE_RING, dial="PJSIP/1001", target=OTHER_DID, ringtime="20",
            next_dial=hop("1002"), next_on="NOANSWER", forwarding="1")),
    ("hop-external-device-with-a-real-one", EXT,
     {"devices": DESK, "did": DID, "external_devices": externals(
         {"number": OTHER_DID, "delay": 5, "require_keypress": True}, MOBILE)}, DID_MAP,
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{hop('1002')}&{leg(MOBILE)}", trunk=TRUNK,
            diversion=DID)),
    ("hop-even-where-dialling-out-would-be-refused", EXT, forward("+33899123456"),
     {"did:+33899123456": "1002"},
     expect(mode=v.MODE_FORWARD, dial=hop("1002"), target="+33899123456")),
    ("hop-own-did-by-the-map-is-refused", EXT, forward(DID), DID_MAP,
     expect(mode=v.MODE_RING, dial="PJSIP/1001",
            reason="forward_target is the company's own number", status=v.STATUS_FALLBACK)),
    ("hop-own-did-field-is-refused", EXT, forward(OTHER_DID, did=OTHER_DID), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001",
            reason="forward_target is the company's own number", status=v.STATUS_FALLBACK)),
    ("hop-company-number-is-refused", EXT, forward(COMPANY_NUMBER),
     {**DID_MAP, f"did:{COMPANY_NUMBER}": "1002"},
     expect(mode=v.MODE_RING, dial="PJSIP/1001",
            reason="forward_target is the company's own number", status=v.STATUS_FALLBACK)),
    ("hop-corrupt-did-map-entry-is-refused", EXT, forward(OTHER_DID),
     {f"did:{OTHER_DID}": "1002&PJSIP/evil"},
     expect(mode=v.MODE_RING, dial="PJSIP/1001",
            reason="forward_target is a DID whose entry in the company's DID map is corrupt",
            status=v.STATUS_FALLBACK)),
    ("hop-external-own-did-refused", EXT,
     {"devices": DESK, "external_devices": externals(DID, MOBILE)}, DID_MAP,
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{leg(MOBILE)}", trunk=TRUNK,
            diversion=COMPANY_NUMBER,
            reason="an entry in external_devices is the company's own number",
            status=v.STATUS_FALLBACK)),
    ("hop-two-dids-of-one-extension-ring-it-once", EXT,
     {"devices": DESK, "external_devices": externals(OTHER_DID, "+33142685309")},
     {**DID_MAP, "did:+33142685309": "1002"},
     expect(mode=v.MODE_RING, dial=f"PJSIP/1001&{hop('1002')}")),
    ("forwarding-0-when-target-refused", EXT, forward("+447911123456"), {},
     expect(mode=v.MODE_RING, dial="PJSIP/1001", reason="corrupt forward_target",
            forwarding="", status=v.STATUS_FALLBACK)),
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

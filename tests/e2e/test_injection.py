"""Injection: hostile text in Redis and in the caller ID never reaches Dial() or AGI.

Every case is one real call through the test PBX, in both AGI modes. What counts is
what the peers received and what Asterisk executed:

- the carrier gets no INVITE, or only INVITEs for an exact, allowed E.164 number;
- no desk phone but 1001 rings, and the call is not lost (1001 answers);
- the PBX holds no channel afterwards (the autouse fixture checks);
- Asterisk's log for this call (AGI debug on) shows that the agent sent only
  `EXEC MSet` setting `CALLROUTE_*` (and inherited `__CALLROUTE_LEG_*`) variables,
  `SET VARIABLE CALLROUTE_*` and `VERBOSE`
  commands, each one line and in sync with Asterisk's replies (no other EXEC, no
  other application), and that every Dial() it ran has only allowed legs
  (PJSIP/1001, or Local/<allowed E.164>@callroute-external/n and its trunk leg) and
  only our own options.

Redis payloads are planted directly with redis-py (the CLI would refuse them), in
every field of callroute:ext:1001 and callroute:company: alone, appended to a valid
value (`+33612345678&...`), and as an entry of the JSON device lists.

Caller ID payloads are what SIPp can put in a well-formed INVITE (tests/e2e/scenarios/
uac_call.xml, variables `caller` and `caller_name`):
- From display name (a quoted-string, so `"` and `\\` travel as quoted-pairs and a
  raw CR/LF is impossible): `a\\"b,c(d)&e\\\\f`, `EXEC Dial PJSIP/1002`, non-ASCII
  UTF-8 (`Zoé ☎`) and a 200-character name;
- From user part: `& , ( ) ; = / +` are legal there as they are (RFC 3261
  user-unreserved and mark), so `+33611111111&PJSIP/1002,1,U(evil)` and
  `+33611111111;x=(y)` go raw; `"`, `\\`, CR/LF, space and non-ASCII go %-escaped
  (`%22`, `%5C`, `%0D%0A`, `%20`, `%E2%98%8E`), which PJSIP unescapes into
  CALLERID(num).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.asterisk_parser import parse_args, set_pairs
from tests.harness.calls import CALLER_NUMBER, COMPANY_NUMBER, DIDS, CallResult, carrier, desk
from tests.harness.pbx import TestPBX

TARGET = "+33612345678"
MOBILE = "+33698765432"
HOLD_MS = 1000
DESKS = ("1001", "1002", "1003")

LONG = "+336" + "1" * 4996  # 5000 characters, all digits: only its length is wrong
PAYLOADS = {
    "ampersand": "&",
    "comma": ",",
    "open-paren": "(",
    "close-paren": ")",
    "quote": '"',
    "backslash": "\\",
    "newline": "\n",
    "crlf": "\r\n",
    "long": LONG,
    "fullwidth-digit": "+33\uff1612345678",  # a FULLWIDTH DIGIT SIX: isdigit() is True for it
    "e-acute": "\u00e9",
    "telephone-sign": "\u260e",
    "second-leg": "+33612345678&PJSIP/00881234@carrier",
    "dial-options": "PJSIP/1002,1,U(evil)",
    "agi-command": '+33612345678"\nEXEC Dial PJSIP/carrier/sip:+447911123456',
}
# Text that appears only in planted values: none of it may reach a Dial() line.
MARKERS = ("evil", "00881234", "447911123456", "EXEC", "\u260e", "\uff16")


# ----------------------------------------------------------------------------------
# What Asterisk did during one call


@dataclass
class Traced:
    result: CallResult
    log: str  # Asterisk's log written during the call, AGI debug on

    def describe(self) -> str:
        return self.result.describe() + "\n--- Asterisk log (Dial/AGI lines) ---\n" + "\n".join(
            line[-300:] for line in self.log.splitlines()
            if "Dial(" in line or "AGI" in line or "callroute" in line)


@pytest.fixture
def traced_call(pbx: TestPBX, call: Callable[..., CallResult]) -> Iterator[Callable[..., Traced]]:
    """`call`, plus the part of Asterisk's log it wrote, with AGI debug on."""
    pbx.asterisk_rx("agi set debug on")

    def run(ext: str, callees: list, **options: object) -> Traced:
        start = pbx.log_file.stat().st_size if pbx.log_file.exists() else 0
        result = call(ext, callees, hold_ms=HOLD_MS, **options)
        with pbx.log_file.open("rb") as handle:
            handle.seek(start)
            log = handle.read().decode("utf-8", "replace")
        return Traced(result, log)

    try:
        yield run
    finally:
        pbx.asterisk_rx("agi set debug off")


_DIAL = re.compile(r'Dial\("[^"\n]*", "(?P<args>[^\n]*)"\) in new stack$', re.MULTILINE)
_CONFIRM_OPTION = re.compile(
    r"iU\(callroute-confirm\^Local/\+\d+-1-\d{1,2}-\d{1,3}@callroute-external-\w+;1\)")
# Each command the agent sends, as `agi set debug on` logs it (its first line).
_AGI_RX = re.compile(r"AGI Rx << (?P<command>.*)$", re.MULTILINE)
_AGI_TX_REPLY = re.compile(r"AGI Tx >> (?P<reply>\d{3} .*)$", re.MULTILINE)
_AGI_TX_SPLIT = re.compile(r"AGI Tx >> [^\n]*\n(?!\[)")
_SAFE_COMMAND = re.compile(
    r'(SET VARIABLE CALLROUTE_[A-Z_]+ |VERBOSE |EXEC MSet )"(?:[^"\\]|\\.)*"( \d+)?')
_EXECUTED_APP = re.compile(r"AGI Script Executing Application: \((?P<app>[^)]*)\)")


def assert_only_allowed_dials(traced: Traced, numbers: tuple[str, ...] = ()) -> None:
    """Every Dial() in the call dialled only desk 1001 or an allowed external number."""
    log = traced.log
    allowed = {"PJSIP/1001"} | {f"PJSIP/{number}@carrier" for number in numbers}
    # An external leg: the number, then its keypress flag, delay and ring time.
    leg = re.compile("|".join(rf"Local/{re.escape(number)}-[01]-\d{{1,2}}-\d{{1,3}}"
                              r"@callroute-external/n" for number in numbers) or "(?!)")
    dials = [m.group("args") for m in _DIAL.finditer(log)]
    # A Dial() whose arguments held a newline would not match _DIAL: count them all.
    assert len(dials) == log.count("Dial(\""), traced.describe()
    assert dials, f"no Dial() at all\n{traced.describe()}"
    for args in dials:
        legs, *options = args.split(",")
        assert all(part in allowed or leg.fullmatch(part) for part in legs.split("&")), \
            f"Dial({args})\n{traced.describe()}"
        assert len(options) <= 2, f"Dial({args})\n{traced.describe()}"
        if options:
            assert options[0].isdigit(), f"Dial({args})\n{traced.describe()}"
        if len(options) == 2:
            assert options[1] == "i" or _CONFIRM_OPTION.fullmatch(options[1]), \
                f"Dial({args})\n{traced.describe()}"
        for marker in MARKERS:
            assert marker not in args, f"Dial({args})\n{traced.describe()}"


def assert_agent_spoke_clean_agi(traced: Traced, status: str) -> None:
    """The agent ran, set its variables with well-formed commands only, and stayed in
    sync with Asterisk: one 200 reply per command, and the decision `status`."""
    log = traced.log
    commands = [m.group("command") for m in _AGI_RX.finditer(log)]
    assert commands, f"the agent sent no AGI command\n{traced.describe()}"
    for command in commands:
        assert _SAFE_COMMAND.fullmatch(command), f"AGI command {command!r}\n{traced.describe()}"
    # What the MSets set, as Asterisk's MSet splits them: CALLROUTE_* names only (the
    # ones the external legs inherit: __CALLROUTE_LEG_*).
    sets = dict(set_pairs([parse_args(command) for command in commands]))
    assert sets and all(name.startswith(("CALLROUTE_", "__CALLROUTE_LEG_"))
                        for name in sets), traced.describe()
    # Asterisk logs each line it sends the agent on its own "[date] VERBOSE" line: a
    # bare line right after one is a newline Asterisk sent inside a value.
    assert not _AGI_TX_SPLIT.search(log), f"a line broke the AGI stream\n{traced.describe()}"
    replies = [m.group("reply") for m in _AGI_TX_REPLY.finditer(log)]
    assert len(replies) == len(commands), traced.describe()
    assert all(reply.startswith("200 result=") for reply in replies), traced.describe()
    assert sets.get("CALLROUTE_STATUS") == status, traced.describe()
    apps = {m.group("app") for m in _EXECUTED_APP.finditer(log)}
    assert apps == {"MSet"}, traced.describe()  # the only application the agent ran
    assert "agent failed" not in log, traced.describe()
    assert "refused a command" not in log, traced.describe()


def assert_desk_1001_took_the_call(traced: Traced, others: tuple[str, ...]) -> None:
    result = traced.result
    for ext in others:
        assert not result.rang(f"desk {ext}"), traced.describe()
    assert result.connected_to("desk 1001"), traced.describe()
    assert result.caller_answered() and result.caller_hung_up_itself(), traced.describe()
    assert not result.voicemail_left(), traced.describe()


def appended(valid: str, payload: str) -> str:
    """The payload after a valid value; a payload that is already a whole attack as is."""
    return payload if payload.startswith(("+", "PJSIP/")) else valid + payload


# ----------------------------------------------------------------------------------
# Hostile values planted in Redis


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_hostile_value_in_every_field_rings_only_the_desk_phone(store, traced_call, payload):
    """Forwarding is on, and every other field of the extension and the company is
    hostile: nothing external is dialled, and desk 1001 (the default device) rings."""
    store.hset("callroute:ext:1001", mapping={
        "forward_enabled": "1",
        "forward_target": appended(TARGET, payload),
        "devices": json.dumps([payload, appended("PJSIP/1001", payload)]),
        "external_devices": json.dumps([payload, appended(MOBILE, payload)]),
        "forward_caller_id": "company" + payload,
        "forward_require_keypress": "1" + payload,
        "mailbox": "1001@default" + payload,
        "did": appended(DIDS["1001"], payload),
        "language": "fr" + payload,
    })
    store.hset("callroute:company", mapping={
        "caller_id": appended(COMPANY_NUMBER, payload),
        "name": payload,
        "language": "fr" + payload,
    })
    traced = traced_call("1001", [desk("1001"), desk("1002"), desk("1003"), carrier()])
    assert not traced.result.rang("carrier"), traced.describe()
    assert_desk_1001_took_the_call(traced, others=("1002", "1003"))
    assert_only_allowed_dials(traced)
    assert_agent_spoke_clean_agi(traced, "FALLBACK")
    assert "CALLROUTE_LANGUAGE" not in traced.log, traced.describe()


@pytest.mark.parametrize("language", ["fr;Dial(PJSIP/1002)", "../../etc", "fr\nEXEC Dial"],
                         ids=["dial", "path", "agi-command"])
def test_hostile_language_never_reaches_the_channel(store, traced_call, language):
    """A stored language (the extension's and the company's) that is not a language
    code: the agent ignores it (FALLBACK), the external leg still asks and connects,
    in the PBX's own language, and no CHANNEL(language) is ever set."""
    store.hset("callroute:ext:1001", mapping={
        "forward_enabled": "1", "forward_target": TARGET, "forward_require_keypress": "1",
        "language": language})
    store.hset("callroute:company", "language", language)
    traced = traced_call("1001", [desk("1002"),
                                  carrier("uas_answer_press", digit="1", press_after_ms="1500")])
    assert traced.result.connected_to("carrier"), traced.describe()
    assert_only_allowed_dials(traced, numbers=(TARGET,))
    assert_agent_spoke_clean_agi(traced, "FALLBACK")
    assert "CALLROUTE_LANGUAGE" not in traced.log, traced.describe()
    assert "CHANNEL(language)" not in traced.log, traced.describe()
    spoken = re.findall(r"Playing '[^']+' \(language '([^']*)'\)", traced.log)
    assert spoken and set(spoken) == {"en"}, traced.describe()


@pytest.mark.parametrize("payload", [
    PAYLOADS["second-leg"], PAYLOADS["dial-options"], PAYLOADS["agi-command"],
    PAYLOADS["crlf"], LONG,
], ids=["second-leg", "dial-options", "agi-command", "crlf", "long"])
def test_hostile_entries_beside_valid_ones_dial_only_the_valid_ones(store, traced_call,
                                                                    payload):
    """Valid entries next to hostile ones: the valid ones are used exactly as stored.

    forward_enabled is hostile (so forwarding counts as off), the device lists mix
    good and planted entries, and the company number is the one valid caller ID: the
    carrier is asked for MOBILE only, showing the company number, and desk 1001 rings.
    """
    store.hset("callroute:ext:1001", mapping={
        "forward_enabled": "1" + payload,
        "forward_target": TARGET,
        "devices": json.dumps(["PJSIP/1001", payload, appended("PJSIP/1002", payload)]),
        "external_devices": json.dumps([payload, MOBILE, appended(TARGET, payload)]),
        "forward_caller_id": "company",
        "forward_require_keypress": "0",
        "mailbox": payload,
        "did": appended(DIDS["1001"], payload),
    })
    store.hset("callroute:company", mapping={"caller_id": COMPANY_NUMBER, "name": payload})
    traced = traced_call("1001", [desk("1001", answer_delay_ms="1500"), desk("1002"),
                                  carrier("uas_ring_noanswer")])
    result = traced.result
    assert result.carrier_numbers() == [MOBILE], traced.describe()
    assert result.caller_id_at("carrier") == COMPANY_NUMBER, traced.describe()
    assert result.diversion_at("carrier") == COMPANY_NUMBER, traced.describe()  # did is bad
    assert result.callees["carrier"].got_cancel(), traced.describe()
    assert_desk_1001_took_the_call(traced, others=("1002",))
    assert_only_allowed_dials(traced, numbers=(MOBILE,))
    assert_agent_spoke_clean_agi(traced, "FALLBACK")


# ----------------------------------------------------------------------------------
# Hostile caller ID (From display name and user part)

CALLERS = {
    "dial-syntax": ("+33611111111&PJSIP/1002,1,U(evil)", 'a\\"b,c(d)&e\\\\f'),
    "escaped-agi-command": ("+33611111111%22%5C%0D%0AEXEC%20Dial%20PJSIP/1002",
                            "EXEC Dial PJSIP/1002"),
    "params-non-ascii-long": ("+33611111111%E2%98%8E;x=(y)",
                              "Zo\u00e9 \u260e " + "x" * 200),
}


@pytest.mark.parametrize("forward", [True, False], ids=["forward-on", "forward-off"])
@pytest.mark.parametrize(("number", "name"), list(CALLERS.values()), ids=list(CALLERS))
def test_hostile_caller_id_is_passed_through_as_data(cli, traced_call, number, name,
                                                     forward):
    """The agent never acts on the caller ID, and Asterisk carries it as data.

    Forwarding on (caller ID original): the carrier is asked for TARGET only and
    connects; its From and P-Asserted-Identity start with the caller's real digits.
    Forwarding off: desk 1001 alone rings and takes the call.
    """
    if forward:
        cli("forward", "on", "1001", TARGET, "--caller-id", "original")
        callees = [desk("1001"), desk("1002"), carrier()]
    else:
        callees = [desk("1001"), desk("1002")]
    traced = traced_call("1001", callees, caller_number=number,
                         caller_variables={"caller_name": name})
    result = traced.result
    assert result.caller_answered() and result.caller_hung_up_itself(), traced.describe()
    assert not result.rang("desk 1002"), traced.describe()
    if forward:
        assert result.carrier_numbers() == [TARGET], traced.describe()
        assert result.connected_to("carrier"), traced.describe()
        assert not result.rang("desk 1001"), traced.describe()
        for shown in (result.caller_id_at("carrier"), result.pai_at("carrier")):
            assert shown is not None and shown.startswith(CALLER_NUMBER), traced.describe()
        assert_only_allowed_dials(traced, numbers=(TARGET,))
    else:
        assert_desk_1001_took_the_call(traced, others=("1002",))
        assert_only_allowed_dials(traced)
    assert_agent_spoke_clean_agi(traced, "OK")


# A From user that, unfiltered, ends Asterisk's AGI environment after a forged
# agi_arg_1, then answers the agent's commands itself (PJSIP unescapes %0A and %3A).
FORGED_ENVIRONMENT = "+336%0Aagi_arg_1%3A1002%0A%0A" + "200%0A" * 12


def test_newline_in_caller_id_cannot_forge_the_agi_environment(cli, traced_call):
    """Asterisk writes the caller ID into the AGI environment as it is. Before the
    dialplan filtered control characters out of it, this call to 1001 was routed with
    1002's settings (forwarded to 1002's target). Now 1001's own phone rings."""
    cli("forward", "on", "1002", TARGET)
    traced = traced_call("1001", [desk("1001"), desk("1002"), carrier()],
                         caller_number=FORGED_ENVIRONMENT)
    assert not traced.result.rang("carrier"), traced.describe()
    assert_desk_1001_took_the_call(traced, others=("1002",))
    assert_only_allowed_dials(traced)
    assert_agent_spoke_clean_agi(traced, "OK")
    assert "AGI Tx >> agi_arg_1: 1001" in traced.log, traced.describe()

"""Shared by the routing tests: the stored settings they plant and `expect`, the
complete set of channel variables one decision sets."""

from __future__ import annotations

import json

from agi import variables as v

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


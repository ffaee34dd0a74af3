"""The routing decision: an extension's stored settings in, a Route out. No I/O.

Everything read from Redis is treated as untrusted text (agi/settings.py checks it). A
field that fails its check is never used; the decision falls back to the safest
sensible behaviour (ring the extension's own phones) and reports FALLBACK with the
reason.
"""

from agi import fields as f
from agi import schema as s
from agi import variables as v
from agi.config import Config
from agi.guard import is_extension
from agi.settings import (
    COMPANY_LANGUAGE,
    DESK,
    FAULT_CORRUPT,
    FAULT_INVALID,
    Leg,
    Settings,
    company_language,
    read_settings,
)

# Why a decision is FALLBACK, as a class (Route.fault) the metrics count: the store
# (down or too slow), or a stored setting (agi/settings.py: corrupt, or unusable).
FAULT_STORE_DOWN = "store_down"
FAULT_STORE_TIMEOUT = "store_timeout"
FAULTS = (FAULT_STORE_DOWN, FAULT_STORE_TIMEOUT, FAULT_CORRUPT, FAULT_INVALID)

# forward_when condition -> the DIALSTATUS of the first Dial() that triggers it.
_DIALSTATUS = {f.WHEN_OFFLINE: v.DIALSTATUS_OFFLINE, f.WHEN_BUSY: v.DIALSTATUS_BUSY,
               f.WHEN_NOANSWER: v.DIALSTATUS_NOANSWER}


class Route:
    """What the dialplan should do with one call; maps one-to-one onto channel variables.

    The legs are data (agi.settings.Leg): the dial strings are rendered from them here,
    once, and whoever explains a Route reads the legs, never the strings.
    """

    __slots__ = ("ask_prompt", "ask_timeout", "ask_tries", "callerid", "callerid_retry",
                 "confirm", "desk_legs", "desks", "dial", "diversion", "fault", "forwarding",
                 "language", "legs", "mailbox", "mode", "next_dial", "next_legs", "next_on",
                 "reason", "ringtime", "status", "target", "trunk")

    def __init__(self, *, status: str, mode: str, legs: tuple[Leg, ...] = (),
                 target: str = "", confirm: bool = False, callerid: str = "",
                 diversion: str = "", mailbox: str = "", reason: str = "", trunk: str = "",
                 ringtime: str = "", next_legs: tuple[Leg, ...] = (), next_on: str = "",
                 desk_legs: tuple[Leg, ...] = (), ask_tries: str = "", ask_timeout: str = "",
                 ask_prompt: str = "", callerid_retry: str = "", forwarding: bool = False,
                 language: str = "", fault: str = ""):
        self.status = status
        self.mode = mode
        self.legs = legs  # the first Dial()
        self.next_legs = next_legs  # dialled after it on one of NEXT_ON's statuses
        self.desk_legs = desk_legs  # dialled instead of `legs` while a desk is in use
        self.dial = "&".join(leg.dial for leg in legs)
        self.next_dial = "&".join(leg.dial for leg in next_legs)
        self.desks = "&".join(leg.dial for leg in desk_legs)
        self.target = target
        self.confirm = confirm
        self.callerid = callerid
        self.diversion = diversion
        self.mailbox = mailbox
        self.reason = reason
        self.trunk = trunk
        self.ringtime = ringtime
        self.next_on = next_on
        self.ask_tries = ask_tries
        self.ask_timeout = ask_timeout
        self.ask_prompt = ask_prompt
        self.callerid_retry = callerid_retry
        self.forwarding = forwarding
        self.language = language
        self.fault = fault  # the class of the reason of a FALLBACK; "" otherwise

    def variables(self) -> list[tuple[str, str]]:
        """The (name, value) pairs the agent sets, in v.ALL's order: STATUS last.

        Only the non-empty ones of v.ALL (a variable left out reads empty, because
        callroute-inbound clears them all on a channel that has already been through it
        once), then, for a decision with an external leg, every one of v.LEG_ALL.
        """
        values = {
            v.MODE: self.mode,
            v.DIAL: self.dial,
            v.TARGET: self.target,
            v.CONFIRM: "1" if self.confirm else "",
            v.CALLERID: self.callerid,
            v.DIVERSION: self.diversion,
            v.MAILBOX: self.mailbox,
            v.TRUNK: self.trunk,
            v.REASON: self.reason,
            v.RINGTIME: self.ringtime,
            v.NEXT_DIAL: self.next_dial,
            v.NEXT_ON: self.next_on,
            v.DESKS: self.desks,
            v.ASK_TRIES: self.ask_tries,
            v.ASK_TIMEOUT: self.ask_timeout,
            v.ASK_PROMPT: self.ask_prompt,
            v.CALLERID_RETRY: self.callerid_retry,
            v.FORWARDING: "1" if self.forwarding else "",
            v.LANGUAGE: self.language,
            v.STATUS: self.status,
        }
        pairs = [(name, values[name]) for name in v.ALL if values[name] and name != v.STATUS]
        if any(leg.outside for leg in (*self.legs, *self.next_legs)):
            pairs += self._leg_variables()
        pairs.append((v.STATUS, self.status))
        return pairs

    def _leg_variables(self) -> list[tuple[str, str]]:
        """What the external legs inherit (v.LEG_ALL, all of them, empty ones too): set
        here, in the one MSet, instead of by one dialplan priority each on every call."""
        reason = v.REASON_UNCONDITIONAL if self.mode == v.MODE_FORWARD else v.REASON_FOLLOW_ME
        return [(v.LEG_TRUNK, self.trunk), (v.LEG_CONFIRM, "1" if self.confirm else ""),
                (v.LEG_CALLERID, self.callerid), (v.LEG_CALLERID_RETRY, self.callerid_retry),
                (v.LEG_DIVERSION, self.diversion), (v.LEG_TRIES, self.ask_tries),
                (v.LEG_TIMEOUT, self.ask_timeout), (v.LEG_PROMPT, self.ask_prompt),
                (v.LEG_LANGUAGE, self.language), (v.LEG_REASON, reason)]

    def __repr__(self) -> str:
        return f"Route({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


def invalid_extension(ext: str) -> Route:
    """The extension argument itself is unusable: nothing can be dialled for it."""
    return Route(status=v.STATUS_INVALID, mode=v.MODE_VOICEMAIL,
                 reason=f"invalid extension {ext[:40]!r}")


def _default_route(ext: str, config: Config, status: str, reason: str,
                   language: str = "", fault: str = "") -> Route:
    """Ring the extension's default device, then its mailbox in the configured context."""
    return Route(status=status, mode=v.MODE_RING,
                 legs=(Leg(DESK, device=config.default_device_for(ext)),),
                 mailbox=s.mailbox(ext, config.voicemail_context), reason=reason,
                 language=language, fault=fault)


def fallback(ext: str, config: Config, reason: str, timeout: bool = False) -> Route:
    """The store could not be read (or not in time): ring the default device, then the
    default mailbox."""
    if not is_extension(ext):
        return invalid_extension(ext)
    return _default_route(ext, config, v.STATUS_FALLBACK, reason,
                          fault=FAULT_STORE_TIMEOUT if timeout else FAULT_STORE_DOWN)


def decide(ext: str, fields: dict[str, str], company: dict[str, str], config: Config) -> Route:
    """Route a call to `ext` given its hash (empty when unknown) and the company hash."""
    if not is_extension(ext):
        return invalid_extension(ext)
    if not fields:
        # Its voicemail still greets in the company's language.
        language, corrupt = company_language(company)
        if corrupt:
            return _default_route(ext, config, v.STATUS_FALLBACK,
                                  f"unknown extension; corrupt {COMPANY_LANGUAGE}",
                                  fault=FAULT_CORRUPT)
        return _default_route(ext, config, v.STATUS_OK, "unknown extension", language)
    return route_for(read_settings(ext, fields, company, config), config)


def route_for(st: Settings, config: Config) -> Route:
    """The Route of settings read by read_settings."""
    problems = list(st.problems)
    fault = st.fault
    if st.forward and st.target_problem:
        problems.append(st.target_problem)
        fault = fault or st.target_fault
    target_leg = st.target_leg if st.forward else None
    desks = tuple(Leg(DESK, device=device) for device in st.desks)
    externals = tuple(leg for _, leg in st.externals)
    first = desks + externals
    ringtime = next_on = ""
    next_legs: tuple[Leg, ...] = ()
    if target_leg and (not st.when or not first):  # always, or nothing to ring first
        mode, legs, used = v.MODE_FORWARD, (target_leg,), (target_leg,)
    else:
        mode = v.MODE_RING if first else v.MODE_VOICEMAIL
        legs, used = first, externals
        if target_leg:
            next_legs, used = (target_leg,), (*externals, target_leg)
            next_on = "-".join(_DIALSTATUS[condition] for condition in st.when)
            ringtime = str(st.after) if f.WHEN_NOANSWER in st.when else ""
    outside = any(leg.outside for leg in used)
    # Only the desks ring while one of them is in use (the dialplan checks DEVICE_STATE).
    quiet = mode == v.MODE_RING and bool(externals) and not st.externals_in_calls
    shown_company = st.company_number if outside else ""
    return Route(
        status=v.STATUS_FALLBACK if problems else v.STATUS_OK,
        mode=mode,
        legs=legs,
        target=st.target if target_leg else "",
        confirm=any(leg.keypress for leg in used),
        callerid=shown_company if st.caller_id == s.CALLER_ID_COMPANY else "",
        diversion=(st.did or st.company_number) if outside else "",
        mailbox=st.mailbox,
        reason="; ".join(problems),
        trunk=config.trunk_dial if outside else "",
        ringtime=ringtime,
        next_legs=next_legs,
        next_on=next_on,
        desk_legs=desks if quiet else (),
        ask_tries=_text(st.confirm_tries),
        ask_timeout=_text(st.confirm_timeout),
        ask_prompt=st.confirm_prompt or "",
        callerid_retry=shown_company
        if st.caller_id == s.CALLER_ID_ORIGINAL_FALLBACK else "",
        forwarding=target_leg is not None,
        language=st.language,
        fault=fault,
    )


def _text(value: int | None) -> str:
    return "" if value is None else str(value)

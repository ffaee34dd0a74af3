"""The routing decision: an extension's stored settings in, a Route out. No I/O.

Everything read from Redis is treated as untrusted text. A field that fails its
check is never used; the decision falls back to the safest sensible behaviour
(ring the extension's own phones) and reports FALLBACK with the reason.
"""

from collections.abc import Callable

from agi import fields as f
from agi import variables as v
from agi.config import Config
from agi.guard import dialable_refusal, is_device, is_extension, is_home_e164, is_mailbox

# Field names of the extension hash (the public Redis schema, see README).
F_DEVICES = "devices"
F_EXTERNAL = "external_devices"
F_FORWARD_ENABLED = "forward_enabled"
F_FORWARD_TARGET = "forward_target"
F_FORWARD_WHEN = "forward_when"
F_FORWARD_AFTER = "forward_after"
F_FORWARD_CALLER_ID = "forward_caller_id"
F_REQUIRE_KEYPRESS = "forward_require_keypress"
F_EXTERNALS_DURING_CALLS = "externals_during_calls"
F_CONFIRM_TRIES = "confirm_tries"
F_CONFIRM_TIMEOUT = "confirm_timeout"
F_CONFIRM_PROMPT = "confirm_prompt"
F_MAILBOX = "mailbox"
F_DID = "did"
F_SCHEMA = "schema"
# Fields of the company hash; the DID map is one "did:<E.164>" -> extension field per DID.
F_COMPANY_CALLER_ID = "caller_id"
F_COMPANY_NAME = "name"
F_COMPANY_DID_PREFIX = "did:"

CALLER_ID_ORIGINAL = "original"
CALLER_ID_COMPANY = "company"
# The caller's number, and the company number on a retry if the carrier refuses it.
CALLER_ID_ORIGINAL_FALLBACK = "original-fallback"
CALLER_ID_MODES = (CALLER_ID_ORIGINAL, CALLER_ID_COMPANY, CALLER_ID_ORIGINAL_FALLBACK)

DEFAULT_MAILBOX_CONTEXT = "default"

# forward_when condition -> the DIALSTATUS of the first Dial() that triggers it.
_DIALSTATUS = {f.WHEN_OFFLINE: v.DIALSTATUS_OFFLINE, f.WHEN_BUSY: v.DIALSTATUS_BUSY,
               f.WHEN_NOANSWER: v.DIALSTATUS_NOANSWER}


class Route:
    """What the dialplan should do with one call; maps one-to-one onto channel variables."""

    __slots__ = ("ask_prompt", "ask_timeout", "ask_tries", "callerid", "callerid_retry",
                 "confirm", "desks", "dial", "diversion", "forwarding", "mailbox", "mode",
                 "next_dial", "next_on", "reason", "ringtime", "status", "target", "trunk")

    def __init__(self, *, status: str, mode: str, dial: str = "", target: str = "",
                 confirm: bool = False, callerid: str = "", diversion: str = "",
                 mailbox: str = "", reason: str = "", trunk: str = "", ringtime: str = "",
                 next_dial: str = "", next_on: str = "", desks: str = "", ask_tries: str = "",
                 ask_timeout: str = "", ask_prompt: str = "", callerid_retry: str = "",
                 forwarding: bool = False):
        self.status = status
        self.mode = mode
        self.dial = dial
        self.target = target
        self.confirm = confirm
        self.callerid = callerid
        self.diversion = diversion
        self.mailbox = mailbox
        self.reason = reason
        self.trunk = trunk
        self.ringtime = ringtime
        self.next_dial = next_dial
        self.next_on = next_on
        self.desks = desks
        self.ask_tries = ask_tries
        self.ask_timeout = ask_timeout
        self.ask_prompt = ask_prompt
        self.callerid_retry = callerid_retry
        self.forwarding = forwarding

    def variables(self) -> list[tuple[str, str]]:
        """The (name, value) pairs the agent sets, in v.ALL's order: STATUS last.

        Only the non-empty ones: each SET VARIABLE is a round trip to Asterisk, and most
        of the 19 are empty in a typical decision. A variable left out reads empty,
        because callroute-inbound clears them all on a channel that has already been
        through it once.
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
            v.STATUS: self.status,
        }
        return [(name, values[name]) for name in v.ALL if values[name]]

    def __repr__(self) -> str:
        return f"Route({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


def default_mailbox(ext: str) -> str:
    return f"{ext}@{DEFAULT_MAILBOX_CONTEXT}"


def did_field(number: str) -> str:
    """The company-hash field mapping the DID `number` to its extension."""
    return F_COMPANY_DID_PREFIX + number


def external_leg(number: str, keypress: bool, delay: int = 0, ring: int = 0) -> str:
    """The Dial() leg for an external number; the context dials the trunk itself.

    The leg's own settings travel in its extension, so each leg of one Dial() can have
    its own: whether it must press 1, seconds before it starts ringing, seconds it
    rings (0 = the dialplan's default).
    """
    return f"Local/{number}-{int(keypress)}-{delay}-{ring}@{v.EXTERNAL_LEG_CONTEXT}/n"


def hop_leg(ext: str) -> str:
    """The Dial() leg that hands the call to another extension's own rules."""
    return f"Local/{ext}@{v.HOP_LEG_CONTEXT}/n"


def invalid_extension(ext: str) -> Route:
    """The extension argument itself is unusable: nothing can be dialled for it."""
    return Route(status=v.STATUS_INVALID, mode=v.MODE_VOICEMAIL,
                 reason=f"invalid extension {ext[:40]!r}")


def fallback(ext: str, config: Config, reason: str) -> Route:
    """Ring the extension's default device, then its default mailbox."""
    if not is_extension(ext):
        return invalid_extension(ext)
    return Route(status=v.STATUS_FALLBACK, mode=v.MODE_RING,
                 dial=config.default_device_for(ext), mailbox=default_mailbox(ext),
                 reason=reason)


class _Leg:
    """One leg of a decision: its dial string, and what it implies for the call."""

    __slots__ = ("dial", "keypress", "outside")

    def __init__(self, dial: str, *, outside: bool = False, keypress: bool = False):
        self.dial = dial
        self.outside = outside  # dialled out through the trunk
        self.keypress = keypress


def decide(ext: str, fields: dict[str, str], company: dict[str, str], config: Config) -> Route:
    """Route a call to `ext` given its hash (empty when unknown) and the company hash."""
    if not is_extension(ext):
        return invalid_extension(ext)
    if not fields:
        return Route(status=v.STATUS_OK, mode=v.MODE_RING, dial=config.default_device_for(ext),
                     mailbox=default_mailbox(ext), reason="unknown extension")

    problems: list[str] = []
    code = config.calling_code

    devices = _devices(fields, ext, config, problems)
    forward = _flag(fields, F_FORWARD_ENABLED, default=False, on_corrupt=False,
                    problems=problems)
    keypress = _flag(fields, F_REQUIRE_KEYPRESS, default=False, on_corrupt=True,
                     problems=problems)
    # Corrupt: ring everything, as before the setting existed.
    externals_in_calls = _flag(fields, F_EXTERNALS_DURING_CALLS, default=True,
                               on_corrupt=True, problems=problems)
    caller_id_mode = fields.get(F_FORWARD_CALLER_ID, CALLER_ID_ORIGINAL)
    if caller_id_mode not in CALLER_ID_MODES:
        problems.append(f"corrupt {F_FORWARD_CALLER_ID}")
        caller_id_mode = CALLER_ID_ORIGINAL
    when = _forward_when(fields, problems)
    after = _setting(fields, F_FORWARD_AFTER, lambda raw: f.integer(raw, f.FORWARD_AFTER),
                     problems) or str(f.FORWARD_AFTER_DEFAULT)
    ask_tries, ask_timeout, ask_prompt = _confirm_settings(fields, problems)
    mailbox = fields.get(F_MAILBOX) or default_mailbox(ext)
    if not is_mailbox(mailbox):
        problems.append(f"corrupt {F_MAILBOX}")
        mailbox = default_mailbox(ext)
    did = _number(fields.get(F_DID), F_DID, code, problems)
    company_number = _number(company.get(F_COMPANY_CALLER_ID), "company caller_id", code,
                             problems)
    # Numbers we dial out: home country, not premium or shared-cost, and never the
    # company's own numbers (that would loop through the public network). Another
    # extension's DID is not dialled out: the call hops to that extension's rules.
    places = _Places(ext, frozenset(n for n in (did, company_number) if n), company, config)
    externals = _externals(fields.get(F_EXTERNAL), keypress, places, code, problems)

    target, target_leg = "", None
    if forward:
        raw_target = fields.get(F_FORWARD_TARGET)
        target = _number(raw_target, F_FORWARD_TARGET, code, problems)
        if target:
            why, target_leg = places.leg(target, keypress)
            if why:
                problems.append(f"{F_FORWARD_TARGET} {why}")
                target = ""
        elif not raw_target:
            problems.append(f"missing {F_FORWARD_TARGET}")

    first = list(dict.fromkeys(devices + [leg.dial for leg in externals]))
    ringtime = next_dial = next_on = ""
    if target_leg and (not when or not first):  # always, or nothing to ring first
        mode, dial, used = v.MODE_FORWARD, target_leg.dial, [target_leg]
    else:
        mode = v.MODE_RING if first else v.MODE_VOICEMAIL
        dial, used = "&".join(first), externals
        if target_leg:
            next_dial, used = target_leg.dial, [*externals, target_leg]
            next_on = "-".join(_DIALSTATUS[condition] for condition in when)
            ringtime = after if f.WHEN_NOANSWER in when else ""
    outside = any(leg.outside for leg in used)
    # Only the desks ring while one of them is in use (the dialplan checks DEVICE_STATE).
    quiet = mode == v.MODE_RING and bool(externals) and not externals_in_calls
    desks = "&".join(devices) if quiet else ""
    shown_company = company_number if outside else ""
    return Route(
        status=v.STATUS_FALLBACK if problems else v.STATUS_OK,
        mode=mode,
        dial=dial,
        target=target,
        confirm=any(leg.keypress for leg in used),
        callerid=shown_company if caller_id_mode == CALLER_ID_COMPANY else "",
        diversion=(did or company_number) if outside else "",
        mailbox=mailbox,
        reason="; ".join(problems),
        trunk=config.trunk_dial if outside else "",
        ringtime=ringtime,
        next_dial=next_dial,
        next_on=next_on,
        desks=desks,
        ask_tries=ask_tries,
        ask_timeout=ask_timeout,
        ask_prompt=ask_prompt,
        callerid_retry=shown_company if caller_id_mode == CALLER_ID_ORIGINAL_FALLBACK else "",
        forwarding=target_leg is not None,
    )


OWN_NUMBER = "is the company's own number"
CORRUPT_DID_MAP = "is a DID whose entry in the company's DID map is corrupt"


class _Places:
    """Where a well-formed home number stored for `ext` may go: out through the trunk,
    to another extension's rules (its DID), or nowhere."""

    __slots__ = ("company", "config", "ext", "own")

    def __init__(self, ext: str, own: frozenset[str], company: dict[str, str], config: Config):
        self.ext = ext
        self.own = own
        self.company = company
        self.config = config

    def leg(self, number: str, keypress: bool, delay: int = 0,
            ring: int = 0) -> tuple[str, _Leg | None]:
        """(why `number` may not be used, None) or ("", its leg)."""
        owner = self.company.get(did_field(number))
        if number in self.own or owner == self.ext:
            return OWN_NUMBER, None
        if owner is not None:
            if not is_extension(owner):
                return CORRUPT_DID_MAP, None
            return "", _Leg(hop_leg(owner))
        why = dialable_refusal(number, self.config.country, self.config.calling_code)
        if why:
            return why, None
        return "", _Leg(external_leg(number, keypress, delay, ring), outside=True,
                        keypress=keypress)


def _devices(fields: dict[str, str], ext: str, config: Config, problems: list[str]) -> list[str]:
    raw = fields.get(F_DEVICES)
    if raw is None:
        return [config.default_device_for(ext)]
    items = f.json_list(raw)
    if items is None:
        problems.append(f"corrupt {F_DEVICES}")
        return [config.default_device_for(ext)]
    good = [item for item in items if isinstance(item, str) and is_device(item)]
    if len(good) != len(items):
        problems.append(f"corrupt entry in {F_DEVICES}")
        if not good:  # as for unreadable JSON: ring the default device, not nothing
            return [config.default_device_for(ext)]
    return list(dict.fromkeys(good))


def _externals(raw: str | None, keypress: bool, places: _Places, code: str,
               problems: list[str]) -> list[_Leg]:
    """The legs of the external devices; an entry that can't be used is dropped."""
    if raw is None:
        return []
    items = f.json_list(raw)
    if items is None:
        problems.append(f"corrupt {F_EXTERNAL}")
        return []
    legs: dict[str, _Leg] = {}
    corrupt = False
    refusals: list[str] = []
    seen: set[str] = set()
    for item in items:
        device = f.external_device(item)
        if device is None or not is_home_e164(device.number, code):
            corrupt = True
            continue
        if device.number in seen:  # the first entry for a number wins
            continue
        seen.add(device.number)
        device_keypress = keypress if device.require_keypress is None \
            else device.require_keypress
        why, leg = places.leg(device.number, device_keypress, device.delay, device.ring or 0)
        if leg is not None:
            legs.setdefault(leg.dial, leg)
        elif why not in refusals:
            refusals.append(why)
    if corrupt:
        problems.append(f"corrupt entry in {F_EXTERNAL}")
    problems.extend(f"an entry in {F_EXTERNAL} {why}" for why in refusals)
    return list(legs.values())


def _number(raw: str | None, field: str, code: str, problems: list[str]) -> str:
    if not raw:
        return ""
    if is_home_e164(raw, code):
        return raw
    problems.append(f"corrupt {field}")
    return ""


def _flag(fields: dict[str, str], field: str, *, default: bool, on_corrupt: bool,
          problems: list[str]) -> bool:
    raw = fields.get(field)
    if raw is None or raw == "":
        return default
    if raw in ("0", "1"):
        return raw == "1"
    problems.append(f"corrupt {field}")
    return on_corrupt


def _forward_when(fields: dict[str, str], problems: list[str]) -> tuple[str, ...]:
    raw = fields.get(F_FORWARD_WHEN)
    if not raw:
        return ()
    when = f.forward_when(raw)
    if when is None:
        # Phones first, then the target: whatever was meant, no call is missed.
        problems.append(f"corrupt {F_FORWARD_WHEN}")
        return (f.WHEN_NOANSWER,)
    return when


def _confirm_settings(fields: dict[str, str], problems: list[str]) -> tuple[str, str, str]:
    """The extension's own "press 1" tries, timeout and prompt; "" leaves the dialplan's."""
    return (_setting(fields, F_CONFIRM_TRIES, lambda raw: f.integer(raw, f.CONFIRM_TRIES),
                     problems),
            _setting(fields, F_CONFIRM_TIMEOUT, lambda raw: f.integer(raw, f.CONFIRM_TIMEOUT),
                     problems),
            _setting(fields, F_CONFIRM_PROMPT, lambda raw: raw if f.is_sound(raw) else None,
                     problems))


def _setting(fields: dict[str, str], field: str, read: Callable[[str], object],
             problems: list[str]) -> str:
    """An optional setting as its variable value: "" when absent or corrupt (reported)."""
    raw = fields.get(field)
    if not raw:
        return ""
    value = read(raw)
    if value is None:
        problems.append(f"corrupt {field}")
        return ""
    return str(value)

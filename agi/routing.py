"""The routing decision: an extension's stored settings in, a Route out. No I/O.

Everything read from Redis is treated as untrusted text. A field that fails its
check is never used; the decision falls back to the safest sensible behaviour
(ring the extension's own phones) and reports FALLBACK with the reason.
"""

import json

from agi import variables as v
from agi.config import Config
from agi.guard import dialable_refusal, is_device, is_extension, is_home_e164, is_mailbox

# Field names of the extension hash (the public Redis schema, see README).
F_DEVICES = "devices"
F_EXTERNAL = "external_devices"
F_FORWARD_ENABLED = "forward_enabled"
F_FORWARD_TARGET = "forward_target"
F_FORWARD_CALLER_ID = "forward_caller_id"
F_REQUIRE_KEYPRESS = "forward_require_keypress"
F_MAILBOX = "mailbox"
F_DID = "did"
F_SCHEMA = "schema"
# Fields of the company hash.
F_COMPANY_CALLER_ID = "caller_id"
F_COMPANY_NAME = "name"

CALLER_ID_ORIGINAL = "original"
CALLER_ID_COMPANY = "company"
CALLER_ID_MODES = (CALLER_ID_ORIGINAL, CALLER_ID_COMPANY)

DEFAULT_MAILBOX_CONTEXT = "default"


class Route:
    """What the dialplan should do with one call; maps one-to-one onto channel variables."""

    __slots__ = ("callerid", "confirm", "dial", "diversion", "mailbox", "mode", "reason",
                 "status", "target", "trunk")

    def __init__(self, *, status: str, mode: str, dial: str = "", target: str = "",
                 confirm: bool = False, callerid: str = "", diversion: str = "",
                 mailbox: str = "", reason: str = "", trunk: str = ""):
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

    def variables(self) -> list[tuple[str, str]]:
        """(name, value) pairs in the order the agent sets them: STATUS last."""
        values = {
            v.MODE: self.mode,
            v.DIAL: self.dial,
            v.TARGET: self.target,
            v.CONFIRM: "1" if self.confirm else "0",
            v.CALLERID: self.callerid,
            v.DIVERSION: self.diversion,
            v.MAILBOX: self.mailbox,
            v.TRUNK: self.trunk,
            v.REASON: self.reason,
            v.STATUS: self.status,
        }
        return [(name, values[name]) for name in v.ALL]

    def __repr__(self) -> str:
        return f"Route({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


def default_mailbox(ext: str) -> str:
    return f"{ext}@{DEFAULT_MAILBOX_CONTEXT}"


def external_leg(number: str) -> str:
    """The Dial() leg for an external number; the context dials the trunk itself."""
    return f"Local/{number}@{v.EXTERNAL_LEG_CONTEXT}/n"


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
    caller_id_mode = fields.get(F_FORWARD_CALLER_ID, CALLER_ID_ORIGINAL)
    if caller_id_mode not in CALLER_ID_MODES:
        problems.append(f"corrupt {F_FORWARD_CALLER_ID}")
        caller_id_mode = CALLER_ID_ORIGINAL
    mailbox = fields.get(F_MAILBOX) or default_mailbox(ext)
    if not is_mailbox(mailbox):
        problems.append(f"corrupt {F_MAILBOX}")
        mailbox = default_mailbox(ext)
    did = _number(fields.get(F_DID), F_DID, code, problems)
    company_number = _number(company.get(F_COMPANY_CALLER_ID), "company caller_id", code,
                             problems)
    # Numbers we dial out: home country, not premium or shared-cost, and never the
    # company's own numbers (that would loop through the public network).
    own = frozenset(number for number in (did, company_number) if number)
    externals = _numbers(fields.get(F_EXTERNAL), F_EXTERNAL, config, own, problems)

    target = ""
    if forward:
        raw_target = fields.get(F_FORWARD_TARGET)
        target = _number(raw_target, F_FORWARD_TARGET, code, problems)
        if target:
            why = _refusal(target, config, own)
            if why:
                problems.append(f"{F_FORWARD_TARGET} {why}")
                target = ""
        elif not raw_target:
            problems.append(f"missing {F_FORWARD_TARGET}")

    if target:
        mode, legs, external_numbers = v.MODE_FORWARD, [external_leg(target)], [target]
    else:
        legs = devices + [external_leg(number) for number in externals]
        mode = v.MODE_RING if legs else v.MODE_VOICEMAIL
        external_numbers = externals
    has_external = bool(external_numbers)
    return Route(
        status=v.STATUS_FALLBACK if problems else v.STATUS_OK,
        mode=mode,
        dial="&".join(legs),
        target=target,
        confirm=keypress and has_external,
        callerid=company_number if (has_external and caller_id_mode == CALLER_ID_COMPANY)
        else "",
        diversion=(did or company_number) if has_external else "",
        mailbox=mailbox,
        reason="; ".join(problems),
        trunk=config.trunk_dial if has_external else "",
    )


def _devices(fields: dict[str, str], ext: str, config: Config, problems: list[str]) -> list[str]:
    raw = fields.get(F_DEVICES)
    if raw is None:
        return [config.default_device_for(ext)]
    items = _json_list(raw)
    if items is None:
        problems.append(f"corrupt {F_DEVICES}")
        return [config.default_device_for(ext)]
    good = [item for item in items if isinstance(item, str) and is_device(item)]
    if len(good) != len(items):
        problems.append(f"corrupt entry in {F_DEVICES}")
        if not good:  # as for unreadable JSON: ring the default device, not nothing
            return [config.default_device_for(ext)]
    return list(dict.fromkeys(good))


OWN_NUMBER = "is the company's own number"


def _refusal(number: str, config: Config, own: frozenset[str]) -> str:
    """Why a well-formed home number may not be dialled out; "" if it may."""
    if number in own:
        return OWN_NUMBER
    return dialable_refusal(number, config.country, config.calling_code)


def _numbers(raw: str | None, field: str, config: Config, own: frozenset[str],
             problems: list[str]) -> list[str]:
    if raw is None:
        return []
    items = _json_list(raw)
    if items is None:
        problems.append(f"corrupt {field}")
        return []
    good = [item for item in items
            if isinstance(item, str) and is_home_e164(item, config.calling_code)]
    if len(good) != len(items):
        problems.append(f"corrupt entry in {field}")
    allowed = []
    for number in good:
        why = _refusal(number, config, own)
        if not why:
            allowed.append(number)
        elif f"an entry in {field} {why}" not in problems:
            problems.append(f"an entry in {field} {why}")
    return list(dict.fromkeys(allowed))


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


def _json_list(raw: str) -> list | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, list) else None

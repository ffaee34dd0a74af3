"""What the admin layer shows: an extension as a call applies it, the company, the audit.

An ExtensionView is built from the very Settings and Route a call gets
(agi.settings.read_settings, agi.routing.route_for), so what `ext show` says is what a
call does; corrupt stored values are listed with the value used instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from agi import fields as f
from agi import schema as s
from agi import variables as v
from agi.config import Config
from agi.guard import is_extension
from agi.routing import Route, route_for
from agi.settings import EXTERNAL, HOP, Leg, Settings, read_settings


def version(fields: dict[str, str]) -> str:
    """The ETag of a stored hash: changes whenever any stored field does."""
    text = json.dumps(sorted(fields.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ExternalDeviceView:
    number: str
    require_keypress: bool | None  # None: as the extension's forward_require_keypress
    delay: int
    ring: int | None  # None: the dialplan's ring time


@dataclass(frozen=True)
class ForwardView:
    enabled: bool
    target: str
    target_extension: str  # the extension whose rules calls follow, if a DID
    when: str  # always, or offline/busy/noanswer comma-separated
    after: int
    caller_id: str
    require_keypress: bool


@dataclass(frozen=True)
class ConfirmView:  # None: the dialplan's global applies
    tries: int | None
    timeout: int | None
    prompt: str | None


@dataclass(frozen=True)
class Corrupt:
    field: str
    stored: object
    used: object


@dataclass(frozen=True)
class ExtensionView:
    extension: str
    devices: list[str]
    external_devices: list[ExternalDeviceView]
    externals_during_calls: bool
    forward: ForwardView
    confirm: ConfirmView
    mailbox: str
    did: str
    status: str
    problems: str  # the call's FALLBACK reason, "" when OK
    behaviour: str
    corrupt: list[Corrupt]
    version: str
    # Not in the JSON: set by the write that returned the view. `created`: it created
    # the extension; `subject`: the number a device write concerned, as stored, and
    # `subject_extension` the extension whose rules a call to it follows ("" if none).
    created: bool = field(default=False, compare=False)
    subject: str = field(default="", compare=False)
    subject_extension: str = field(default="", compare=False)

    def to_json(self) -> dict:
        """The `callroute ext show --json` shape, which the HTTP API returns as is."""
        return {
            "extension": self.extension,
            "devices": list(self.devices),
            "external_devices": [vars(d) for d in self.external_devices],
            "externals_during_calls": self.externals_during_calls,
            "forward": vars(self.forward),
            "confirm": vars(self.confirm),
            "mailbox": self.mailbox,
            "did": self.did,
            "status": self.status,
            "problems": self.problems,
            "behaviour": self.behaviour,
            "corrupt": [vars(c) for c in self.corrupt],
            "version": self.version,
        }


@dataclass(frozen=True)
class CompanyView:
    caller_id: str
    name: str

    def to_json(self) -> dict:
        return {"caller_id": self.caller_id, "name": self.name}


@dataclass(frozen=True)
class AuditRecord:
    id: str
    at: str
    actor: str
    source: str
    ext: str
    action: str
    changes: dict[str, list]  # field -> [old, new], None for absent

    def to_json(self) -> dict:
        return vars(self).copy()


def extension_view(ext: str, fields: dict[str, str], company: dict[str, str],
                   config: Config, *, created: bool = False, subject: str = "",
                   subject_extension: str = "") -> ExtensionView:
    """The view of an existing extension (non-empty `fields`)."""
    st = read_settings(ext, fields, company, config)
    route = route_for(st, config)
    return ExtensionView(
        extension=ext,
        devices=list(st.desks),
        external_devices=[ExternalDeviceView(d.number, d.require_keypress, d.delay, d.ring)
                          for d, _ in st.externals],
        externals_during_calls=st.externals_in_calls,
        forward=ForwardView(
            enabled=st.forward, target=st.target,
            target_extension=_target_extension(ext, st, company),
            when=f.when_text(st.when), after=st.after, caller_id=st.caller_id,
            require_keypress=st.keypress),
        confirm=ConfirmView(st.confirm_tries, st.confirm_timeout, st.confirm_prompt),
        mailbox=st.mailbox,
        did=st.did,
        status=route.status,
        problems=route.reason if route.status != v.STATUS_OK else "",
        behaviour=behaviour(route),
        corrupt=[Corrupt(*entry) for entry in st.corrupt],
        version=version(fields),
        created=created,
        subject=subject,
        subject_extension=subject_extension,
    )


def _target_extension(ext: str, st: Settings, company: dict[str, str]) -> str:
    """The extension whose rules a call to the target follows ("" if dialled out).

    While forwarding is off the call path doesn't place the target: the DID map says."""
    if st.target_leg is not None:
        return st.target_leg.ext
    owner = company.get(s.did_field(st.target), "") if st.target else ""
    return owner if owner != ext and is_extension(owner) else ""


# NEXT_ON values in the order a sentence reads best.
_CONDITION_WORDS = ((v.DIALSTATUS_NOANSWER, "nobody answers"),
                    (v.DIALSTATUS_BUSY, "the phones are busy"),
                    (v.DIALSTATUS_OFFLINE, "no phone is reachable"))


def _leg_words(leg: Leg) -> str:
    """One leg of a Route, for people."""
    if leg.kind == HOP:
        return f"extension {leg.ext}'s rules"
    if leg.kind != EXTERNAL:
        return leg.dial
    details = [text for text, shown in (("press 1", leg.keypress),
                                        (f"after {leg.delay} s", leg.delay != 0),
                                        (f"for {leg.ring} s", leg.ring != 0)) if shown]
    return f"{leg.number} ({', '.join(details)})" if details else leg.number


def _words_list(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def behaviour(route: Route) -> str:
    """What a call does now, in one sentence."""
    voicemail = f"unanswered calls go to voicemail {route.mailbox}."
    if route.mode == v.MODE_VOICEMAIL or not route.legs:
        return f"Nothing rings: calls go straight to voicemail {route.mailbox}."
    outside = bool(route.trunk)
    if route.callerid:
        shown = f", showing {route.callerid}"
    elif route.callerid_retry:
        shown = f", showing the caller's number ({route.callerid_retry} if the carrier refuses it)"
    else:
        shown = ", showing the caller's number" if outside and route.mode == v.MODE_FORWARD \
            else ""
    if route.mode == v.MODE_FORWARD:
        leg = route.legs[0]
        if leg.kind == HOP:
            return f"Calls follow extension {leg.ext}'s rules; {voicemail}"
        return f"Calls ring only {_leg_words(leg)}{shown}; {voicemail}"
    legs = _words_list([_leg_words(leg) for leg in route.legs])
    ringing = f" for {route.ringtime} s" if route.ringtime else ""
    quiet = " (only the desk phones while one is in use)" if route.desk_legs else ""
    then = ""
    if route.next_legs:
        statuses = route.next_on.split("-")
        conditions = [words for status, words in _CONDITION_WORDS if status in statuses]
        then = (f", then {_words_list([_leg_words(leg) for leg in route.next_legs])} if "
                f"{_words_list(conditions, 'or')}")
    return f"Calls ring {legs}{ringing}{quiet}{then}{shown}; {voicemail}"

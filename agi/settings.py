"""An extension's stored settings, read once into the values a call applies. No I/O.

Everything read from Redis is untrusted text. `read_settings` checks every field and
keeps, for each, the value a call uses: a field that fails its check is replaced by
the safest sensible value, named in `problems` (the call's FALLBACK reason) and in
`corrupt` (field, stored value, value used). The routing decision and the admin views
(`ext show`) both start from this one object, so they can't describe a setting
differently. Plain classes with slots: this runs on every call.
"""

from agi import fields as f
from agi import schema as s
from agi.config import Config
from agi.guard import dialable_refusal, is_device, is_extension, is_home_e164, is_mailbox

DESK = "desk"
EXTERNAL = "external"
HOP = "hop"

OWN_NUMBER = "is the company's own number"
CORRUPT_DID_MAP = "is a DID whose entry in the company's DID map is corrupt"
# The company's caller_id as named in reasons and corrupt entries.
COMPANY_CALLER_ID = "company caller_id"
# The company's language, likewise.
COMPANY_LANGUAGE = "company language"
# The class of a problem (the metrics count FALLBACKs by the class of the first one): a
# stored value that fails its check, or a well-formed one that may not be used.
FAULT_CORRUPT = "corrupt_field"
FAULT_INVALID = "invalid_setting"


class Leg:
    """One leg of a Dial(): a desk device, an external number, or a hop to another
    extension's rules. `dial` is its dial string, rendered once from the data."""

    __slots__ = ("delay", "device", "dial", "ext", "keypress", "kind", "number", "ring")

    def __init__(self, kind: str, *, device: str = "", number: str = "",
                 keypress: bool = False, delay: int = 0, ring: int = 0, ext: str = ""):
        self.kind = kind
        self.device = device  # desk: the Asterisk device
        self.number = number  # external and hop: the E.164 number stored
        self.keypress = keypress  # external: the callee must press 1
        self.delay = delay  # external: seconds before it rings
        self.ring = ring  # external: seconds it rings, 0 = the dialplan's default
        self.ext = ext  # hop: the extension whose rules the call follows
        if kind == DESK:
            self.dial = device
        elif kind == HOP:
            self.dial = s.hop_leg(ext)
        else:
            self.dial = s.external_leg(number, keypress, delay, ring)

    @property
    def outside(self) -> bool:
        """Dialled out through the trunk."""
        return self.kind == EXTERNAL


class Settings:
    """The settings a call to one extension applies; see read_settings."""

    __slots__ = ("after", "caller_id", "company_number", "confirm_prompt", "confirm_timeout",
                 "confirm_tries", "corrupt", "desks", "did", "externals",
                 "externals_in_calls", "fault", "forward", "keypress", "language",
                 "language_own", "mailbox", "problems", "target", "target_fault", "target_leg",
                 "target_problem", "when")

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.fault = ""  # the class of the first of `problems`
        # (field, stored value, value used instead), in the order the fields are read.
        self.corrupt: list[tuple[str, object, object]] = []
        self.desks: list[str] = []
        # (the stored entry, its leg) for each entry that rings, first one per number.
        self.externals: list[tuple[f.ExternalDevice, Leg]] = []
        self.forward = False
        self.keypress = False
        self.externals_in_calls = True
        self.caller_id = s.CALLER_ID_ORIGINAL
        self.when: tuple[str, ...] = ()
        self.after = f.FORWARD_AFTER_DEFAULT
        self.confirm_tries: int | None = None
        self.confirm_timeout: int | None = None
        self.confirm_prompt: str | None = None
        self.mailbox = ""
        self.did = ""
        self.company_number = ""
        self.language = ""  # "" leaves the channel's own language
        self.language_own: str | None = None  # the extension's valid override, if any
        self.target = ""  # the forward target, if one that may be used is stored
        self.target_leg: Leg | None = None
        self.target_problem = ""  # why the stored target can't be used ("" if it can)
        self.target_fault = ""  # its class

    def bad(self, field: str, stored: object, used: object, problem: str = "") -> None:
        self.problems.append(problem or f"corrupt {field}")
        self.fault = self.fault or FAULT_CORRUPT
        self.corrupt.append((field, stored, used))


def read_settings(ext: str, fields: dict[str, str], company: dict[str, str],
                  config: Config) -> Settings:
    """The settings of `ext` (a valid extension with a non-empty hash) as a call applies
    them. The problems come in the order the routing reason has always listed them."""
    st = Settings()
    default_device = config.default_device_for(ext)
    st.desks = _devices(st, fields.get(s.F_DEVICES), default_device)
    st.forward = _flag(st, fields, s.F_FORWARD_ENABLED, default=False, on_corrupt=False)
    st.keypress = _flag(st, fields, s.F_REQUIRE_KEYPRESS, default=False, on_corrupt=True)
    # Corrupt: ring everything, as before the setting existed.
    st.externals_in_calls = _flag(st, fields, s.F_EXTERNALS_DURING_CALLS, default=True,
                                  on_corrupt=True)
    caller_id = fields.get(s.F_FORWARD_CALLER_ID, s.CALLER_ID_ORIGINAL)
    if caller_id in s.CALLER_ID_MODES:
        st.caller_id = caller_id
    else:
        st.bad(s.F_FORWARD_CALLER_ID, caller_id, s.CALLER_ID_ORIGINAL)
    raw_when = fields.get(s.F_FORWARD_WHEN)
    if raw_when:
        when = f.forward_when(raw_when)
        if when is None:
            # Phones first, then the target: whatever was meant, no call is missed.
            when = (f.WHEN_NOANSWER,)
            st.bad(s.F_FORWARD_WHEN, raw_when, f.WHEN_NOANSWER)
        st.when = when
    st.after = _integer(st, fields, s.F_FORWARD_AFTER, f.FORWARD_AFTER,
                        f.FORWARD_AFTER_DEFAULT)
    st.confirm_tries = _integer(st, fields, s.F_CONFIRM_TRIES, f.CONFIRM_TRIES, None)
    st.confirm_timeout = _integer(st, fields, s.F_CONFIRM_TIMEOUT, f.CONFIRM_TIMEOUT, None)
    prompt = fields.get(s.F_CONFIRM_PROMPT)
    if prompt:
        if f.is_sound(prompt):
            st.confirm_prompt = prompt
        else:
            st.bad(s.F_CONFIRM_PROMPT, prompt, None)
    default_box = s.mailbox(ext, config.voicemail_context)
    st.mailbox = fields.get(s.F_MAILBOX) or default_box
    if not is_mailbox(st.mailbox):
        st.bad(s.F_MAILBOX, st.mailbox, default_box)
        st.mailbox = default_box
    code = config.calling_code
    st.did = _number(st, fields.get(s.F_DID), s.F_DID, code)
    st.company_number = _number(st, company.get(s.F_COMPANY_CALLER_ID), COMPANY_CALLER_ID,
                                code)
    # Numbers we dial out: home country, not premium or shared-cost, and never the
    # company's own numbers (that would loop through the public network). Another
    # extension's DID is not dialled out: the call hops to that extension's rules.
    places = _Places(ext, frozenset(n for n in (st.did, st.company_number) if n), company,
                     config)
    _externals(st, fields.get(s.F_EXTERNAL), places, code)
    _target(st, fields.get(s.F_FORWARD_TARGET), places, code)
    st.language = _language(st, fields.get(s.F_LANGUAGE), company)
    return st


def company_language(company: dict[str, str]) -> tuple[str, str]:
    """(the company's language, "") or ("", its stored value when that is corrupt)."""
    raw = company.get(s.F_COMPANY_LANGUAGE, "")
    return (raw, "") if not raw or f.is_language(raw) else ("", raw)


def _language(st: Settings, raw: str | None, company: dict[str, str]) -> str:
    """The extension's own language, else the company's; a corrupt one is ignored.

    The company's is reported only when this extension uses it: an override makes it
    irrelevant to this extension's calls."""
    default, corrupt = company_language(company)
    if raw and f.is_language(raw):
        st.language_own = raw
        return raw
    if raw:
        st.bad(s.F_LANGUAGE, raw, default)
    elif corrupt:
        st.bad(COMPANY_LANGUAGE, corrupt, "")
    return default


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
            ring: int = 0) -> tuple[str, Leg | None]:
        """(why `number` may not be used, None) or ("", its leg)."""
        owner = self.company.get(s.did_field(number))
        if number in self.own or owner == self.ext:
            return OWN_NUMBER, None
        if owner is not None:
            if not is_extension(owner):
                return CORRUPT_DID_MAP, None
            return "", Leg(HOP, number=number, ext=owner)
        why = dialable_refusal(number, self.config.country, self.config.calling_code)
        if why:
            return why, None
        return "", Leg(EXTERNAL, number=number, keypress=keypress, delay=delay, ring=ring)


def _devices(st: Settings, raw: str | None, default: str) -> list[str]:
    if raw is None:
        return [default]
    items = f.json_list(raw)
    if items is None:
        st.bad(s.F_DEVICES, raw, [default])
        return [default]
    good = [item for item in items if isinstance(item, str) and is_device(item)]
    if len(good) != len(items):
        # As for unreadable JSON when none is left: ring the default device, not nothing.
        used = list(dict.fromkeys(good)) or [default]
        st.bad(s.F_DEVICES, raw, used, f"corrupt entry in {s.F_DEVICES}")
        return used
    return list(dict.fromkeys(good))


def _externals(st: Settings, raw: str | None, places: _Places, code: str) -> None:
    """The entries of external_devices that ring; one that can't be used is dropped."""
    if raw is None:
        return
    items = f.json_list(raw)
    if items is None:
        st.bad(s.F_EXTERNAL, raw, [])
        return
    dials: set[str] = set()
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
        keypress = st.keypress if device.require_keypress is None else device.require_keypress
        why, leg = places.leg(device.number, keypress, device.delay, device.ring or 0)
        if leg is None:
            if why not in refusals:
                refusals.append(why)
        elif leg.dial not in dials:  # two DIDs of one extension: hop there once
            dials.add(leg.dial)
            st.externals.append((device, leg))
    if corrupt or refusals:
        problems = [f"corrupt entry in {s.F_EXTERNAL}"] if corrupt else []
        problems += [f"an entry in {s.F_EXTERNAL} {why}" for why in refusals]
        st.problems.extend(problems)
        st.fault = st.fault or (FAULT_CORRUPT if corrupt else _fault(refusals[0]))
        st.corrupt.append((s.F_EXTERNAL, raw, [d.number for d, _ in st.externals]))


def _target(st: Settings, raw: str | None, places: _Places, code: str) -> None:
    """The forward target. A malformed one is reported only when a call would forward
    (as always), but named in `corrupt` either way; where a well-formed one may go is
    checked only when a call would forward: that costs the guard tables' import."""
    if not raw:
        if st.forward:
            st.target_problem = f"missing {s.F_FORWARD_TARGET}"
            st.target_fault = FAULT_INVALID
        return
    if not is_home_e164(raw, code):
        st.target_problem = f"corrupt {s.F_FORWARD_TARGET}"
        st.target_fault = FAULT_CORRUPT
    elif not st.forward:
        st.target = raw
        return
    else:
        why, st.target_leg = places.leg(raw, st.keypress)
        if why:
            st.target_problem = f"{s.F_FORWARD_TARGET} {why}"
            st.target_fault = _fault(why)
        else:
            st.target = raw
    if st.target_problem:
        st.corrupt.append((s.F_FORWARD_TARGET, raw, ""))


def _fault(refusal: str) -> str:
    """A number refused by _Places.leg: corrupt only when the DID map itself is."""
    return FAULT_CORRUPT if refusal == CORRUPT_DID_MAP else FAULT_INVALID


def _number(st: Settings, raw: str | None, field: str, code: str) -> str:
    if not raw:
        return ""
    if is_home_e164(raw, code):
        return raw
    st.bad(field, raw, "")
    return ""


def _flag(st: Settings, fields: dict[str, str], field: str, *, default: bool,
          on_corrupt: bool) -> bool:
    raw = fields.get(field)
    if raw is None or raw == "":
        return default
    if raw in ("0", "1"):
        return raw == "1"
    st.bad(field, raw, on_corrupt)
    return on_corrupt


def _integer(st: Settings, fields: dict[str, str], field: str, bounds: tuple[int, int],
             default: int | None) -> int | None:
    """An optional whole-number setting; `default` when absent or corrupt (reported)."""
    raw = fields.get(field)
    if not raw:
        return default
    value = f.integer(raw, bounds)
    if value is None:
        st.bad(field, raw, default)
        return default
    return value

"""Readers for the values stored in an extension's hash: untrusted text in, checked values out.

The call path (agi.settings) reads every field through these functions, and the admin
layer's views are built from what it read, so `ext show` can never describe a value
differently from how a call uses it; the admin layer writes external devices back
through ExternalDevice.stored(). A reader returns None for a value it can't accept;
agi.settings decides what a corrupt value means and reports it. No I/O, and nothing
heavier than json and re: this module is imported on every process-AGI call.
"""

import json
import re

# forward_when: "always", or a non-empty subset of these, comma-separated, in this order.
WHEN_ALWAYS = "always"
WHEN_OFFLINE = "offline"
WHEN_BUSY = "busy"
WHEN_NOANSWER = "noanswer"
CONDITIONS = (WHEN_OFFLINE, WHEN_BUSY, WHEN_NOANSWER)

# Inclusive ranges of the numeric settings, in seconds unless said otherwise.
FORWARD_AFTER = (5, 300)
FORWARD_AFTER_DEFAULT = 20
DEVICE_DELAY = (0, 60)
DEVICE_RING = (5, 120)
CONFIRM_TRIES = (1, 9)  # prompts
CONFIRM_TIMEOUT = (1, 30)

# An Asterisk sound name, e.g. custom/press-1: no dots (so no "..", no extension), no
# leading "/", nothing Playback() or Read() would treat as syntax.
_SOUND = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
SOUND_MAX = 64

# Keys of an external device stored in object form.
D_NUMBER = "number"
D_KEYPRESS = "require_keypress"
D_DELAY = "delay"
D_RING = "ring"


def forward_when(raw: str) -> tuple[str, ...] | None:
    """The conditions of a stored forward_when: () for always, None if corrupt.

    Only the canonical spelling is accepted (the one the CLI writes), so each valid
    setting has exactly one stored form.
    """
    if raw == WHEN_ALWAYS:
        return ()
    items = tuple(raw.split(","))
    canonical = tuple(c for c in CONDITIONS if c in items)
    return items if items == canonical and items else None


def when_text(conditions: tuple[str, ...]) -> str:
    """The stored form of a set of conditions (the inverse of forward_when)."""
    return ",".join(c for c in CONDITIONS if c in conditions) or WHEN_ALWAYS


def integer(raw: str, bounds: tuple[int, int]) -> int | None:
    """A whole number written in ASCII digits within `bounds`, or None."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        return None
    value = int(raw)
    return value if bounds[0] <= value <= bounds[1] else None


def is_sound(raw: str) -> bool:
    return len(raw) <= SOUND_MAX and _SOUND.fullmatch(raw) is not None


def json_list(raw: str) -> list | None:
    """A stored JSON array, or None if the text is not one."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


class ExternalDevice:
    """One entry of external_devices. The number's own rules are checked by the caller.

    require_keypress None follows the extension's forward_require_keypress; ring None
    leaves the ring time to the dialplan.
    """

    __slots__ = ("delay", "number", "require_keypress", "ring")

    def __init__(self, number: str, *, require_keypress: bool | None = None, delay: int = 0,
                 ring: int | None = None):
        self.number = number
        self.require_keypress = require_keypress
        self.delay = delay
        self.ring = ring

    def stored(self) -> str | dict:
        """The JSON value to store: the plain number (readable by older agents) unless a
        setting differs from its default."""
        settings = {}
        if self.require_keypress is not None:
            settings[D_KEYPRESS] = self.require_keypress
        if self.delay:
            settings[D_DELAY] = self.delay
        if self.ring is not None:
            settings[D_RING] = self.ring
        return {D_NUMBER: self.number, **settings} if settings else self.number


def external_device(item: object) -> ExternalDevice | None:
    """Read one stored entry: an E.164 string, or an object with the settings above.

    Unknown keys of an object are ignored (a newer writer must not break a call); a
    known key with a wrong type or out of range makes the entry corrupt. JSON booleans
    are not numbers here, although Python's bool is an int.
    """
    if isinstance(item, str):
        return ExternalDevice(item)
    if not isinstance(item, dict) or not isinstance(item.get(D_NUMBER), str):
        return None
    keypress = item.get(D_KEYPRESS)
    delay = item.get(D_DELAY, 0)
    ring = item.get(D_RING)
    if keypress is not None and not isinstance(keypress, bool):
        return None
    if not _int_within(delay, DEVICE_DELAY) or not (ring is None
                                                    or _int_within(ring, DEVICE_RING)):
        return None
    return ExternalDevice(item[D_NUMBER], require_keypress=keypress, delay=delay, ring=ring)


def _int_within(value: object, bounds: tuple[int, int]) -> bool:
    return type(value) is int and bounds[0] <= value <= bounds[1]


def external_devices(raw: str | None) -> list[ExternalDevice]:
    """The readable entries of a stored external_devices, for display and edits."""
    items = json_list(raw) if raw else None
    return [device for device in map(external_device, items or []) if device is not None]


def dumps_external_devices(devices: list[ExternalDevice]) -> str:
    return json.dumps([device.stored() for device in devices], separators=(",", ":"))

"""Feature codes: forwarding switched on, off or toggled from the extension's desk phone.

The dialplan identifies the calling extension and runs
AGI(callroute-feature,<action>,<ext>[,<digits>]), or agi://.../feature with the same
arguments. The change is an admin write with exactly the CLI's rules and atomicity
(agi/admin.py), so this path imports redis-py and phonenumbers, lazily; the routing
path never does. The outcome is two channel variables, for the dialplan to announce.
"""

from collections.abc import Callable

from agi import admin, routing
from agi import variables as v
from agi.config import Config, ConfigError, load
from agi.guard import is_extension
from agi.protocol import AgiProtocolError, AgiSession, ChannelHungUp
from agi.store import AdminStore, DidTaken, StoreError

ACTION_ON = "on"
ACTION_OFF = "off"
ACTION_TOGGLE = "toggle"
# What a phone sends as a number: keypad digits, perhaps after a "+". Nothing else is
# passed on, or echoed in a log line.
_MAX_DIGITS = 20


def turn_on(store: AdminStore, config: Config, ext: str, digits: str) -> str:
    """Forward to the number dialled (national or +E.164); the target."""
    new, _owner = admin.forward_on(store, config, ext, digits)
    return new[routing.F_FORWARD_TARGET]


def turn_off(store: AdminStore, config: Config, ext: str, digits: str) -> str:
    """Stop forwarding, keeping the target for a later toggle; "" (nothing forwarded)."""
    admin.forward_off(store, ext)
    return ""


def toggle(store: AdminStore, config: Config, ext: str, digits: str) -> str:
    """Off if on, else on to the stored target; the target if now on, else ""."""
    new = admin.forward_toggle(store, config, ext)
    return new[routing.F_FORWARD_TARGET] if new[routing.F_FORWARD_ENABLED] == "1" else ""


ACTIONS: dict[str, Callable[[AdminStore, Config, str, str], str]] = {
    ACTION_ON: turn_on, ACTION_OFF: turn_off, ACTION_TOGGLE: toggle}


def is_digits(text: str) -> bool:
    bare = text.removeprefix("+")
    return 0 < len(bare) <= _MAX_DIGITS and bare.isascii() and bare.isdigit()


def run(config: Config, action: str, ext: str, digits: str) -> tuple[str, str, str]:
    """(FEATURE_STATUS, FEATURE_TARGET, why for the log or "") of one request."""
    if action not in ACTIONS:
        return v.FEATURE_REFUSED, "", "unknown action"
    if not is_extension(ext):
        return v.FEATURE_REFUSED, "", "invalid extension"
    if action == ACTION_ON and not is_digits(digits):
        return v.FEATURE_REFUSED, "", "the digits dialled are not a phone number"
    try:
        store = AdminStore(config)
    except StoreError as exc:
        return v.FEATURE_ERROR, "", str(exc)
    try:
        target = ACTIONS[action](store, config, ext, digits)
    except (admin.UsageError, DidTaken) as exc:
        return v.FEATURE_REFUSED, "", str(exc)
    except StoreError as exc:
        return v.FEATURE_ERROR, "", str(exc)
    finally:
        store.close()
    return (v.FEATURE_ON, target, "") if target else (v.FEATURE_OFF, "", "")


def handle_feature(session: AgiSession, argv: list[str], config: Config | None = None) -> None:
    """Apply one feature request on `session`. Never raises.

    Process AGI passes its command line (which no caller can forge); FastAGI only has the
    AGI environment's agi_arg_1..3. FEATURE_STATUS is set last: once the dialplan sees
    it, FEATURE_TARGET is in place.
    """
    args = list(argv) if argv else [session.argument(n) for n in (1, 2, 3)]
    action, ext, digits = [*args, "", "", ""][:3]
    try:
        if config is None:
            config = load()
        status, target, why = run(config, action, ext, digits)
    except ConfigError as exc:
        status, target, why = v.FEATURE_ERROR, "", f"configuration error: {exc}"
    try:
        session.set_variable(v.FEATURE_TARGET, target)
        session.set_variable(v.FEATURE_STATUS, status)
        if why:  # one line; the extension is named only once known to be well formed
            shown = ext if is_extension(ext) else "?"
            session.verbose(f"callroute-feature: ext {shown}: {status} ({why})", 1)
    except (ChannelHungUp, AgiProtocolError):
        pass

"""Feature codes: forwarding switched on, off or toggled from the extension's desk phone.

The dialplan identifies the calling extension and runs
AGI(callroute-feature,<action>,<ext>[,<digits>]), or agi://.../feature with the same
arguments. The change is an admin-layer write (agi.admin) with exactly the CLI's rules,
atomicity and audit record, by the actor phone:<ext>. agi.admin, redis-py and
phonenumbers are imported only when a request arrives; the routing path never imports
them. The outcome is two channel variables, for the dialplan to announce.
"""

from agi import variables as v
from agi.config import Config, ConfigError, load
from agi.guard import is_extension
from agi.protocol import AgiProtocolError, AgiSession, ChannelHungUp

ACTION_ON = "on"
ACTION_OFF = "off"
ACTION_TOGGLE = "toggle"
ACTIONS = (ACTION_ON, ACTION_OFF, ACTION_TOGGLE)
# What a phone sends as a number: keypad digits, perhaps after a "+". Nothing else is
# passed on, or echoed in a log line.
_MAX_DIGITS = 20


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
    from agi import admin

    try:
        store = admin.AdminStore(config)
    except admin.StoreError as exc:
        return v.FEATURE_ERROR, "", str(exc)
    actor = admin.Actor(f"phone:{ext}")
    try:
        if action == ACTION_TOGGLE:
            view = admin.toggle_forwarding(store, config, ext, actor)
        else:
            changes = admin.ForwardingChanges(enabled=True, target=digits) \
                if action == ACTION_ON else admin.ForwardingChanges(enabled=False)
            view = admin.set_forwarding(store, config, ext, changes, actor)
    except admin.Refused as exc:
        return v.FEATURE_REFUSED, "", str(exc)
    except admin.StoreError as exc:
        return v.FEATURE_ERROR, "", str(exc)
    finally:
        store.close()
    if view.forward.enabled:
        return v.FEATURE_ON, view.forward.target, ""
    return v.FEATURE_OFF, "", ""


def handle_feature(session: AgiSession, argv: list[str], config: Config | None = None) -> str:
    """Apply one feature request on `session`; its FEATURE_STATUS (for the metrics).
    Never raises.

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
    return status

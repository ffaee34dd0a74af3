"""Call forwarding: on, off, its options, and the desk phone's toggle."""

from __future__ import annotations

from agi import fields as f
from agi import schema as s
from agi.admin import audit, checks
from agi.admin import errors as e
from agi.admin.inputs import Actor, ForwardingChanges, given
from agi.admin.views import ExtensionView
from agi.admin.write import Reachable, edit, reachable, view_of
from agi.config import Config
from agi.store import AdminStore


def set_forwarding(store: AdminStore, config: Config, ext: str, changes: ForwardingChanges,
                   actor: Actor, *, if_match: str | None = None) -> ExtensionView:
    """Change forwarding; options not given keep their stored value.

    Turning it on without a target uses the stored one (checked again); turning it off
    keeps the target and the options, like unticking a box.
    """
    checks.extension(ext)
    when = checks.conditions(changes.when) if given(changes.when) else None
    after = checks.whole(changes.after, f.FORWARD_AFTER, s.F_FORWARD_AFTER) \
        if given(changes.after) else None
    caller_id = checks.caller_id(changes.caller_id) if given(changes.caller_id) else None
    keypress = checks.flag(changes.require_keypress, s.F_REQUIRE_KEYPRESS) \
        if given(changes.require_keypress) else None
    enable = checks.flag(changes.enabled, s.F_FORWARD_ENABLED) \
        if given(changes.enabled) else None
    target: Reachable | None = None
    if given(changes.target):
        target = reachable(store, config, ext, changes.target, s.F_FORWARD_TARGET)
    elif enable:
        target = _stored_target(store, config, ext)

    def mutate(new: dict[str, str]) -> None:
        if target is not None:
            if not given(changes.target) and new.get(s.F_FORWARD_TARGET) != target.raw:
                raise _changed(ext)
            target.recheck(new)
            new[s.F_FORWARD_TARGET] = target.number
        if enable is not None:
            new[s.F_FORWARD_ENABLED] = "1" if enable else "0"
        if when is not None:
            new[s.F_FORWARD_WHEN] = f.when_text(when)
        if after is not None:
            # A corrupt stored value counts as noanswer, as on the call path.
            conditions = f.forward_when(new.get(s.F_FORWARD_WHEN) or f.WHEN_ALWAYS)
            if conditions is not None and f.WHEN_NOANSWER not in conditions:
                raise e.Refused.one(e.AFTER_NEEDS_NOANSWER, s.F_FORWARD_AFTER,
                                    "the ring time before forwarding (after) only applies "
                                    "when forwarding on noanswer")
            new[s.F_FORWARD_AFTER] = str(after)
        if caller_id is not None:
            new[s.F_FORWARD_CALLER_ID] = caller_id
        if keypress is not None:
            new[s.F_REQUIRE_KEYPRESS] = "1" if keypress else "0"
        if enable:
            new.setdefault(s.F_FORWARD_WHEN, f.WHEN_ALWAYS)
            new.setdefault(s.F_FORWARD_CALLER_ID, s.CALLER_ID_ORIGINAL)
            new.setdefault(s.F_REQUIRE_KEYPRESS, "0")

    _, new = edit(store, ext, mutate, actor, audit.FORWARDING_SET, if_match)
    return view_of(store, config, ext, new)


def toggle_forwarding(store: AdminStore, config: Config, ext: str,
                      actor: Actor) -> ExtensionView:
    """Forwarding off if on; else on to the stored target (checked again)."""
    checks.extension(ext)
    fields = checks.exists(ext, store.get_extension(ext))
    target = None
    if fields.get(s.F_FORWARD_ENABLED) != "1":
        target = _stored_target(store, config, ext, fields)

    def mutate(new: dict[str, str]) -> None:
        if new.get(s.F_FORWARD_ENABLED) == "1":
            new[s.F_FORWARD_ENABLED] = "0"
            return
        # Checked above, unless another admin changed it since: then refuse, not guess.
        if target is None or new.get(s.F_FORWARD_TARGET) != target.raw:
            raise _changed(ext)
        target.recheck(new)
        new[s.F_FORWARD_ENABLED] = "1"
        new[s.F_FORWARD_TARGET] = target.number

    _, new = edit(store, ext, mutate, actor, audit.FORWARDING_TOGGLE, None)
    return view_of(store, config, ext, new)


def _stored_target(store: AdminStore, config: Config, ext: str,
                   fields: dict[str, str] | None = None) -> Reachable:
    if fields is None:
        fields = checks.exists(ext, store.get_extension(ext))
    raw = fields.get(s.F_FORWARD_TARGET, "")
    if not raw:
        raise e.Refused.one(e.NO_TARGET, s.F_FORWARD_TARGET,
                            f"extension {ext} has no forward target to turn on")
    return reachable(store, config, ext, raw, s.F_FORWARD_TARGET)


def _changed(ext: str) -> e.Refused:
    return e.Refused.one(e.CHANGED, s.F_FORWARD_TARGET,
                         f"extension {ext} changed meanwhile; try again")

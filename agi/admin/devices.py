"""External devices: numbers that ring with the desk phones, each with its settings."""

from __future__ import annotations

from agi import fields as f
from agi import schema as s
from agi.admin import audit, checks
from agi.admin import errors as e
from agi.admin.inputs import Actor, DeviceChanges, given
from agi.admin.views import ExtensionView
from agi.admin.write import edit, reachable, view_of
from agi.config import Config
from agi.store import AdminStore

F_NUMBER = s.F_EXTERNAL


def put_device(store: AdminStore, config: Config, ext: str, number: str,
               changes: DeviceChanges, actor: Actor, *,
               if_match: str | None = None) -> ExtensionView:
    """Add the external number, or change the settings given of an existing one."""
    return _put(store, config, ext, number, changes, actor, if_match, must_exist=False)


def update_device(store: AdminStore, config: Config, ext: str, number: str,
                  changes: DeviceChanges, actor: Actor, *,
                  if_match: str | None = None) -> ExtensionView:
    """As put_device, but refused (not_a_device) if the extension doesn't have it."""
    return _put(store, config, ext, number, changes, actor, if_match, must_exist=True)


def remove_device(store: AdminStore, config: Config, ext: str, number: str, actor: Actor,
                  *, if_match: str | None = None) -> ExtensionView:
    checks.extension(ext)
    e164 = checks.number(number, config, F_NUMBER, purpose="own")

    def mutate(new: dict[str, str]) -> None:
        devices = f.external_devices(new.get(s.F_EXTERNAL))
        if e164 not in (d.number for d in devices):
            raise _not_a_device(e164, ext)
        new[s.F_EXTERNAL] = f.dumps_external_devices([d for d in devices if d.number != e164])

    _, new = edit(store, ext, mutate, actor, audit.DEVICE_REMOVE, if_match)
    return view_of(store, config, ext, new, subject=e164)


def _put(store: AdminStore, config: Config, ext: str, raw: str, changes: DeviceChanges,
         actor: Actor, if_match: str | None, *, must_exist: bool) -> ExtensionView:
    checks.extension(ext)
    keypress = changes.require_keypress
    if given(keypress) and keypress is not None:
        checks.flag(keypress, "require_keypress")
    delay = checks.whole(changes.delay, f.DEVICE_DELAY, "delay") \
        if given(changes.delay) else None
    ring = changes.ring
    if given(ring) and ring is not None:
        ring = checks.whole(ring, f.DEVICE_RING, "ring")
    number = reachable(store, config, ext, raw, F_NUMBER)

    def mutate(new: dict[str, str]) -> None:
        number.recheck(new)
        devices = f.external_devices(new.get(s.F_EXTERNAL))
        device = next((d for d in devices if d.number == number.number), None)
        if device is None:
            if must_exist:
                raise _not_a_device(number.number, ext)
            device = f.ExternalDevice(number.number)
            devices.append(device)
        if given(keypress):
            device.require_keypress = keypress
        if delay is not None:
            device.delay = delay
        if given(ring):
            device.ring = ring
        new[s.F_EXTERNAL] = f.dumps_external_devices(devices)

    _, new = edit(store, ext, mutate, actor,
                  audit.DEVICE_UPDATE if must_exist else audit.DEVICE_PUT, if_match)
    return view_of(store, config, ext, new, subject=number.number,
                   subject_extension=number.owner)


def _not_a_device(number: str, ext: str) -> e.Refused:
    return e.Refused.one(e.NOT_A_DEVICE, F_NUMBER,
                         f"{number} is not an external device of extension {ext}")

"""Extensions and the company: read for display, create, update, remove."""

from __future__ import annotations

import json

from agi import fields as f
from agi import schema as s
from agi.admin import audit, checks
from agi.admin import errors as e
from agi.admin.inputs import UNSET, Actor, ExtensionChanges, Maybe, given
from agi.admin.views import CompanyView, ExtensionView, extension_view
from agi.admin.write import view_of, write
from agi.config import Config
from agi.store import AdminStore


def get_extension(store: AdminStore, config: Config, ext: str) -> ExtensionView:
    checks.extension(ext)
    fields = checks.exists(ext, store.get_extension(ext))
    return view_of(store, config, ext, fields)


def list_extensions(store: AdminStore, config: Config) -> list[ExtensionView]:
    company = store.get_company()
    return [extension_view(ext, fields, company, config)
            for ext, fields in store.all_extensions().items() if fields]


def put_extension(store: AdminStore, config: Config, ext: str, changes: ExtensionChanges,
                  actor: Actor, *, if_match: str | None = None) -> ExtensionView:
    """Create `ext`, or update it; settings not given keep their stored (or default)
    value. The view's `created` says which."""
    return _put(store, config, ext, changes, actor, if_match, must_exist=False)


def update_extension(store: AdminStore, config: Config, ext: str, changes: ExtensionChanges,
                     actor: Actor, *, if_match: str | None = None) -> ExtensionView:
    """As put_extension, but NotFound if `ext` does not exist."""
    return _put(store, config, ext, changes, actor, if_match, must_exist=True)


def remove_extension(store: AdminStore, config: Config, ext: str, actor: Actor, *,
                     if_match: str | None = None) -> None:
    checks.extension(ext)

    def change(fields: dict[str, str]) -> None:
        checks.exists(ext, fields)
        return None  # delete it

    write(store, ext, change, actor, audit.EXT_REMOVE, if_match)


def _put(store: AdminStore, config: Config, ext: str, changes: ExtensionChanges,
         actor: Actor, if_match: str | None, *, must_exist: bool) -> ExtensionView:
    checks.extension(ext)
    values = _checked(ext, changes, config)
    did = values.get(s.F_DID)
    if did:  # the DID map says the same, except for DIDs stored before it existed
        for other, fields in store.all_extensions().items():
            if other != ext and fields.get(s.F_DID) == did:
                raise e.Refused.one(e.DID_TAKEN, s.F_DID,
                                    f"{did} is already the DID of extension {other}")

    def change(fields: dict[str, str]) -> dict[str, str]:
        new = checks.exists(ext, fields) if must_exist else dict(fields)
        new.setdefault(s.F_DEVICES, _list([config.default_device_for(ext)]))
        new.setdefault(s.F_MAILBOX, s.mailbox(ext, config.voicemail_context))
        new.setdefault(s.F_FORWARD_ENABLED, "0")
        if did:
            dialled = [d.number for d in f.external_devices(new.get(s.F_EXTERNAL))]
            if did in (new.get(s.F_FORWARD_TARGET), *dialled):
                raise e.Refused.one(e.DID_LOOP, s.F_DID,
                                    f"{did} is a forward target or external device of "
                                    f"extension {ext}; as its DID, calls there would loop")
        for field, value in values.items():
            if value is None:
                new.pop(field, None)
            else:
                new[field] = value
        return new

    old, new = write(store, ext, change, actor,
                     audit.EXT_UPDATE if must_exist else audit.EXT_PUT, if_match)
    return view_of(store, config, ext, new, created=not old)


def _checked(ext: str, changes: ExtensionChanges,
             config: Config) -> dict[str, str | None]:
    """The stored form of every setting given (None: remove it), all checked first."""
    values: dict[str, str | None] = {}
    if given(changes.devices):
        values[s.F_DEVICES] = _list(checks.devices(changes.devices, ext))
    if given(changes.mailbox):
        values[s.F_MAILBOX] = checks.mailbox(changes.mailbox, ext)
    if given(changes.did):
        values[s.F_DID] = checks.number(changes.did, config, s.F_DID, purpose="own") \
            if changes.did else None
    if given(changes.externals_during_calls):
        values[s.F_EXTERNALS_DURING_CALLS] = _flag(
            checks.flag(changes.externals_during_calls, s.F_EXTERNALS_DURING_CALLS))
    for field, value, bounds in ((s.F_CONFIRM_TRIES, changes.confirm_tries, f.CONFIRM_TRIES),
                                 (s.F_CONFIRM_TIMEOUT, changes.confirm_timeout,
                                  f.CONFIRM_TIMEOUT)):
        if given(value):
            values[field] = None if value is None else str(checks.whole(value, bounds, field))
    if given(changes.confirm_prompt):
        values[s.F_CONFIRM_PROMPT] = None if changes.confirm_prompt is None \
            else checks.sound(changes.confirm_prompt)
    return values


def _list(items: list[str]) -> str:
    return json.dumps(items, separators=(",", ":"))


def _flag(value: bool) -> str:
    return "1" if value else "0"


def get_company(store: AdminStore, config: Config) -> CompanyView:
    company = store.get_company()
    return CompanyView(company.get(s.F_COMPANY_CALLER_ID, ""),
                       company.get(s.F_COMPANY_NAME, ""))


def set_company(store: AdminStore, config: Config, *, caller_id: Maybe[str] = UNSET,
                name: Maybe[str] = UNSET, actor: Actor) -> CompanyView:
    """The company's number (its caller ID) and name; the DID map is left alone."""
    fields: dict[str, str] = {}
    if given(caller_id):
        fields[s.F_COMPANY_CALLER_ID] = checks.number(caller_id, config,
                                                      s.F_COMPANY_CALLER_ID, purpose="own")
    if given(name):
        fields[s.F_COMPANY_NAME] = checks.name(name)
    if not fields:
        return get_company(store, config)
    new = store.update_company(lambda old: fields, audit.recorder(actor, audit.COMPANY_SET, ""))
    return CompanyView(new.get(s.F_COMPANY_CALLER_ID, ""), new.get(s.F_COMPANY_NAME, ""))


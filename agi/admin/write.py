"""The one way the admin layer writes an extension: checked, versioned, audited, atomic."""

from __future__ import annotations

from collections.abc import Callable

from agi import schema as s
from agi.admin import checks
from agi.admin import errors as e
from agi.admin.audit import recorder
from agi.admin.inputs import Actor
from agi.admin.views import ExtensionView, extension_view, version
from agi.config import Config
from agi.store import AdminStore, DidTaken

Change = Callable[[dict[str, str]], "dict[str, str] | None"]


def write(store: AdminStore, ext: str, change: Change, actor: Actor, action: str,
          if_match: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Apply `change` atomically with its audit record; (old, new) hashes.

    `if_match` is compared with the extension's version inside the transaction (Stale).
    """
    def checked(fields: dict[str, str]) -> dict[str, str] | None:
        if if_match is not None and version(fields) != if_match:
            raise e.Stale(ext)
        return change(fields)

    try:
        return store.update_extension(ext, checked, recorder(actor, action, ext))
    except DidTaken as exc:
        raise e.Refused.one(e.DID_TAKEN, s.F_DID, str(exc)) from None


def edit(store: AdminStore, ext: str, mutate: Callable[[dict[str, str]], None], actor: Actor,
         action: str, if_match: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Change an existing extension's fields in place (NotFound if it is absent)."""
    def change(fields: dict[str, str]) -> dict[str, str]:
        new = checks.exists(ext, fields)
        mutate(new)
        return new
    return write(store, ext, change, actor, action, if_match)


def view_of(store: AdminStore, config: Config, ext: str, fields: dict[str, str], *,
            created: bool = False, subject: str = "",
            subject_extension: str = "") -> ExtensionView:
    return extension_view(ext, fields, store.get_company(), config, created=created,
                          subject=subject, subject_extension=subject_extension)


class Reachable:
    """A number an extension may forward to or ring, checked against the rules."""

    __slots__ = ("company", "config", "ext", "field", "number", "owner", "raw")

    def __init__(self, raw: str, number: str, owner: str, ext: str, company: dict[str, str],
                 config: Config, field: str):
        self.raw = raw  # as given (or as stored)
        self.number = number
        self.owner = owner  # the other extension whose DID it is: calls hop there
        self.ext = ext
        self.company = company
        self.config = config
        self.field = field

    def recheck(self, fields: dict[str, str]) -> None:
        """The own-number rule again, on the fields a transaction just read, so a DID
        changed since the first check can't slip through."""
        checks.number(self.number, self.config, self.field,
                      own=checks.own_numbers(self.ext, fields, self.company))


def reachable(store: AdminStore, config: Config, ext: str, raw: str, field: str) -> Reachable:
    """`raw` as a number `ext` may forward to or ring (NotFound, Refused).

    When the number is the DID of another extension stored before the DID map existed,
    that extension is rewritten unchanged first, which indexes its DID: calls then hop
    to it instead of dialling out through the public network.
    """
    company = store.get_company()
    fields = checks.exists(ext, store.get_extension(ext))
    number = checks.number(raw, config, field, own=checks.own_numbers(ext, fields, company))
    owner = company.get(s.did_field(number), "")
    if not owner:
        for other, other_fields in store.all_extensions().items():
            if other != ext and other_fields.get(s.F_DID) == number:
                store.update_extension(other, lambda current: current or None)
                owner = other
    return Reachable(raw, number, owner, ext, company, config, field)

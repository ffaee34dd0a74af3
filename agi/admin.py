"""Admin operations shared by the CLI and the desk-phone feature codes.

One place for the write-time rules and the atomic edits built on AdminStore, so a
number dialled on a desk phone is judged exactly like one typed at the CLI. Nothing
here prints: callers report the outcome. phonenumbers is imported only when a number
is checked, and redis-py only by AdminStore.
"""

from __future__ import annotations

from collections.abc import Callable

from agi import fields as f
from agi import routing
from agi.config import Config
from agi.guard import is_extension
from agi.store import AdminStore


class UsageError(Exception):
    """Invalid input: reported in one line, exit status 2, nothing written."""


def check_ext(ext: str) -> str:
    if not is_extension(ext):
        raise UsageError(f"{ext!r} is not a valid extension (letters, digits, '_' or '-', "
                         "at most 32)")
    return ext


def normalise(raw: str, config: Config, *, own: frozenset[str] = frozenset(),
              purpose: str = "target") -> str:
    """`raw` as E.164 under the toll-fraud rules of agi/numbers.py, or UsageError."""
    from agi.numbers import NumberRejected
    from agi.numbers import normalise as parse

    try:
        return parse(raw, config.country, own_numbers=own, purpose=purpose)
    except NumberRejected as exc:
        raise UsageError(str(exc)) from None


def own_numbers(ext: str, fields: dict[str, str], company: dict[str, str]) -> frozenset[str]:
    """Numbers `ext` may never forward to or ring: the company number and its own DID.

    Forwarding there would loop through the public network. Other extensions' DIDs are
    allowed: a call to one hops to that extension's rules inside the PBX.
    """
    numbers = {company.get(routing.F_COMPANY_CALLER_ID, ""), fields.get(routing.F_DID, "")}
    numbers |= {key.removeprefix(routing.F_COMPANY_DID_PREFIX) for key, owner in company.items()
                if key.startswith(routing.F_COMPANY_DID_PREFIX) and owner == ext}
    return frozenset(n for n in numbers if n)


def require(ext: str, fields: dict[str, str]) -> dict[str, str]:
    if not fields:
        raise UsageError(f"extension {ext} does not exist; create it with "
                         f"'callroute ext add {ext}'")
    return dict(fields)


def edit(store: AdminStore, ext: str, mutate: Callable[[dict[str, str]], None]) -> dict:
    """Change an existing extension's fields in place, atomically; the new fields."""
    def change(fields: dict[str, str]) -> dict[str, str]:
        new = require(ext, fields)
        mutate(new)
        return new
    return store.update_extension(ext, change)


class Reachable:
    """A number an extension may forward to or ring, checked against the rules."""

    __slots__ = ("company", "config", "ext", "number", "owner")

    def __init__(self, number: str, owner: str, ext: str, company: dict[str, str],
                 config: Config):
        self.number = number
        self.owner = owner  # the other extension whose DID it is: calls hop there
        self.ext = ext
        self.company = company
        self.config = config

    def recheck(self, fields: dict[str, str]) -> None:
        """The own-number rule again, on the fields a transaction just read, so a DID
        changed since the first check can't slip through."""
        normalise(self.number, self.config, own=own_numbers(self.ext, fields, self.company))


def reachable(store: AdminStore, config: Config, ext: str, raw: str) -> Reachable:
    """`raw` as a number `ext` may forward to or ring, or UsageError.

    When the number is the DID of another extension stored before the DID map existed,
    that extension is rewritten unchanged first, which indexes its DID: calls then hop
    to it instead of dialling out through the public network.
    """
    company = store.get_company()
    fields = require(ext, store.get_extension(ext))
    number = normalise(raw, config, own=own_numbers(ext, fields, company))
    owner = company.get(routing.did_field(number), "")
    if not owner:
        for other, other_fields in store.all_extensions().items():
            if other != ext and other_fields.get(routing.F_DID) == number:
                store.update_extension(other, lambda current: current or None)
                owner = other
    return Reachable(number, owner, ext, company, config)


def forward_on(store: AdminStore, config: Config, ext: str, raw: str, *,
               when: str | None = None, after: int | None = None,
               caller_id: str | None = None,
               keypress: bool | None = None) -> tuple[dict, str]:
    """Forward `ext` to `raw`; options left None keep their stored value.

    The new fields, and the extension whose rules the calls follow when the target is its
    DID ("" otherwise).
    """
    check_ext(ext)
    target = reachable(store, config, ext, raw)

    def mutate(new: dict[str, str]) -> None:
        target.recheck(new)
        new[routing.F_FORWARD_ENABLED] = "1"
        new[routing.F_FORWARD_TARGET] = target.number
        if when is not None:
            new[routing.F_FORWARD_WHEN] = when
        new.setdefault(routing.F_FORWARD_WHEN, f.WHEN_ALWAYS)
        if after is not None:
            # A corrupt stored value counts as noanswer, as on the call path.
            conditions = f.forward_when(new[routing.F_FORWARD_WHEN])
            if conditions is not None and f.WHEN_NOANSWER not in conditions:
                raise UsageError("--after is how long the phones ring before an unanswered "
                                 "call is forwarded; it needs --when with noanswer")
            new[routing.F_FORWARD_AFTER] = str(after)
        if caller_id is not None:
            new[routing.F_FORWARD_CALLER_ID] = caller_id
        new.setdefault(routing.F_FORWARD_CALLER_ID, routing.CALLER_ID_ORIGINAL)
        if keypress is not None:
            new[routing.F_REQUIRE_KEYPRESS] = "1" if keypress else "0"
        new.setdefault(routing.F_REQUIRE_KEYPRESS, "0")

    return edit(store, ext, mutate), target.owner


def forward_off(store: AdminStore, ext: str) -> dict:
    """Stop forwarding; the target and options stay, like unticking a box."""
    check_ext(ext)
    return edit(store, ext, lambda new: new.update({routing.F_FORWARD_ENABLED: "0"}))


def forward_toggle(store: AdminStore, config: Config, ext: str) -> dict:
    """Forwarding off if on; else on to the stored target (checked again). The new fields."""
    check_ext(ext)
    fields = require(ext, store.get_extension(ext))
    target = None
    if fields.get(routing.F_FORWARD_ENABLED) != "1":
        target = reachable(store, config, ext, _stored_target(ext, fields))

    def mutate(new: dict[str, str]) -> None:
        if new.get(routing.F_FORWARD_ENABLED) == "1":
            new[routing.F_FORWARD_ENABLED] = "0"
            return
        # Checked above, unless another admin changed it since: then refuse, not guess.
        if target is None or new.get(routing.F_FORWARD_TARGET) != fields.get(
                routing.F_FORWARD_TARGET):
            raise UsageError(f"extension {ext} changed meanwhile; try again")
        target.recheck(new)
        new[routing.F_FORWARD_ENABLED] = "1"
        new[routing.F_FORWARD_TARGET] = target.number

    return edit(store, ext, mutate)


def _stored_target(ext: str, fields: dict[str, str]) -> str:
    target = fields.get(routing.F_FORWARD_TARGET, "")
    if not target:
        raise UsageError(f"extension {ext} has no forward target to turn on")
    return target

"""What a call does now, in the page's language: the admin layer's `behaviour`
sentence (agi.admin.views.behaviour), built the same way from the same Route, with its
words from the catalogs and numbers in national format."""

from __future__ import annotations

from collections.abc import Callable

from agi import variables as v
from agi.admin.views import ExtensionView, extension_view, version
from agi.config import Config
from agi.routing import Route, route_for
from agi.settings import EXTERNAL, HOP, Leg, read_settings
from agi.store import AdminStore

Words = Callable[..., str]
# NEXT_ON values in the order a sentence reads best (as in agi.admin.views).
_CONDITIONS = ((v.DIALSTATUS_NOANSWER, "beh.cond.noanswer"),
               (v.DIALSTATUS_BUSY, "beh.cond.busy"),
               (v.DIALSTATUS_OFFLINE, "beh.cond.offline"))


def view_and_route(store: AdminStore, config: Config, ext: str,
                   view: ExtensionView) -> tuple[ExtensionView, Route]:
    """The Route of the stored extension, and a view that agrees with it (rebuilt from
    the same read if the extension changed since `view` was read)."""
    fields, company = store.get_extension(ext), store.get_company()
    if fields and version(fields) != view.version:
        view = extension_view(ext, fields, company, config)
    return view, route_for(read_settings(ext, fields or {}, company, config), config)


def _leg(leg: Leg, t: Words, national: Callable[[str], str]) -> str:
    if leg.kind == HOP:
        return t("beh.leg.hop", ext=leg.ext)
    if leg.kind != EXTERNAL:
        return leg.dial
    details = [text for text, shown in ((t("beh.leg.press"), leg.keypress),
                                        (t("beh.leg.after", seconds=leg.delay), leg.delay),
                                        (t("beh.leg.for", seconds=leg.ring), leg.ring))
               if shown]
    number = national(leg.number)
    return t("beh.leg.details", number=number, details=", ".join(details)) if details \
        else number


def _listed(items: list[str], last: str) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def behaviour(route: Route, t: Words, national: Callable[[str], str]) -> str:
    voicemail = t("beh.voicemail", mailbox=route.mailbox)
    if route.mode == v.MODE_VOICEMAIL or not route.legs:
        return t("beh.nothing", mailbox=route.mailbox)
    if route.callerid:
        shown = t("beh.showing", number=national(route.callerid))
    elif route.callerid_retry:
        shown = t("beh.showing_retry", number=national(route.callerid_retry))
    elif route.trunk and route.mode == v.MODE_FORWARD:
        shown = t("beh.showing_caller")
    else:
        shown = ""
    if route.mode == v.MODE_FORWARD:
        leg = route.legs[0]
        if leg.kind == HOP:
            return t("beh.follow", ext=leg.ext, voicemail=voicemail)
        return t("beh.only", leg=_leg(leg, t, national), shown=shown, voicemail=voicemail)
    legs = _listed([_leg(leg, t, national) for leg in route.legs], t("beh.and"))
    ringing = t("beh.ringing", seconds=route.ringtime) if route.ringtime else ""
    quiet = t("beh.quiet") if route.desk_legs else ""
    then = ""
    if route.next_legs:
        statuses = route.next_on.split("-")
        conditions = [t(key) for status, key in _CONDITIONS if status in statuses]
        then = t("beh.then", legs=_listed([_leg(leg, t, national) for leg in route.next_legs],
                                          t("beh.and")),
                 conditions=_listed(conditions, t("beh.or")))
    return t("beh.ring", legs=legs, ringing=ringing, quiet=quiet, then=then, shown=shown,
             voicemail=voicemail)

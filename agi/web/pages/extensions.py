"""/extensions and /extensions/{ext}: the list, one extension's tabs, and forwarding.

Every write is one admin-layer call with the actor `web:<user>`. A refusal re-renders
the form with what was typed and the codes beside their fields (nothing was written:
the admin layer checks everything first); a success redirects (POST/redirect/GET), so
a reload never posts twice.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from agi import admin
from agi.admin import ExtensionChanges, ExtensionView, NotFound, Refusal, Refused
from agi.web.models import USER_FORWARDING_FIELDS
from agi.web.pages import access, forms, i18n, render, sentence
from agi.web.pages.access import FormData
from agi.web.pages.listing import RowCache, ViewCache
from agi.web.pages.sessions import Session

router = APIRouter(include_in_schema=False)
TABS = ("forwarding", "devices", "voicemail")
ADMIN_TABS = frozenset({"voicemail"})
MAX_QUERY = 64
_VIEWS, _ROWS = ViewCache(), RowCache()


def _ctx(request: Request):
    return request.app.state.store, request.app.state.config


def matches(view: ExtensionView, query: str) -> bool:
    """The search box: an extension, a desk device, or any digits of a number."""
    query = query.strip().lower()
    if not query:
        return True
    digits = "".join(ch for ch in query if ch.isdigit())
    texts = [view.extension, *view.devices, view.did, view.forward.target,
             *(d.number for d in view.external_devices)]
    return any(query in text.lower() or (digits and digits in "".join(
        ch for ch in text if ch.isdigit()) and len(digits) >= 3) for text in texts)


@router.get("/extensions")
def extension_list(request: Request, q: str = "") -> Response:
    session = access.current(request)
    if session is None:
        return render.to_login(request)
    if not session.user.is_admin:
        return render.forbidden(request, session)
    return _list_page(request, session, q[:MAX_QUERY])


def _list_page(request: Request, session: Session, query: str = "", *, status: int = 200,
               errors: dict | None = None, typed: str = "") -> Response:
    store, config = _ctx(request)
    # The views themselves, not their JSON: Jinja reads attributes much faster than
    # it falls back from a failed getattr to a dict key (this page has hundreds of rows).
    views = [view for view in _VIEWS.list_extensions(store, config) if matches(view, query)]
    rows = _ROWS.rows(views, render.language(request, session), lambda view: (
        render.fragment(request, "extension_row.html", session, view=view)))
    return render.page(request, "extensions.html", session, status=status, query=query,
                       rows=rows, errors=errors or {}, typed=typed)


@router.post("/extensions")
def add_extension(request: Request, form: FormData) -> Response:
    session = access.post_allowed(request, form)
    if session is None or not session.user.is_admin:
        return render.forbidden(request, session)
    store, config = _ctx(request)
    ext = forms.value(form, "extension")
    try:
        try:
            admin.get_extension(store, config, ext)
        except NotFound:
            admin.put_extension(store, config, ext, ExtensionChanges(),
                                access.actor(request, session))
            return render.see_other(f"/extensions/{ext}")
        raise Refused(Refusal("exists", "extension", f"extension {ext} already exists"))
    except Refused as exc:
        return _list_page(request, session, status=422, typed=ext,
                          errors=forms.field_errors(exc.refusals))


@router.get("/extensions/{ext}")
def extension_page(request: Request, ext: str, tab: str = "forwarding",
                   saved: str = "") -> Response:
    session = access.current(request)
    if session is None:
        return render.to_login(request)
    if not session.user.may_access(ext):
        return render.forbidden(request, session)
    return show(request, session, ext, tab=tab, saved=saved == "1")


def show(request: Request, session: Session, ext: str, *, tab: str = "forwarding",
         status: int = 200, errors: dict | None = None, typed: dict | None = None,
         saved: bool = False, confirm: str = "") -> Response:
    """One extension's page on `tab`; `typed` is the refused form, shown as typed."""
    if tab not in TABS or (tab in ADMIN_TABS and not session.user.is_admin):
        tab = "forwarding"
    store, config = _ctx(request)
    try:
        view = admin.get_extension(store, config, ext)
    except Refused:  # NotFound, or not even a valid extension (a URL typed by hand)
        return render.page(request, "error.html", session, status=404,
                           title_key="error.not_found.title",
                           message_key="error.not_found.text")
    view, route = sentence.view_and_route(store, config, ext, view)
    national = partial(render.national, country=config.country)
    values = forms.shown_values(view.to_json(), tab, typed, national)
    values["behaviour"] = sentence.behaviour(
        route, i18n.translator(render.language(request, session)), national)
    return render.page(request, "extension.html", session, status=status, view=view,
                       tab=tab, errors=errors or {}, typed=typed, saved=saved,
                       confirm=confirm, tabs=[t for t in TABS if t not in ADMIN_TABS
                                              or session.user.is_admin],
                       company=admin.get_company(store, config).caller_id, **values)


def _typed(form: forms.Form) -> dict:
    return {key: values if key == "when" else values[0] for key, values in form.items()
            if key != access.CSRF_FIELD}


@router.post("/extensions/{ext}/forwarding")
def save_forwarding(request: Request, ext: str, form: FormData) -> Response:
    session = access.post_allowed(request, form)
    if session is None or not session.user.may_access(ext):
        return render.forbidden(request, session)
    user = session.user
    if not user.is_admin and set(form) & {"caller_id"} - USER_FORWARDING_FIELDS:
        return render.forbidden(request, session)
    store, config = _ctx(request)
    try:
        changes = forms.forwarding(form, admin=user.is_admin)
        admin.set_forwarding(store, config, ext, changes, access.actor(request, session))
    except NotFound:
        return show(request, session, ext)
    except (Refused, forms.FormRefused) as exc:
        return show(request, session, ext, status=422, typed=_typed(form),
                    errors=forms.field_errors(exc.refusals))
    return render.see_other(f"/extensions/{ext}?tab=forwarding&saved=1")

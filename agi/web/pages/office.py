"""/company, /users and /audit: the admin's pages (users read their own audit trail)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from agi import admin
from agi.accounts import ROLES, AccountError, generate_password
from agi.admin import Refusal, Refused
from agi.web import api
from agi.web.auth import accounts_of
from agi.web.errors import ApiError
from agi.web.pages import access, forms, render
from agi.web.pages.access import FormData
from agi.web.pages.sessions import Session

router = APIRouter(include_in_schema=False)
AUDIT_SHOWN = 100


def _admin(request: Request) -> Session | Response:
    session = access.current(request)
    if session is None:
        return render.to_login(request)
    return session if session.user.is_admin else render.forbidden(request, session)


def _admin_post(request: Request, form: forms.Form) -> Session | Response:
    session = access.post_allowed(request, form)
    if session is None or not session.user.is_admin:
        return render.forbidden(request, session)
    return session


@router.get("/company")
def company_page(request: Request, saved: str = "") -> Response:
    session = _admin(request)
    if isinstance(session, Response):
        return session
    return _company(request, session, saved=saved == "1")


def _company(request: Request, session: Session, *, status: int = 200,
             errors: dict | None = None, typed: dict | None = None,
             saved: bool = False) -> Response:
    store, config = request.app.state.store, request.app.state.config
    return render.page(request, "company.html", session, status=status,
                       company=admin.get_company(store, config).to_json(),
                       errors=errors or {}, typed=typed, saved=saved)


@router.post("/company")
def save_company(request: Request, form: FormData) -> Response:
    session = _admin_post(request, form)
    if isinstance(session, Response):
        return session
    store, config = request.app.state.store, request.app.state.config
    try:
        admin.set_company(store, config, caller_id=forms.value(form, "caller_id"),
                          name=forms.value(form, "name"),
                          language=forms.value(form, "language") or None,
                          actor=access.actor(request, session))
    except Refused as exc:
        return _company(request, session, status=422, errors=forms.field_errors(
            exc.refusals), typed={key: values[0] for key, values in form.items()})
    return render.see_other("/company?saved=1")


@router.get("/users")
def users_page(request: Request, remove: str = "") -> Response:
    session = _admin(request)
    if isinstance(session, Response):
        return session
    return _users(request, session, confirm=remove[:64])


def _users(request: Request, session: Session, *, status: int = 200,
           errors: dict | None = None, typed: dict | None = None, confirm: str = "",
           shown: tuple[str, str] | None = None) -> Response:
    return render.page(request, "users.html", session, status=status,
                       users=accounts_of(request).list_users(), roles=ROLES,
                       errors=errors or {}, typed=typed, confirm=confirm, shown=shown)


@router.post("/users")
def add_user(request: Request, form: FormData) -> Response:
    session = _admin_post(request, form)
    if isinstance(session, Response):
        return session
    name, password = forms.value(form, "username"), generate_password()
    exts = forms.value(form, "extensions").replace(",", " ").split()
    try:
        accounts_of(request).add_user(name, forms.value(form, "role"), exts, password,
                                      actor=access.actor(request, session))
    except AccountError as exc:
        return _users(request, session, status=422, errors=forms.field_errors(
            [Refusal(exc.code, exc.field, str(exc))]),
            typed={key: values[0] for key, values in form.items()})
    # The password is in this one response only: never stored in clear, never logged.
    return _users(request, session, shown=(name, password))


@router.post("/users/{name}/password")
def reset_password(request: Request, name: str, form: FormData) -> Response:
    session = _admin_post(request, form)
    if isinstance(session, Response):
        return session
    password = generate_password()
    try:
        accounts_of(request).set_password(name, password,
                                          actor=access.actor(request, session))
    except AccountError:
        return _users(request, session, status=404)
    return _users(request, session, shown=(name, password))


@router.post("/users/{name}/remove")
def remove_user(request: Request, name: str, form: FormData) -> Response:
    session = _admin_post(request, form)
    if isinstance(session, Response):
        return session
    try:
        accounts_of(request).remove_user(name, actor=access.actor(request, session))
    except AccountError:
        return _users(request, session, status=404)
    return render.see_other("/users")


@router.get("/audit")
def audit_page(request: Request, ext: str = "") -> Response:
    """The API's own audit read: admins see all, users their extensions (not_yours
    otherwise), so the rule lives in one place."""
    session = access.current(request)
    if session is None:
        return render.to_login(request)
    try:
        records = [record.to_json() for record in api.audit_records(
            request.app.state.store, session.user, ext[:64] or None, AUDIT_SHOWN)]
    except ApiError:
        return render.forbidden(request, session)
    return render.page(request, "audit.html", session, records=records, ext=ext[:64])

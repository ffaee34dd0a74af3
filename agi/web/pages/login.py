"""/login, /logout, /language and /: sessions begin and end here.

Login shares the API's brute-force guard (agi.accounts: the same per-user and
per-address counters), so five failures through either lock out both.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from agi.web.auth import accounts_of, client_address
from agi.web.pages import access, i18n, render, sessions
from agi.web.pages.access import FormData

router = APIRouter(include_in_schema=False)


@router.get("/")
def root(request: Request) -> Response:
    session = access.current(request)
    return render.see_other(access.home(session) if session else "/login")


@router.get("/login")
def login_form(request: Request) -> Response:
    session = access.current(request)
    if session is not None:
        return render.see_other(access.home(session))
    return render.page(request, "login.html", None, error="", username="")


@router.post("/login")
def login(request: Request, form: FormData) -> Response:
    if not access.security.same_origin(request):
        return render.forbidden(request, None)
    accounts = accounts_of(request)
    name = render.first(form, "username").strip()[:64]
    password = render.first(form, "password")
    address = client_address(request)
    if accounts.locked_for(name, address):
        request.app.state.metrics.login("page", "locked")
        return render.page(request, "login.html", None, status=429,
                           error="login.throttled", username=name)
    user = accounts.authenticate(name, password)
    if user is None:
        accounts.record_failure(name, address)
        request.app.state.metrics.login("page", "wrong")
        return render.page(request, "login.html", None, status=401,
                           error="login.wrong", username=name)
    accounts.clear_failures(name)
    request.app.state.metrics.login("page", "ok")
    old = access.current(request)
    if old is not None:
        sessions.end(accounts, old)
    session = sessions.start(accounts, user, "")
    response = render.see_other(access.home(session))
    sessions.set_cookie(response, request, session.sid)
    return response


@router.post("/logout")
def logout(request: Request, form: FormData) -> Response:
    session = access.post_allowed(request, form)
    if session is None:
        return render.forbidden(request, access.current(request))
    sessions.end(accounts_of(request), session)
    return render.to_login(request)


def _local(path: str) -> str:
    """Only a path on this site (never //host or a scheme) is a place to go back to."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


@router.post("/language")
def language(request: Request, form: FormData) -> Response:
    session = access.post_allowed(request, form)
    lang = render.first(form, "lang")
    if session is None or lang not in i18n.LANGUAGES:
        return render.forbidden(request, access.current(request))
    sessions.set_language(accounts_of(request), session, lang)
    return render.see_other(_local(render.first(form, "next")))

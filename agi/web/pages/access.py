"""Who is asking a page, and whether a POST may change anything.

The role rules are the API's own (agi.accounts.User.may_access / is_admin and
agi.web.models.USER_FORWARDING_FIELDS): the pages only decide what to show.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from agi.admin import Actor
from agi.web.auth import accounts_of, client_address
from agi.web.pages import render, security, sessions
from agi.web.pages.sessions import Session

FormData = Annotated[dict[str, list[str]], Depends(render.form_data)]
CSRF_FIELD = "csrf"


def current(request: Request) -> Session | None:
    return sessions.load(accounts_of(request), request)


def post_allowed(request: Request, form: dict[str, list[str]]) -> Session | None:
    """The session of a POST that may change something, or None: 403, nothing written.

    It must come from one of our pages (Origin / Sec-Fetch-Site) and carry its session's
    CSRF token."""
    if not security.same_origin(request):
        return None
    session = current(request)
    if session is None or not security.csrf_ok(session.csrf, render.first(form, CSRF_FIELD)):
        return None
    return session


def actor(request: Request, session: Session) -> Actor:
    return Actor(f"web:{session.user.name}", client_address(request))


def home(session: Session) -> str:
    """Where a person lands: the list for an admin, their own extension otherwise."""
    if session.user.is_admin:
        return "/extensions"
    return f"/extensions/{session.user.extensions[0]}" if session.user.extensions else "/audit"

"""Page sessions in Redis: the cookie holds only a random ID, the server everything else.

A session is an Accounts secret (agi.accounts.issue) with `kind=session`, so removing a
user or changing their password ends their sessions, as it revokes their tokens. Its key
expires after IDLE_S without a request (each request pushes the expiry back, never past
the absolute end), so an idle or expired session simply no longer exists in Redis.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from agi.accounts import Accounts, User, token_key

COOKIE = "callroute_session"
IDLE_S = 30 * 60
ABSOLUTE = timedelta(hours=12)
KIND = "session"


@dataclass(frozen=True)
class Session:
    sid: str
    user: User
    csrf: str
    lang: str


def _parse(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def start(accounts: Accounts, user: User, lang: str) -> Session:
    """A new session (a fresh ID: never one the browser brought along)."""
    csrf = secrets.token_urlsafe(32)
    sid, _ = accounts.issue(user.name, ABSOLUTE, kind=KIND, csrf=csrf, lang=lang)
    accounts.client.expire(token_key(accounts.prefix, sid), IDLE_S)
    return Session(sid, user, csrf, lang)


def load(accounts: Accounts, request: Request) -> Session | None:
    """The request's live session (its idle expiry pushed back), or None."""
    sid = request.cookies.get(COOKIE, "")
    if not 20 <= len(sid) <= 128:
        return None
    key = token_key(accounts.prefix, sid)
    fields = accounts.client.hgetall(key)
    ends = _parse(fields.get("expires", ""))
    if fields.get("kind") != KIND or ends is None:
        return None
    left = int((ends - datetime.now(UTC)).total_seconds())
    user = accounts.get_user(fields.get("user", ""))
    if left <= 0 or user is None:
        return None
    accounts.client.expire(key, min(IDLE_S, left))
    return Session(sid, user, fields.get("csrf", ""), fields.get("lang", ""))


def set_language(accounts: Accounts, session: Session, lang: str) -> None:
    accounts.client.hset(token_key(accounts.prefix, session.sid), "lang", lang)


def end(accounts: Accounts, session: Session) -> None:
    accounts.revoke_token(session.sid)


def set_cookie(response: Response, request: Request, sid: str) -> None:
    # No Max-Age: the server decides when a session ends; the browser forgets it on exit.
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")

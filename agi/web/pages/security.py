"""The pages' defences: response headers, the cross-site check on every POST, and the
bridge that lets a page's session read the API's event stream.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agi.web.pages import sessions

# No inline script or style anywhere: the pages load /static files only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on
    # their own form posts, which would blind the origin check below.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
EVENTS_PATH = "/api/v1/events"


def same_origin(request: Request) -> bool:
    """True when the browser says the request comes from one of our own pages.

    Origin (sent by browsers on every POST) must be ours; a client without Origin, or
    with an opaque one ("null"), must send Sec-Fetch-Site: same-origin. A request with
    neither is refused: only browsers post forms, and every current browser sends one."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return hmac.compare_digest(origin.encode(), own.encode())
    return request.headers.get("sec-fetch-site") == "same-origin"


def csrf_ok(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


class PageGuard:
    """Adds the security headers to every response outside the JSON API, and lets the
    API's GET /api/v1/events authenticate a page by its session cookie (as a bearer
    token: a session is an Accounts secret, so the stream re-checks and ends it the
    same way). Same-origin requests only; the API itself still takes bearer tokens."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == EVENTS_PATH and scope["method"] == "GET":
            scope = _bridge_session(scope)
        if path.startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in HEADERS if header[0] not in names]
            await send(message)

        await self.app(scope, receive, with_headers)


def _bridge_session(scope: Scope) -> Scope:
    request = Request(scope)
    sid = request.cookies.get(sessions.COOKIE, "")
    if (not sid or "authorization" in request.headers
            or request.headers.get("sec-fetch-site", "same-origin") != "same-origin"):
        return scope
    headers = [*scope["headers"], (b"authorization", f"Bearer {sid}".encode())]
    return {**scope, "headers": headers}

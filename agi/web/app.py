"""The ASGI application: guards every request passes, error shapes, /healthz.

Routes live in their own modules (agi/web/api.py, events.py; the pages will add theirs)
so the API stays independent of sessions and HTML.
"""

from __future__ import annotations

import logging
import threading

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agi import metrics
from agi import schema as s
from agi.accounts import Accounts
from agi.config import Config
from agi.store import AdminStore, StoreError
from agi.web.errors import ApiError, error_response, one_error, validation_errors

MAX_BODY = 64 * 1024
# h11 enforces its 16 KiB head limit only on a head that arrives in pieces: these hold
# for any request, however it arrives.
MAX_HEADERS, MAX_HEADER_BYTES, MAX_TARGET = 100, 16 * 1024, 8 * 1024
API_PREFIX = "/api/v1"
log = logging.getLogger("callroute.web")

# The admin layer names refusals by stored field; the API by the request's JSON field,
# so a client (the pages) can show each error beside the input it concerns.
API_FIELDS = {s.F_FORWARD_ENABLED: "enabled", s.F_FORWARD_TARGET: "target",
              s.F_FORWARD_WHEN: "when", s.F_FORWARD_AFTER: "after",
              s.F_FORWARD_CALLER_ID: "caller_id", s.F_REQUIRE_KEYPRESS: "require_keypress",
              s.F_CONFIRM_TRIES: "confirm.tries", s.F_CONFIRM_TIMEOUT: "confirm.timeout",
              s.F_CONFIRM_PROMPT: "confirm.prompt"}
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 413: "too_large",
                 414: "too_long", 415: "unsupported_media_type", 431: "headers_too_large"}


class RequestGuard:
    """414/431 for an oversized target or head, 413 for bodies over MAX_BODY (declared or
    actually streamed), 415 for a non-JSON body to the API. The body is read here, at
    most MAX_BODY bytes, before any route runs, so no handler can ever see or
    half-process an oversized request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("raw_path") or b"") + len(scope["query_string"]) > MAX_TARGET:
            await _send(scope, receive, send, one_error(414, "too_long", "the URL is too long"))
            return
        if len(scope["headers"]) > MAX_HEADERS or sum(
                len(key) + len(value) for key, value in scope["headers"]) > MAX_HEADER_BYTES:
            await _send(scope, receive, send, one_error(
                431, "headers_too_large", "too many or too large request headers"))
            return
        headers = {key.lower(): value for key, value in scope["headers"]}
        declared = headers.get(b"content-length", b"0").strip() or b"0"
        if not declared.isdigit():
            await _send(scope, receive, send, one_error(
                400, "bad_request", "Content-Length must be a whole number"))
            return
        if int(declared) > MAX_BODY:
            await _send(scope, receive, send, _too_large())
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await _send(scope, receive, send, _too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        if size and scope["path"].startswith(API_PREFIX + "/"):
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if kind != b"application/json":
                await _send(scope, receive, send, one_error(
                    415, "unsupported_media_type", "the body must be application/json"))
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def _too_large() -> JSONResponse:
    return one_error(413, "too_large", f"the request body is over {MAX_BODY // 1024} KiB")


async def _send(scope: Scope, receive: Receive, send: Send, response: JSONResponse) -> None:
    # The client may still be sending: close the connection after answering.
    response.headers["connection"] = "close"
    await response(scope, receive, send)


def create_app(config: Config, *, stopping: threading.Event | None = None) -> FastAPI:
    """The app for `config`. `stopping` is set at shutdown, so event streams end."""
    from agi.web import api, events, pages

    app = FastAPI(title="callroute", version="1", docs_url=None, redoc_url=None,
                  openapi_url=f"{API_PREFIX}/openapi.json")
    store = AdminStore(config)
    app.state.config = config
    app.state.store = store
    app.state.accounts = Accounts(store)
    # Hashed now, so the first failed login costs what every later one does.
    app.state.accounts.dummy_hash  # noqa: B018
    app.state.aredis = events.async_client(config)
    app.state.stopping = stopping or threading.Event()
    app.add_middleware(RequestGuard)
    _error_handlers(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """Redis reachable: 200 {"redis": "ok"}; otherwise 503. No authentication."""
        try:
            await run_in_threadpool(store.client.ping)
        except redis.exceptions.RedisError:
            return JSONResponse({"redis": "unreachable"}, status_code=503)
        return JSONResponse({"redis": "ok"})

    app.include_router(api.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    pages.install(app)
    _metrics(app)
    return app


def _metrics(app: FastAPI) -> None:
    """GET /metrics (loopback clients only) and the request counts, when
    prometheus-client is installed (the metrics extra)."""
    from starlette.responses import Response

    from agi.web.auth import client_address
    from agi.web.server import is_loopback

    app.state.metrics = recorder = metrics.for_web()
    if not isinstance(recorder, metrics.Prometheus):
        log.info("no /metrics: prometheus-client is not installed")
        return

    @app.get("/metrics", include_in_schema=False)
    def scrape(request: Request) -> Response:
        if not is_loopback(client_address(request)):
            raise StarletteHTTPException(404)
        return Response(recorder.render(), media_type=metrics.CONTENT_TYPE)

    app.add_middleware(metrics.HttpMetrics, recorder=recorder)


def _error_handlers(app: FastAPI) -> None:
    from agi.admin.errors import NotFound, Refused, Stale

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_errors(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return one_error(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 412 if isinstance(exc, Stale) else 422
        return error_response(status, [{"field": API_FIELDS.get(r.field, r.field),
                                        "code": r.code, "message": r.message}
                                       for r in exc.refusals])

    @app.exception_handler(StoreError)
    @app.exception_handler(redis.exceptions.RedisError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable: %s", type(exc).__name__)
        request.app.state.metrics.redis_error(
            "timeout" if isinstance(exc, redis.exceptions.TimeoutError) else "connection")
        return one_error(503, "unavailable", "the settings store (Redis) is unreachable; "
                         "nothing was changed, try again shortly", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return one_error(500, "internal", "unexpected server error; nothing was reported "
                         "as changed")

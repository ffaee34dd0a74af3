"""GET /api/v1/events: server-sent events, one per change, from any interface.

Built on the audit stream every admin write appends to in its own MULTI, so the CLI,
a desk-phone feature code and the API all show up. Each client is one coroutine on
redis.asyncio with a bounded XREAD BLOCK: no thread is pinned per client, and every
stream notices a shutdown or a revoked token within a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import redis
import redis.asyncio as aredis
from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from agi.accounts import User
from agi.config import Config
from agi.resp import SENTINEL_SCHEME, RedisTarget
from agi.schema import audit_key
from agi.web.auth import CurrentUser, bearer_token, token_user

router = APIRouter(tags=["events"])
BLOCK_MS = 1000
KEEPALIVE_S = 15.0
RECHECK_S = 10.0  # how often a stream re-validates its token
BATCH = 100


def async_client(config: Config) -> aredis.Redis:
    """A redis.asyncio client for the event streams, Sentinel-aware like AdminStore."""
    timeouts = {"socket_connect_timeout": 3.0, "socket_timeout": BLOCK_MS / 1000 + 3.0}
    if config.redis_url.startswith(SENTINEL_SCHEME + "://"):
        from redis.asyncio.sentinel import Sentinel

        target = RedisTarget(config.redis_url)
        sentinel = Sentinel(target.sentinels, sentinel_kwargs=dict(timeouts), **timeouts)
        return sentinel.master_for(target.service, db=target.db, password=target.password,
                                   username=target.username, decode_responses=True)
    return aredis.Redis.from_url(config.redis_url, decode_responses=True, **timeouts)


def visible(user: User, entry: dict[str, str]) -> bool:
    """Admins see every change; a user those of their own extensions (not the company)."""
    return user.is_admin or (entry.get("ext", "") != "" and entry["ext"] in user.extensions)


def sse(data: dict, event_id: str = "") -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _changes(request: Request, user: User, token: str, last: str
                   ) -> AsyncIterator[str]:
    app = request.app
    client: aredis.Redis = app.state.aredis
    key = audit_key(app.state.config.prefix)
    yield ": ready\n\n"
    quiet_since = checked = time.monotonic()
    while not app.state.stopping.is_set():
        try:
            batches = await client.xread({key: last}, count=BATCH, block=BLOCK_MS)
        except redis.exceptions.RedisError:
            yield sse({"error": "unavailable"})
            await asyncio.sleep(1)
            continue
        for _, entries in batches or []:
            for entry_id, entry in entries:
                last = entry_id
                if visible(user, entry):
                    yield sse({"ext": entry.get("ext", ""), "actor": entry.get("actor", ""),
                               "action": entry.get("action", "")}, entry_id)
                    quiet_since = time.monotonic()
        now = time.monotonic()
        if now - quiet_since >= KEEPALIVE_S:
            yield ": keepalive\n\n"
            quiet_since = now
        if now - checked >= RECHECK_S:
            checked = now
            fresh = await token_user(request, token)
            if fresh is None:  # revoked, expired, or the user was removed
                return
            user = fresh  # a changed extension list applies to the stream too


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, user: CurrentUser) -> StreamingResponse:
    """Server-sent events: `data: {"ext", "actor", "action"}` for each change the caller
    may see, within a second of the write. Comments (": ...") keep the connection alive."""
    # Start after the newest entry now (as XREAD's "$" would), but with an explicit ID
    # so nothing written between two blocking reads is ever missed. Read before the
    # response starts, so an unreachable Redis is a plain 503.
    newest = await request.app.state.aredis.xrevrange(
        audit_key(request.app.state.config.prefix), count=1)
    last = newest[0][0] if newest else "0-0"
    return StreamingResponse(_changes(request, user, bearer_token(request), last),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

"""The FastAGI server's Redis reads on its event loop: agi/resp.py's protocol, not a copy.

The per-call read (AUTH/SELECT on a new connection, then HGETALL of every key in one
pipelined round trip, before a hard deadline) is exactly resp.py's
`_pipeline_hgetall`: it runs here against `_Replay`, a stand-in socket that replays
the bytes received so far and asks for more when they run out. Every bound and check
of resp.py's reader applies unchanged; the loop only moves bytes. A reply is a few
hundred bytes, one or two reads.

Pool policy is RespPool's: an error reply drops that connection only, any other
failure drops every idle connection (Redis most likely restarted) and retries once
on a fresh one within the same deadline.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

from agi import metrics, resp
from agi.resp import RedisTarget, RespError, RespReplyError, RespTimeout

# The same bound and wording as the blocking reader's.
MAX_REPLY_BYTES = resp.MAX_REPLY_BYTES
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _NeedMore(Exception):
    """The bytes received so far end before the reply does."""


class _Replay:
    """The socket `resp._pipeline_hgetall` talks to: sends are collected, receives
    replay `received`, then raise _NeedMore."""

    def __init__(self, received: bytes = b"") -> None:
        self.sent: list[bytes] = []
        self._data = received
        self._pos = 0

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def settimeout(self, _seconds: float | None) -> None:
        pass

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._data):
            raise _NeedMore
        chunk = self._data[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk


async def _pipeline(conn: _Conn, preamble: list[bytes], keys: list[str],
                    deadline: float) -> list[dict[str, str]]:
    reader, writer = conn
    probe = _Replay()
    try:
        resp._pipeline_hgetall(probe, preamble, keys, deadline)  # type: ignore[arg-type]
    except _NeedMore:
        pass
    received = b""
    try:
        writer.write(b"".join(probe.sent))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RespTimeout("Redis did not answer before the deadline")
            try:
                chunk = await asyncio.wait_for(reader.read(65536), remaining)
            except TimeoutError:
                raise RespTimeout("Redis did not answer before the deadline") from None
            if not chunk:
                raise RespError("Redis closed the connection")
            received += chunk
            if len(received) > MAX_REPLY_BYTES:
                raise resp._unreadable(f"more than {MAX_REPLY_BYTES} bytes")
            try:
                return resp._pipeline_hgetall(_Replay(received), preamble, keys,  # type: ignore[arg-type]
                                              deadline)
            except _NeedMore:
                continue
    except OSError as exc:
        raise RespError(f"Redis connection failed ({exc.strerror or type(exc).__name__})") \
            from None


async def _connect(target: RedisTarget, deadline: float,
                   address: tuple[str, int] | None = None) -> _Conn:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RespTimeout("no time left to connect to Redis")
    ssl_context = None
    if target.tls:
        import ssl  # only for rediss://

        ssl_context = ssl.create_default_context()
    try:
        if target.path:
            opening = asyncio.open_unix_connection(target.path)
        else:
            host, port = address or (target.host, target.port)
            opening = asyncio.open_connection(host, port, ssl=ssl_context,
                                              server_hostname=host if ssl_context else None)
        return await asyncio.wait_for(opening, remaining)
    except TimeoutError:
        raise RespTimeout("timed out connecting to Redis") from None
    except OSError as exc:
        raise RespError(f"cannot connect to Redis ({exc.strerror or type(exc).__name__})") \
            from None


class AsyncRespPool:
    """Idle Redis connections of the event loop; each call borrows one."""

    def __init__(self, url: str, max_idle: int, executor: Executor,
                 recorder: metrics.Recorder = metrics.NULL) -> None:
        self.target = RedisTarget(url)
        self.metrics = recorder
        self.max_idle = max_idle
        # Sentinel discovery stays resp.py's blocking code: it runs only when a new
        # connection is needed, in the server's small executor, never on the loop.
        self._executor = executor
        self._idle: list[_Conn] = []

    async def hgetall_many(self, keys: list[str], deadline: float) -> list[dict[str, str]]:
        if self._idle:
            conn = self._idle.pop()
            try:
                result = await _pipeline(conn, [], keys, deadline)
            except RespReplyError:
                _close(conn)  # Redis said no; this connection may hold unread replies
                self.metrics.redis_error("reply")
                raise
            except RespError as exc:
                _close(conn)  # most likely Redis restarted: every idle one is dead
                self.clear()
                self.metrics.redis_error(metrics.resp_error_kind(exc))
                self.metrics.redis_reconnect()
            except BaseException:  # cancelled mid-read: its reply may still arrive
                _close(conn)
                raise
            else:
                self._give_back(conn)
                return result
        try:
            conn = await self._open(deadline)
        except RespError as exc:
            self.metrics.redis_error(metrics.resp_error_kind(exc))
            raise
        try:
            result = await _pipeline(conn, resp._preamble(self.target), keys, deadline)
        except BaseException as exc:
            _close(conn)
            if isinstance(exc, RespError):
                self.metrics.redis_error(metrics.resp_error_kind(exc))
            raise
        self._give_back(conn)
        return result

    async def _open(self, deadline: float) -> _Conn:
        target = self.target
        if not target.sentinels:
            return await _connect(target, deadline)
        loop = asyncio.get_running_loop()
        nodes = await loop.run_in_executor(self._executor, resp._nodes_from_sentinels,
                                           target, deadline)
        for index, node in enumerate(nodes):
            share = (deadline - time.monotonic()) / (len(nodes) - index)
            try:
                return await _connect(target, time.monotonic() + share, node)
            except RespError:
                continue
        raise RespError(f"no node of service {target.service!r} could be reached")

    def _give_back(self, conn: _Conn) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            _close(conn)

    def clear(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: _Conn) -> None:
    conn[1].close()

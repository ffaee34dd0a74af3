"""The FastAGI server's Redis reads on its event loop: agi/resp.py's protocol, not a copy.

The per-call read (AUTH/SELECT on a new connection, then HGETALL of every key in one
pipelined round trip, before a hard deadline) is exactly resp.py's
`_pipeline_hgetall`: it runs here against `_Replay`, a stand-in socket that replays
the bytes received so far and asks for more when they run out. Every bound and check
of resp.py's reader applies unchanged; the loop only moves bytes. A reply is a few
hundred bytes, one or two reads.

Pool policy: an error reply drops that connection only, any other failure drops
every idle connection (Redis most likely restarted) and retries once on a fresh one
within the same deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import Executor
from typing import Any

from agi import metrics, resp
from agi.resp import RedisTarget, RespError, RespReplyError, RespTimeout

# The same bound and wording as the blocking reader's.
MAX_REPLY_BYTES = resp.MAX_REPLY_BYTES
# How long a discarded early read's reply is waited for before its connection goes.
RECLAIM_S = 1.0


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

    @property
    def consumed_all(self) -> bool:
        return self._pos >= len(self._data)


class ReplyMemo:
    """What a caller makes of the replies, remembered by their exact bytes.

    `known(raw)` returns what was made of these very bytes before (or None), `made(raw,
    hashes)` makes it from freshly parsed hashes (raw is None when the bytes include a
    new connection's AUTH/SELECT replies, which are not worth remembering). Equal bytes
    parse to equal hashes, so a hit is exactly what parsing again would give."""

    def known(self, raw: bytes) -> Any:
        raise NotImplementedError

    def made(self, raw: bytes | None, hashes: list[dict[str, str]]) -> Any:
        raise NotImplementedError


class _RedisProtocol(asyncio.Protocol):
    """One Redis connection: bytes in a buffer, one waiter at a time. No StreamReader,
    and no task per read (asyncio.wait_for makes one on Python 3.11)."""

    __slots__ = ("buf", "closed", "transport", "waiter")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()  # appended in place: many small writes stay linear
        self.closed: RespError | None = None
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > MAX_REPLY_BYTES:
            self._fail(resp._unreadable(f"more than {MAX_REPLY_BYTES} bytes"))
            self.close()
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def eof_received(self) -> None:
        self._fail(RespError("Redis closed the connection"))

    def connection_lost(self, exc: Exception | None) -> None:
        strerror = getattr(exc, "strerror", None) or (type(exc).__name__ if exc else "")
        self._fail(RespError(f"Redis connection failed ({strerror})") if exc
                   else RespError("Redis closed the connection"))

    def _fail(self, error: RespError) -> None:
        if self.closed is None:
            self.closed = error
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def more(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Until more bytes arrive, the connection fails, or `deadline` (monotonic)."""
        if (closed := self.closed) is not None:
            raise RespError(str(closed))  # a new one: see resp._pipeline_hgetall
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RespTimeout("Redis did not answer before the deadline")
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(remaining, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if (closed := self.closed) is not None:
            raise RespError(str(closed))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(RespTimeout("Redis did not answer before the deadline"))


# What `_pipeline_hgetall` sends for a (preamble, keys): a pure function, asked of it
# once per extension (a probe costs a reader and an exception), kept up to a bound.
_REQUESTS: dict[tuple[tuple[bytes, ...], tuple[str, ...]], bytes] = {}
_MAX_REQUESTS = 4096


def _request(preamble: list[bytes], keys: list[str]) -> bytes:
    known = (tuple(preamble), tuple(keys))
    if (request := _REQUESTS.get(known)) is None:
        probe = _Replay()
        try:
            resp._pipeline_hgetall(probe, preamble, keys, math.inf)  # type: ignore[arg-type]
        except _NeedMore:
            pass
        request = b"".join(probe.sent)
        if len(_REQUESTS) >= _MAX_REQUESTS:
            _REQUESTS.clear()
        _REQUESTS[known] = request
    return request


def _send(conn: _RedisProtocol, preamble: list[bytes], keys: list[str]) -> None:
    conn.buf.clear()
    transport = conn.transport
    if conn.closed is not None or transport is None or transport.is_closing():
        raise RespError("Redis closed the connection")  # while it was idle in the pool
    transport.write(_request(preamble, keys))


async def _pipeline(conn: _RedisProtocol, preamble: list[bytes], keys: list[str],
                    deadline: float, memo: ReplyMemo | None = None,
                    sent: bool = False) -> Any:
    if not sent:
        _send(conn, preamble, keys)
    loop = asyncio.get_running_loop()
    wait = not conn.buf  # a request sent early may have its reply in already
    while True:
        if wait:
            await conn.more(loop, deadline)
        wait = True
        received = bytes(conn.buf)
        if memo is not None and not preamble and (known := memo.known(received)) is not None:
            conn.buf.clear()
            return known
        replay = _Replay(received)
        try:
            hashes = resp._pipeline_hgetall(replay, preamble, keys,  # type: ignore[arg-type]
                                            deadline)
        except _NeedMore:
            continue
        conn.buf.clear()
        if memo is None:
            return hashes
        # Only bytes that were exactly these replies, nothing after, stand for them.
        return memo.made(received if not preamble and replay.consumed_all else None, hashes)


async def _connect(target: RedisTarget, deadline: float,
                   address: tuple[str, int] | None = None) -> _RedisProtocol:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RespTimeout("no time left to connect to Redis")
    ssl_context = None
    if target.tls:
        import ssl  # only for rediss://

        ssl_context = ssl.create_default_context()
    loop = asyncio.get_running_loop()
    try:
        if target.path:
            opening = loop.create_unix_connection(_RedisProtocol, target.path)
        else:
            host, port = address or (target.host, target.port)
            opening = loop.create_connection(_RedisProtocol, host, port, ssl=ssl_context,
                                             server_hostname=host if ssl_context else None)
        _, protocol = await asyncio.wait_for(opening, remaining)
    except TimeoutError:
        raise RespTimeout("timed out connecting to Redis") from None
    except OSError as exc:
        raise RespError(f"cannot connect to Redis ({exc.strerror or type(exc).__name__})") \
            from None
    return protocol


class Sent:
    """A request written on a pooled connection whose reply is not read yet."""

    __slots__ = ("conn", "keys")

    def __init__(self, conn: _RedisProtocol, keys: list[str]) -> None:
        self.conn = conn
        self.keys = keys


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
        self._idle: list[_RedisProtocol] = []
        self._reclaiming: set[asyncio.Task] = set()

    def send_early(self, keys: list[str]) -> Sent | None:
        """Write the request for `keys` now, on an idle connection (None if there is
        none, or it is dead), without waiting: the reply is read by passing the Sent
        to hgetall_many with the same keys, or dropped with `discard`."""
        if not self._idle:
            return None
        conn = self._idle.pop()
        try:
            _send(conn, [], keys)
        except RespError:
            _close(conn)
            return None
        return Sent(conn, keys)

    def discard(self, sent: Sent) -> None:
        """A request sent early whose reply nobody will read: the reply is read in the
        background and the connection comes back to the pool (a peer that sends a
        script line and goes away must not cost a real call a new connection)."""
        task = asyncio.get_running_loop().create_task(self._reclaim(sent))
        self._reclaiming.add(task)
        task.add_done_callback(self._reclaiming.discard)

    async def _reclaim(self, sent: Sent) -> None:
        try:
            await _pipeline(sent.conn, [], sent.keys, time.monotonic() + RECLAIM_S,
                            sent=True)
        except RespError:
            _close(sent.conn)
        except BaseException:  # cancelled as the server stops
            _close(sent.conn)
            raise
        else:
            self._give_back(sent.conn)

    async def hgetall_many(self, keys: list[str], deadline: float,
                           memo: ReplyMemo | None = None, sent: Sent | None = None) -> Any:
        """The hashes of `keys`; with a memo, what the memo makes of them instead. With
        `sent` (send_early's, for these keys), the request is already out: only its
        reply is read."""
        if sent is not None and sent.keys != keys:
            self.discard(sent)
            sent = None
        if sent is not None or self._idle:
            conn = sent.conn if sent is not None else self._idle.pop()
            try:
                result = await _pipeline(conn, [], keys, deadline, memo, sent is not None)
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
            result = await _pipeline(conn, resp._preamble(self.target), keys, deadline, memo)
        except BaseException as exc:
            _close(conn)
            if isinstance(exc, RespError):
                self.metrics.redis_error(metrics.resp_error_kind(exc))
            raise
        self._give_back(conn)
        return result

    async def _open(self, deadline: float) -> _RedisProtocol:
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

    def _give_back(self, conn: _RedisProtocol) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            _close(conn)

    def clear(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: _RedisProtocol) -> None:
    conn.close()

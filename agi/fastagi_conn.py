"""One FastAGI connection on the event loop, and the table that bounds them all.

A connection is an asyncio Protocol with a byte buffer and at most one waiter (no
StreamReader/StreamWriter pair): it costs a transport, this object and a suspended
task (a few KB), never a thread, so idle and slow peers can only use up the
connection cap, and the cap sheds the oldest of them first (`ConnectionTable`).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from agi.protocol import (
    AgiProtocolError,
    AgiSession,
    ChannelHungUp,
    ReplyAssembler,
    command_line,
    parse_env_line,
)
from agi.resp_async import Sent

# Asterisk's AGI environment is about 25 short lines (~1.5 KB); anything far beyond is
# hostile. It is read in one piece, up to the blank line that ends it.
MAX_ENV_LINES = 128
END_OF_ENV = b"\n\n"
# The most a connection buffers unread: the whole environment must fit in it.
MAX_ENV_BYTES = 64 * 1024
# Asterisk's FastAGI sends `agi_network: yes`, then the script line: looked for in the
# first bytes only (a whole line of a legal length), so it costs a peer nothing more.
SCRIPT_LINE = b"\nagi_network_script:"
SCRIPT_WITHIN = 2048


class BadRequest(Exception):
    """The peer broke the protocol (line too long, too many lines, not an environment)."""


class AgiConnection(asyncio.Protocol):
    """The AGI protocol over one connection: the environment, then commands.

    `on_open(conn)` runs when the connection is made (the server checks the allowlist
    and the cap there, and starts the session's task)."""

    __slots__ = ("_buf", "_closed", "_scan", "_sep", "_timer", "_waiter", "early", "env",
                 "expired", "max_line", "on_open", "on_script", "peer", "task", "transport")

    def __init__(self, max_line: int, on_open: Callable[[AgiConnection], None],
                 on_script: Callable[[AgiConnection, str], None] | None = None) -> None:
        self.max_line = max_line
        self.on_open = on_open
        # Told the script's name (agi_network_script, the environment's second line) as
        # soon as it is in, long before the rest; None once told or given up.
        self.on_script = on_script
        self.env: dict[str, str] = {}
        self.task: asyncio.Task | None = None
        # What the server started on the script line: (extension, its Redis read).
        self.early: tuple[str, Sent] | None = None
        self.transport: asyncio.Transport | None = None
        self.peer: tuple | None = None
        self._buf = bytearray()  # appended in place: a peer's many small writes stay linear
        self._closed: Exception | None = None
        self._waiter: asyncio.Future | None = None
        # What the waiter waits for, and where in _buf to look for it next.
        self._sep = b"\n"
        self._scan = 0
        self._timer: asyncio.TimerHandle | None = None
        self.expired = False  # the task was cancelled by its deadline

    # -- deadlines ----------------------------------------------------------------------

    def deadline(self, when: float) -> None:
        """Cancel the session's task at `when` (loop time), instead of any earlier
        deadline: one timer, not an asyncio.timeout per deadline."""
        self.cancel_deadline()
        self._timer = asyncio.get_running_loop().call_at(when, self._expire)

    def cancel_deadline(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self.expired = True
        if self.task is not None:
            self.task.cancel()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self.on_open(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self.on_script is not None:
            self._find_script()
        if len(self._buf) > MAX_ENV_BYTES:
            # Nothing legitimate is this long unread: stop buffering, fail the reader.
            self._fail(BadRequest("line or environment over the size limit"))
            self.close()
        elif (waiter := self._waiter) is not None and not waiter.done():
            # Wake the reader only once its separator is in: Asterisk writes the
            # environment a line at a time, and a task step per line costs more than
            # the rest of the session.
            if self._buf.find(self._sep, self._scan) >= 0:
                waiter.set_result(None)
            else:
                self._scan = max(0, len(self._buf) - len(self._sep) + 1)

    def _find_script(self) -> None:
        buf = self._buf
        start = buf.find(SCRIPT_LINE)
        if start >= 0 and (end := buf.find(b"\n", start + 1)) >= 0:
            on_script, self.on_script = self.on_script, None
            value = buf[start + len(SCRIPT_LINE):end].decode("utf-8", "replace").strip()
            on_script(self, value)  # type: ignore[misc]
            return
        if len(buf) > SCRIPT_WITHIN or buf.find(END_OF_ENV) >= 0:
            self.on_script = None  # not where FastAGI puts it: the session reads it later

    def eof_received(self) -> bool:
        # Half-open: reads fail once the buffer is used up, but the answer still goes out.
        self._fail(ChannelHungUp("peer closed the connection"))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ChannelHungUp(str(exc) if exc else "peer closed the connection"))

    def _fail(self, error: Exception) -> None:
        if self._closed is None:
            self._closed = error
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the AGI protocol ---------------------------------------------------------------

    async def read_env(self) -> dict[str, str]:
        raw = await self._read_until(END_OF_ENV)
        lines = raw.decode("utf-8", "replace").split("\n")[:-2]
        if len(lines) > MAX_ENV_LINES:
            raise BadRequest("AGI environment has too many lines")
        max_line, env = self.max_line, self.env
        if max(map(len, lines), default=0) > max_line:
            raise BadRequest(f"line longer than {max_line} bytes")
        for line in lines:
            entry = parse_env_line(line)
            if entry is not None:
                env[entry[0]] = entry[1]
        return env

    async def exchange(self, command: str | bytes) -> str:
        """Send one command line (bytes end with their newline); Asterisk's reply (first
        line, a 520 text drained)."""
        self.send(command_line(command) if isinstance(command, str) else command)
        return await self._reply()

    def send_last(self, commands: list[bytes]) -> None:
        """Send the session's last command lines and, with them, the end of our side
        (FIN); `replies` then reads Asterisk's answers.

        Asterisk runs each line, answers it, then reads the end of input and ends AGI()
        at once: the dialplan goes on without waiting for this process to wake up, read
        the answer and close (a wake-up less on every call's post-dial delay). Lines
        sent together all run, so only the last of a session's lines go this way."""
        self.send(b"".join(commands))
        try:
            self.transport.write_eof()  # type: ignore[union-attr]  (send() checked it)
        except (OSError, RuntimeError) as exc:
            raise ChannelHungUp(str(exc)) from None

    async def replies(self, count: int) -> list[str]:
        return [await self._reply() for _ in range(count)]

    async def finish(self, command: bytes) -> str:
        """One command as the session's last line (send_last); Asterisk's reply."""
        self.send_last([command])
        return await self._reply()

    async def _reply(self) -> str:
        reply = ReplyAssembler()
        while True:
            raw = await self._read_until(b"\n")
            if len(raw) > self.max_line:
                raise BadRequest(f"line longer than {self.max_line} bytes")
            if (line := reply.feed(raw.decode("utf-8", "replace"))) is not None:
                return line

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ChannelHungUp("connection closed")
        try:
            self.transport.write(data)
        except (OSError, RuntimeError) as exc:  # uvloop raises on a closed transport
            raise ChannelHungUp(str(exc)) from None

    async def _read_until(self, separator: bytes) -> bytes:
        """Up to and including `separator`, waiting for more bytes as they come."""
        start = 0
        while (end := self._buf.find(separator, start)) < 0:
            if (closed := self._closed) is not None:
                raise type(closed)(str(closed))  # a new one: see _pipeline_hgetall
            start = self._scan = max(0, len(self._buf) - len(separator) + 1)
            self._sep = separator
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        end += len(separator)
        raw = bytes(self._buf[:end])
        del self._buf[:end]
        return raw

    def close(self) -> None:
        """Close now, unsent data or not: a hostile peer that never reads can't hold it."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.abort()


class BridgedSession(AgiSession):
    """The blocking AgiSession API over an AgiConnection, for code run in the server's
    executor (feature codes, with their redis-py writes): each command is one
    round trip on the loop, bounded by the session's deadline."""

    def __init__(self, conn: AgiConnection, loop: asyncio.AbstractEventLoop,
                 deadline: float) -> None:
        self.env = conn.env
        self._conn = conn
        self._loop = loop
        self._deadline = deadline

    def _exchange(self, command: str) -> str:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise ChannelHungUp("session deadline passed")
        try:
            future = asyncio.run_coroutine_threadsafe(self._conn.exchange(command),
                                                      self._loop)
        except RuntimeError:  # the loop is gone: the server stopped
            raise ChannelHungUp("server stopped") from None
        try:
            return future.result(remaining)
        except TimeoutError:
            future.cancel()
            raise ChannelHungUp("session deadline passed") from None
        except (ChannelHungUp, BadRequest, AgiProtocolError):
            raise
        except BaseException as exc:  # cancelled with its connection
            raise ChannelHungUp(type(exc).__name__) from None


class ConnectionTable:
    """Every open connection, at most `limit`. A connection is *idle* until its whole
    environment has arrived; when the table is full, a new connection sheds the
    oldest idle one, and is refused only if none is idle (all are calls in flight)."""

    def __init__(self, limit: int, on_shed: Callable[[int], None]) -> None:
        self.limit = limit
        self._idle: OrderedDict[AgiConnection, None] = OrderedDict()
        self._busy: set[AgiConnection] = set()
        self._on_shed = on_shed
        self.shed = 0

    def __len__(self) -> int:
        return len(self._idle) + len(self._busy)

    @property
    def busy(self) -> int:
        return len(self._busy)

    def admit(self, conn: AgiConnection) -> bool:
        """Add `conn` (idle); False if the table is full of calls in flight."""
        if len(self) >= self.limit:
            if not self._idle:
                return False
            oldest, _ = self._idle.popitem(last=False)
            oldest.close()
            if oldest.task is not None:
                oldest.task.cancel()
            self.shed += 1
            self._on_shed(len(self))
        self._idle[conn] = None
        return True

    def mark_busy(self, conn: AgiConnection) -> None:
        """The environment is complete: never shed from now on."""
        self._idle.pop(conn, None)
        self._busy.add(conn)

    def remove(self, conn: AgiConnection) -> None:
        self._idle.pop(conn, None)
        self._busy.discard(conn)

    def all(self) -> list[AgiConnection]:
        return [*self._idle, *self._busy]

"""`callroute-fastagi`: the FastAGI server, for PBXs where a process per call is too slow.

Design (docs/fastagi.md): one asyncio event loop holds every connection, so an idle
or slow peer costs a few KB, not a thread. A connection's environment must arrive in
full within `env_timeout` (Asterisk sends it at once) and the whole session must end
within `session_timeout`; at most `max_connections` are open, and when full, the
oldest connection still sending its environment is shed first, never a call in
flight. Only a complete request reaches the decision: one pipelined Redis read on
the loop (agi/resp_async.py), then every variable in one EXEC MSet. Feature codes
do blocking redis-py admin writes: they run in a small executor, never on the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agi import logfmt, routing, sdnotify, service
from agi import variables as v
from agi.config import LOG_FORMATS, Config, ConfigError, load
from agi.fastagi_conn import (
    MAX_ENV_BYTES,
    AgiConnection,
    BadRequest,
    BridgedSession,
    ConnectionTable,
)
from agi.features import handle_feature
from agi.guard import is_extension
from agi.protocol import (
    AgiProtocolError,
    ChannelHungUp,
    check_exec_result,
    parse_result,
    set_variable_command,
    set_variables_commands,
    verbose_command,
)
from agi.resp import RespError
from agi.resp_async import AsyncRespPool
from agi.schema import company_key, ext_key
from agi.store import redact_url

log = logging.getLogger("callroute.fastagi")

DEFAULT_LISTEN = "127.0.0.1:4573"
SCRIPT_ROUTE = "route"
SCRIPT_HEALTH = "health"
SCRIPT_FEATURE = "feature"
HEALTH_VARIABLE = "CALLROUTE_HEALTH"
# Threads for blocking work (feature-code writes, Sentinel discovery, DNS): the server
# is this plus the loop's thread.
BLOCKING_WORKERS = 2
IDLE_REDIS_CONNECTIONS = 32
LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn


class ThrottledLog:
    """At most one warning per second for each kind of refusal, with how many were
    suppressed: a client hammering the port must not flood the log."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self.interval) < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last such line)" if suppressed else ""
        log.warning("%s%s", message, more)


class OutageLog:
    """Logs the first FALLBACK of an outage and the recovery: one line each, not per call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing = False

    def record(self, status: str | None, reason: str) -> None:
        failing = status == v.STATUS_FALLBACK and reason.startswith("store:")
        with self._lock:
            changed, self._failing = failing != self._failing, failing
        if changed and failing:
            log.warning("calls fall back to ringing default devices: %s", reason)
        elif changed:
            log.info("store reachable again; routing normally")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text!r} must be HOST:PORT, e.g. {DEFAULT_LISTEN}")
    host = host.strip("[]") or "127.0.0.1"
    ipaddress.ip_address(host)  # raises ValueError for a name: bind to addresses only
    return host, int(port)


def parse_allow(text: str | None) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if not text:
        return frozenset()
    return frozenset(ipaddress.ip_address(item.strip()) for item in text.split(",") if item)


class FastAgiServer:
    """Bounded, loopback-by-default FastAGI server. `serve()` runs the event loop in the
    calling thread and returns after `stop()` (or SIGTERM in `main`) and the drain."""

    def __init__(self, config: Config, host: str = "127.0.0.1", port: int = 4573, *,
                 env_timeout: float = 1.0, session_timeout: float = 10.0,
                 max_connections: int = 4096, drain_timeout: float = 10.0,
                 max_line: int = 8192, allow: frozenset = frozenset()):
        address = ipaddress.ip_address(host)
        if not address.is_loopback and not allow:
            raise ValueError("listening beyond loopback needs --allow with the Asterisk "
                             "addresses that may connect")
        self.config = config
        # With --allow, only the listed clients (plus the local Asterisk on 127.0.0.1 or
        # ::1 when listening on loopback); without it, loopback clients only.
        self.allow = allow | ({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
                              if allow and address.is_loopback else set())
        self.env_timeout = env_timeout
        self.session_timeout = session_timeout
        self.drain_timeout = drain_timeout
        self.max_line = max_line
        self.executor = ThreadPoolExecutor(max_workers=BLOCKING_WORKERS,
                                           thread_name_prefix="fastagi-blocking")
        self.pool = AsyncRespPool(config.redis_url, IDLE_REDIS_CONNECTIONS, self.executor)
        self.outages = OutageLog()
        self.refusals = ThrottledLog()
        self.table = ConnectionTable(max_connections, self._log_shed)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.address = self.sock.getsockname()[:2]
        self.cut = 0  # sessions still running when the drain timed out
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stop_requested = False

    @property
    def pending(self) -> int:
        """Open connections (idle or in a call)."""
        return len(self.table)

    # -- lifecycle --------------------------------------------------------------------

    def serve(self, loop: str = "asyncio") -> None:
        """Run until stopped, on asyncio's own event loop or on uvloop (see loop_kind)."""
        if loop == "uvloop":
            import uvloop  # optional (extra "fast"): a compiled wheel

            uvloop.run(self._serve())
        else:
            asyncio.run(self._serve())

    def wait_ready(self, timeout: float = 5.0) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Stop accepting and drain; callable from any thread or a signal handler, even
        before the loop runs (then it stops as soon as it starts)."""
        self._stop_requested = True
        loop, event = self._loop, self._stop
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass  # the loop has already finished

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_default_executor(self.executor)  # DNS for a Redis host name
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        # A burst of connections (idle ones included) must not overflow the accept
        # queue: a dropped SYN costs a real call a 1 s retransmit.
        server = await asyncio.start_server(self._handle, sock=self.sock,
                                            limit=MAX_ENV_BYTES, backlog=LISTEN_BACKLOG)
        self._ready.set()
        host, port = self.address
        announcer = asyncio.create_task(sdnotify.announce(f"{host}:{port}", self._redis_answers))
        try:
            await self._stop.wait()
        finally:
            sdnotify.stopping()
            announcer.cancel()
            server.close()  # stop accepting; open connections carry on
            await self._drain()
            self.pool.clear()
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def _redis_answers(self) -> bool:
        """Redis read once (systemd readiness): the company hash, as a call reads it."""
        try:
            await self.pool.hgetall_many([company_key(self.config.prefix)],
                                         time.monotonic() + 1)
        except RespError:
            return False
        return True

    async def _drain(self) -> None:
        tasks = {conn.task for conn in self.table.all() if conn.task is not None}
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=self.drain_timeout)
            # Calls, not connections: one still sending its environment is not a call.
            self.cut = self.table.busy
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)

    # -- connections ------------------------------------------------------------------

    def _allowed(self, peer: tuple | None) -> bool:
        if not peer:
            return False
        client = ipaddress.ip_address(peer[0].split("%", 1)[0])
        if getattr(client, "ipv4_mapped", None):
            client = client.ipv4_mapped
        return client in self.allow if self.allow else client.is_loopback

    def _log_shed(self, open_now: int) -> None:
        self.refusals.warning("shed", "closed the oldest idle FastAGI connection: "
                              f"{open_now} connections open")

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        conn = AgiConnection(reader, writer, self.max_line)
        peer = writer.get_extra_info("peername")
        if not self._allowed(peer):
            self.refusals.warning("allow", f"refused FastAGI connection from {peer[0]} "
                                           "(not in --allow)")
            conn.close()
            return
        if (self._stop is not None and self._stop.is_set()) or not self.table.admit(conn):
            self.refusals.warning("busy", "refused FastAGI connection: "
                                  f"{self.table.busy} calls in flight")
            conn.close()
            return
        try:
            async with asyncio.timeout(self.session_timeout):
                async with asyncio.timeout(self.env_timeout):
                    env = await conn.read_env()
                self.table.mark_busy(conn)
                await self._dispatch(conn, env)
        except TimeoutError:
            log.debug("FastAGI session ended: deadline passed")
        except (ChannelHungUp, BadRequest, AgiProtocolError) as exc:
            log.debug("FastAGI session ended early: %s", exc)
        except asyncio.CancelledError:
            pass  # shed, or cut by the drain: the connection closes below
        except Exception:  # a bug: log it once per occurrence, keep serving others
            log.exception("FastAGI session failed")
        finally:
            self.table.remove(conn)
            conn.close()

    async def _dispatch(self, conn: AgiConnection, env: dict[str, str]) -> None:
        script = env.get("agi_network_script", "").split("?", 1)[0].strip("/")
        if script == SCRIPT_HEALTH:
            parse_result(await conn.exchange(set_variable_command(HEALTH_VARIABLE, "OK")))
        elif script == SCRIPT_ROUTE:
            await self._route(conn, env)
        elif script == SCRIPT_FEATURE:
            deadline = time.monotonic() + self.session_timeout
            session = BridgedSession(conn, asyncio.get_running_loop(), deadline)
            await asyncio.get_running_loop().run_in_executor(
                self.executor, handle_feature, session, [], self.config)
        else:
            line = f"callroute: unknown FastAGI script {script[:40]!r}"
            parse_result(await conn.exchange(verbose_command(line, 1)))

    async def _route(self, conn: AgiConnection, env: dict[str, str]) -> None:
        """service.handle_route on the loop: the same decision and commands."""
        ext = service.request_extension(env, [])
        route = await self._decide(ext)
        try:
            for command in set_variables_commands(route.variables()):
                check_exec_result(parse_result(await conn.exchange(command)))
            if (line := service.route_log_line(ext, route)) is not None:
                parse_result(await conn.exchange(verbose_command(line, 1)))
        except AgiProtocolError as exc:
            line = f"callroute: Asterisk refused a command: {exc}"
            parse_result(await conn.exchange(verbose_command(line, 1)))
            return
        self.outages.record(route.status, route.reason)

    async def _decide(self, ext: str) -> routing.Route:
        """service.compute_route, with the Redis read on the loop."""
        if not is_extension(ext):
            return routing.invalid_extension(ext)
        config = self.config
        deadline = time.monotonic() + config.timeout_ms / 1000
        keys = [ext_key(config.prefix, ext), company_key(config.prefix)]
        try:
            fields, company = await self.pool.hgetall_many(keys, deadline)
        except RespError as exc:
            return routing.fallback(ext, config, f"store: {exc}")
        return routing.decide(ext, fields, company, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callroute-fastagi",
                                     description="callroute FastAGI server")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT "
                        f"(default {DEFAULT_LISTEN}; loopback unless --allow is given)")
    parser.add_argument("--allow", help="comma-separated client addresses allowed when "
                        "listening beyond loopback")
    parser.add_argument("--max-connections", type=int, default=4096,
                        help="open connections at most; the oldest idle one is shed first")
    parser.add_argument("--env-timeout", type=float, default=1.0,
                        help="seconds for a connection's whole AGI environment to arrive")
    parser.add_argument("--session-timeout", type=float, default=10.0,
                        help="seconds a whole FastAGI session may take")
    parser.add_argument("--drain-timeout", type=float, default=10.0,
                        help="seconds to finish calls in flight after SIGTERM")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="event loop: uvloop if installed (auto), or the one named")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=LOG_FORMATS,
                        help="text, or json: one object per line (default: "
                             "CALLROUTE_LOG_FORMAT or the config file, else text)")
    return parser


def loop_kind(wanted: str) -> str:
    """uvloop when asked for or, with "auto", when installed: about a fifth less CPU
    per decision here (docs/fastagi.md). Plain asyncio otherwise."""
    if wanted == "asyncio":
        return wanted
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if wanted == "uvloop":
            raise ValueError("--loop uvloop: uvloop is not installed "
                             "(pip install 'callroute[fast]')") from None
        return "asyncio"
    return "uvloop"


def raise_fd_limit(wanted: int) -> None:
    """Every connection is a descriptor: lift the soft limit towards the cap."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load()
        logfmt.configure(args.log_format or config.log_format, args.log_level)
        if args.max_connections < 1 or min(args.env_timeout, args.session_timeout,
                                           args.drain_timeout) < 0:
            raise ValueError("--max-connections must be >= 1 and timeouts >= 0")
        host, port = parse_listen(args.listen)
        raise_fd_limit(args.max_connections + 1024)  # room to accept, then shed
        loop = loop_kind(args.loop)
        server = FastAgiServer(config, host, port, env_timeout=args.env_timeout,
                               session_timeout=args.session_timeout,
                               max_connections=args.max_connections,
                               drain_timeout=args.drain_timeout,
                               allow=parse_allow(args.allow))
    except (ConfigError, ValueError, OSError) as exc:
        print(f"callroute-fastagi: error: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: no new connections; draining calls in flight for up to "
                 "%g s", signum, args.drain_timeout)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("listening on %s:%d (%s), at most %d connections, Redis %s", *server.address,
             loop, args.max_connections, redact_url(config.redis_url))
    server.serve(loop)
    if server.cut:
        log.warning("stopped: %d call(s) still in flight after %g s were cut", server.cut,
                    args.drain_timeout)
        # A feature-code write may still hold an executor thread, and the interpreter
        # would join it at exit: leave now, as promised by --drain-timeout.
        logging.shutdown()
        os._exit(0)
    log.info("stopped: every call in flight finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())

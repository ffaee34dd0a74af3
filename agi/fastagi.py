"""`callroute-fastagi`: the FastAGI server, for PBXs where a process per call is too slow.

Design (docs/fastagi.md): one asyncio event loop holds every connection, so an idle
or slow peer costs a few KB, not a thread. This module is the server's lifecycle
(socket, loop, drain) and its command line; agi/fastagi_session.py admits and runs
each session (deadlines, cap, the scripts), agi/fastagi_conn.py is one connection's
protocol and agi/fastagi_decide.py the decision: one pipelined Redis read on the
loop (agi/resp_async.py), then every variable in one EXEC MSet. Feature codes do
blocking redis-py admin writes: they run in a small executor, never on the loop.
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

from agi import logfmt, metrics, sdnotify
from agi.config import LOG_FORMATS, Config, ConfigError, load
from agi.fastagi_logs import ThrottledLog
from agi.fastagi_session import Sessions
from agi.resp import RespError
from agi.resp_async import AsyncRespPool
from agi.schema import company_key
from agi.store import redact_url

__all__ = ["FastAgiServer", "ThrottledLog", "main", "parse_allow", "parse_listen"]

log = logging.getLogger("callroute.fastagi")

PROG = "callroute-fastagi"
DEFAULT_LISTEN = "127.0.0.1:4573"
# Threads for blocking work (feature-code writes, Sentinel discovery, DNS): the server
# is this plus the loop's thread.
BLOCKING_WORKERS = 2
IDLE_REDIS_CONNECTIONS = 32
LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn


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
                 max_line: int = 8192, allow: frozenset = frozenset(),
                 recorder: metrics.Recorder = metrics.NULL):
        address = ipaddress.ip_address(host)
        if not address.is_loopback and not allow:
            raise ValueError("listening beyond loopback needs --allow with the Asterisk "
                             "addresses that may connect")
        self.config = config
        self.drain_timeout = drain_timeout
        self.executor = ThreadPoolExecutor(max_workers=BLOCKING_WORKERS,
                                           thread_name_prefix="fastagi-blocking")
        self.metrics = recorder
        self.pool = AsyncRespPool(config.redis_url, IDLE_REDIS_CONNECTIONS, self.executor,
                                  recorder)
        # With --allow, only the listed clients (plus the local Asterisk on 127.0.0.1 or
        # ::1 when listening on loopback); without it, loopback clients only.
        allowed = allow | ({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
                           if allow and address.is_loopback else set())
        self.sessions = Sessions(config, self.pool, self.executor, allow=frozenset(allowed),
                                 env_timeout=env_timeout, session_timeout=session_timeout,
                                 max_connections=max_connections, max_line=max_line,
                                 recorder=recorder)
        self.table = self.sessions.table
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
        server = await self._loop.create_server(self.sessions.protocol, sock=self.sock,
                                                backlog=LISTEN_BACKLOG)
        self._ready.set()
        host, port = self.address
        announcer = asyncio.create_task(sdnotify.announce(f"{host}:{port}", self._redis_answers))
        try:
            await self._stop.wait()
        finally:
            sdnotify.stopping()
            announcer.cancel()
            self.sessions.closing = True
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
                self.metrics.shed("drain_cut")
            if still:
                await asyncio.wait(still, timeout=1.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG,
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
    metrics.add_arguments(parser)
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
        recorder = metrics.from_args(args, "fastagi", PROG)
        server = FastAgiServer(config, host, port, env_timeout=args.env_timeout,
                               session_timeout=args.session_timeout,
                               max_connections=args.max_connections,
                               drain_timeout=args.drain_timeout,
                               allow=parse_allow(args.allow), recorder=recorder)
        metrics.serve_fastagi(recorder, server, args)
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

"""`callroute-fastagi`: the FastAGI server, for PBXs where a process per call is too slow.

Design (see docs/fastagi.md): one accept loop hands each connection to a bounded
thread pool. pyst2 can't run in a worker thread (it installs a signal handler), so
connections use StreamSession, our own session class with the same AgiSession API,
quoting and result parsing as process AGI. Calls share nothing but a pool of idle
Redis connections, and each call gets the same deadline as in process mode.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agi import variables as v
from agi.config import Config, ConfigError, load
from agi.features import handle_feature
from agi.protocol import AgiProtocolError, AgiSession, ChannelHungUp, parse_env_line
from agi.resp import RespPool
from agi.service import handle_route
from agi.store import redact_url

log = logging.getLogger("callroute.fastagi")

DEFAULT_LISTEN = "127.0.0.1:4573"
SCRIPT_ROUTE = "route"
SCRIPT_HEALTH = "health"
SCRIPT_FEATURE = "feature"
HEALTH_VARIABLE = "CALLROUTE_HEALTH"
# Asterisk's AGI environment is about 25 short lines; anything far beyond is hostile.
MAX_ENV_LINES = 128


class BadRequest(Exception):
    """The peer broke the protocol (line too long, too many lines, not text)."""


class StreamSession(AgiSession):
    """An AGI session over a socket: same API as the pyst2-backed process session."""

    def __init__(self, conn: socket.socket, max_line: int):
        self._conn = conn
        self._rfile = conn.makefile("rb")
        self._max_line = max_line
        self.env: dict[str, str] = {}
        for _ in range(MAX_ENV_LINES):
            entry = parse_env_line(self._readline())
            if entry is None:
                return
            key, value = entry
            self.env[key] = value
        raise BadRequest("AGI environment has too many lines")

    def _readline(self) -> str:
        try:
            raw = self._rfile.readline(self._max_line + 1)
        except TimeoutError:
            raise ChannelHungUp("peer silent past the read timeout") from None
        except OSError as exc:
            raise ChannelHungUp(str(exc)) from None
        if not raw:
            raise ChannelHungUp("peer closed the connection")
        if len(raw) > self._max_line and not raw.endswith(b"\n"):
            raise BadRequest(f"line longer than {self._max_line} bytes")
        return raw.decode("utf-8", "replace")

    def _exchange(self, command: str) -> str:
        try:
            self._conn.sendall(command.encode() + b"\n")
        except OSError as exc:
            raise ChannelHungUp(str(exc)) from None
        return self._readline()


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
    """Bounded, loopback-by-default FastAGI server. `serve()` returns after `stop()`."""

    def __init__(self, config: Config, host: str = "127.0.0.1", port: int = 4573, *,
                 workers: int = 32, max_pending: int | None = None,
                 read_timeout: float = 5.0, max_line: int = 8192,
                 allow: frozenset = frozenset()):
        address = ipaddress.ip_address(host)
        if not address.is_loopback and not allow:
            raise ValueError("listening beyond loopback needs --allow with the Asterisk "
                             "addresses that may connect")
        self.config = config
        # With --allow, only the listed clients (plus the local Asterisk on 127.0.0.1 or
        # ::1 when listening on loopback); without it, loopback clients only.
        self.allow = allow | ({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
                              if allow and address.is_loopback else set())
        self.read_timeout = read_timeout
        self.max_line = max_line
        self.workers = workers
        self.max_pending = max_pending or workers * 4
        self.pool = RespPool(config.redis_url, max_idle=workers)
        self.outages = OutageLog()
        self.refusals = ThrottledLog()
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.address = self.sock.getsockname()[:2]
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="fastagi")
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def pending(self) -> int:
        """Connections admitted and not finished (running or waiting for a worker)."""
        with self._pending_lock:
            return self._pending

    # -- lifecycle --------------------------------------------------------------------

    def serve(self) -> None:
        self.sock.settimeout(0.2)  # wake up regularly to notice stop()
        while not self._stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                raise
            self._admit(conn, peer)
        self.sock.close()

    def stop(self) -> None:
        self._stopping.set()

    def drain(self, timeout: float) -> bool:
        """Wait for calls in flight; True if all finished within `timeout`."""
        deadline = time.monotonic() + timeout
        drained = False
        while not drained and time.monotonic() < deadline:
            with self._pending_lock:
                drained = self._pending == 0
            if not drained:
                time.sleep(0.02)
        self._executor.shutdown(wait=False, cancel_futures=not drained)
        self.pool.clear()
        return drained

    # -- connections ------------------------------------------------------------------

    def _admit(self, conn: socket.socket, peer: tuple) -> None:
        client = ipaddress.ip_address(peer[0])
        if getattr(client, "ipv4_mapped", None):
            client = client.ipv4_mapped
        if not (client in self.allow if self.allow else client.is_loopback):
            self.refusals.warning("allow", f"refused FastAGI connection from {peer[0]} "
                                           "(not in --allow)")
            conn.close()
            return
        with self._pending_lock:
            if self._pending >= self.max_pending:
                conn.close()  # Asterisk sees the AGI fail; the dialplan falls back
                self.refusals.warning("busy", "refused FastAGI connection: "
                                      f"{self._pending} calls already waiting")
                return
            self._pending += 1
        self._executor.submit(self._serve_connection, conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(self.read_timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = StreamSession(conn, self.max_line)
            script = session.env.get("agi_network_script", "").split("?", 1)[0].strip("/")
            if script == SCRIPT_HEALTH:
                session.set_variable(HEALTH_VARIABLE, "OK")
            elif script == SCRIPT_ROUTE:
                route = handle_route(session, [], self.config, self.pool)
                if route is not None:
                    self.outages.record(route.status, route.reason)
            elif script == SCRIPT_FEATURE:
                handle_feature(session, [], self.config)
            else:
                session.verbose(f"callroute: unknown FastAGI script {script[:40]!r}", 1)
        except (ChannelHungUp, BadRequest, AgiProtocolError) as exc:
            log.debug("FastAGI session ended early: %s", exc)
        except Exception:  # a bug: log it once per occurrence, keep serving others
            log.exception("FastAGI session failed")
        finally:
            # shutdown() ends the connection for the peer now, even if something still
            # holds a reference to the socket's file object (close() alone waits for it).
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
            with self._pending_lock:
                self._pending -= 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callroute-fastagi",
                                     description="callroute FastAGI server")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT "
                        f"(default {DEFAULT_LISTEN}; loopback unless --allow is given)")
    parser.add_argument("--allow", help="comma-separated client addresses allowed when "
                        "listening beyond loopback")
    parser.add_argument("--workers", type=int, default=32, help="calls handled at once")
    parser.add_argument("--read-timeout", type=float, default=5.0,
                        help="seconds a silent connection is kept")
    parser.add_argument("--drain-timeout", type=float, default=10.0,
                        help="seconds to finish calls in flight after SIGTERM")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s callroute-fastagi %(levelname)s %(message)s")
    try:
        config = load()
        host, port = parse_listen(args.listen)
        server = FastAgiServer(config, host, port, workers=max(1, args.workers),
                               read_timeout=args.read_timeout, allow=parse_allow(args.allow))
    except (ConfigError, ValueError, OSError) as exc:
        print(f"callroute-fastagi: error: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: draining calls in flight", signum)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("listening on %s:%d, %d workers, Redis %s", *server.address, server.workers,
             redact_url(config.redis_url))
    server.serve()
    drained = server.drain(args.drain_timeout)
    log.info("stopped%s", "" if drained else " (calls still in flight were cut)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""sd_notify(3) for the long-running servers (`Type=notify` units), without libsystemd.

systemd passes a datagram socket in NOTIFY_SOCKET (a path, or "@name" for the
abstract namespace) and reads "KEY=value" lines from it. Outside systemd the
variable is absent and every call here is a cheap no-op, so the servers call these
unconditionally. WATCHDOG_USEC asks for a `WATCHDOG=1` at least that often; we ping
at half of it, from a task on the server's own event loop, so a blocked loop stops
the pings and systemd restarts the service (a thread would keep pinging).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping


def _address(env: Mapping[str, str]) -> str | None:
    path = env.get("NOTIFY_SOCKET", "")
    if path.startswith("@"):
        return "\0" + path[1:]  # abstract namespace
    return path if path.startswith("/") else None


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `fields` ("READY=1", "STATUS=...") in one datagram; False if not under systemd.

    A field may not hold a newline: it would forge another field (STATUS text is
    partly ours, partly a Redis error message).
    """
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    payload = "\n".join(field.replace("\n", " ") for field in fields).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(payload, address)
        except OSError:
            return False  # systemd gone or socket full: the service keeps serving
    return True


def ready(status: str, env: Mapping[str, str] | None = None) -> bool:
    """Listening and Redis answered: systemd may start what is ordered after us."""
    return notify("READY=1", f"STATUS={status}", env=env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    return notify(f"STATUS={text}", env=env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    """Draining calls: systemd shows it and waits (TimeoutStopSec) instead of guessing."""
    return notify("STOPPING=1", "STATUS=draining", env=env)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half WATCHDOG_USEC), or None if no watchdog is asked for
    (or it is meant for another process: WATCHDOG_PID)."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


async def watchdog(env: Mapping[str, str] | None = None) -> None:
    """Ping `WATCHDOG=1` until cancelled; returns at once if no watchdog is configured."""
    interval = watchdog_interval(env)
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1", env=env)
        await asyncio.sleep(interval)


async def announce(listening: str, redis_answers: Callable[[], Awaitable[bool]],
                   retry_s: float = 1.0) -> None:
    """READY=1 once Redis has answered once, then watchdog pings until cancelled.

    Started by a server once its socket listens. Until Redis answers, STATUS says what
    we wait for: a unit ordered after us must not start against a server that can only
    fall back.
    """
    while not await redis_answers():
        status(f"listening on {listening}; waiting for Redis")
        await asyncio.sleep(retry_s)
    ready(f"listening on {listening}; Redis answered")
    await watchdog()

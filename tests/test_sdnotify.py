"""agi/sdnotify against a real datagram socket standing in for systemd's NOTIFY_SOCKET.

What systemd would read is what the socket receives: one datagram per call, fields
separated by newlines.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agi import sdnotify
from tests.harness.notify import FakeSystemd


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    if request.param == "path":
        path = str(tmp_path / "notify")
        fake = FakeSystemd(path, path)
    else:
        name = f"callroute-test-{uuid.uuid4().hex}"
        fake = FakeSystemd("\0" + name, "@" + name)
    yield fake
    fake.sock.close()


def test_ready_sends_ready_and_status_in_one_datagram(systemd):
    assert sdnotify.ready("listening on 127.0.0.1:4573, Redis answered", env=systemd.env)
    assert systemd.receive() == ["READY=1", "STATUS=listening on 127.0.0.1:4573, Redis answered"]


def test_stopping_and_status(systemd):
    assert sdnotify.status("Redis unreachable", env=systemd.env)
    assert sdnotify.stopping(env=systemd.env)
    assert systemd.receive() == ["STATUS=Redis unreachable"]
    assert systemd.receive() == ["STOPPING=1", "STATUS=draining"]


def test_a_newline_in_a_status_cannot_forge_another_field(systemd):
    sdnotify.status("Error\nREADY=1", env=systemd.env)
    assert systemd.receive() == ["STATUS=Error READY=1"]


def test_without_notify_socket_nothing_is_sent_and_nothing_fails():
    assert sdnotify.ready("x", env={}) is False
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "relative/path"}) is False


def test_a_vanished_socket_does_not_break_the_server(tmp_path):
    assert sdnotify.ready("x", env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_watchdog_usec(env, expected):
    assert sdnotify.watchdog_interval(env) == expected


def test_watchdog_pings_at_half_the_interval_until_cancelled(systemd):
    env = {**systemd.env, "WATCHDOG_USEC": "400000"}  # 0.4 s: a ping every 0.2 s

    async def run_for(seconds: float) -> None:
        task = asyncio.create_task(sdnotify.watchdog(env))
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_for(0.5))  # pings due at 0, 0.2 and 0.4 s
    pings = systemd.drain()
    # The last one may slip past the cancel on a loaded machine; more would be too often.
    assert pings in ([["WATCHDOG=1"]] * 2, [["WATCHDOG=1"]] * 3), pings


def test_watchdog_without_watchdog_usec_returns_at_once(systemd):
    asyncio.run(asyncio.wait_for(sdnotify.watchdog(systemd.env), timeout=1))
    assert systemd.drain() == []

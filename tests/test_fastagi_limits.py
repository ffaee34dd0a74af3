"""The FastAGI server's bounds: starvation, total deadlines, shedding order, 520 replies
and shutdown. Real sockets against the server on its own event loop (in a thread, or
the real `callroute-fastagi` process for SIGTERM), a real Redis behind it."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from agi import variables as v
from tests.asterisk_parser import parse_args, set_pairs, variables
from tests.fake_asterisk import agi_session, console_script
from tests.harness.net import accepts
from tests.harness.notify import FakeSystemd
from tests.harness.procs import free_port, spawn, stop_popen, wait_until

pytestmark = pytest.mark.redis

REQUEST = b"agi_network: yes\nagi_network_script: route\nagi_arg_1: 1001\n\n"


@pytest.fixture(autouse=True)
def forward_on(redis_client: redis.Redis) -> None:
    redis_client.hset("callroute:ext:1001", mapping={
        "devices": '["PJSIP/1001"]', "forward_enabled": "1",
        "forward_target": "+33612345678", "did": "+33100001001"})


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closed `sock` without sending anything (fails past
    `limit`)."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        data = sock.recv(65536)
    except TimeoutError:
        raise AssertionError(f"still open after {limit} s") from None
    except ConnectionResetError:
        data = b""
    assert data == b"", data
    return time.monotonic() - started


def routed_ok(port: int) -> float:
    started = time.monotonic()
    assert variables(agi_session(port))[v.STATUS] == v.STATUS_OK
    return time.monotonic() - started


# ---- starvation ------------------------------------------------------------------------

def test_idle_connections_cost_no_thread_and_starve_nobody(serve, redis_server) -> None:
    server = serve(redis_server.url, env_timeout=5.0)
    idle = [connect(server.address[1]) for _ in range(300)]
    try:
        wait_until(lambda: server.pending == 300, 5, "300 idle connections held")
        threads = len(os.listdir(f"/proc/{os.getpid()}/task"))
        assert routed_ok(server.address[1]) < 0.5
        assert len(os.listdir(f"/proc/{os.getpid()}/task")) <= threads
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: server.pending == 0, 5, "closed idle connections released")


def test_a_slow_drip_is_closed_at_the_total_environment_deadline(serve,
                                                                 redis_server) -> None:
    """A byte every 0.1 s would keep a per-read timeout happy for ever."""
    server = serve(redis_server.url, env_timeout=0.5)
    with connect(server.address[1]) as sock:
        started = time.monotonic()
        sock.settimeout(0.05)
        try:
            for byte in REQUEST[:-2] * 5:
                sock.send(bytes([byte]))
                try:
                    assert sock.recv(1) == b""
                    break  # closed
                except TimeoutError:
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 1.0, elapsed
    assert routed_ok(server.address[1]) < 0.5


# Random bytes with no newline: a blank line would end the "environment" and make it a
# (garbage) request, which is answered; os.urandom held one in about 1 run out of 13.
RANDOM_GARBAGE = random.Random(13).randbytes(5000).replace(b"\n", b"")


@pytest.mark.parametrize("payload", [RANDOM_GARBAGE, b"agi_arg_1: 1001\n" * 200 + b"\n",
                                     b"x" * 100_000], ids=["random", "too-many-lines", "huge"])
def test_garbage_is_closed_without_a_word(serve, redis_server, payload: bytes) -> None:
    server = serve(redis_server.url, env_timeout=0.5)
    with connect(server.address[1]) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_after(sock, 2) < 1.0
    assert routed_ok(server.address[1]) < 0.5


def test_half_open_peers_are_let_go(serve, redis_server) -> None:
    """EOF in the middle of the environment: closed at once. EOF after it (the reply
    never comes): the session ends at once too."""
    server = serve(redis_server.url, env_timeout=5.0, session_timeout=5.0)
    with connect(server.address[1]) as sock:
        sock.sendall(REQUEST[:20])
        sock.shutdown(socket.SHUT_WR)
        assert closed_after(sock, 2) < 0.5
    with connect(server.address[1]) as sock:
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        received = b""
        started = time.monotonic()
        while chunk := sock.recv(65536):
            received += chunk
        assert time.monotonic() - started < 0.5
        assert received.startswith(b"EXEC MSet")  # the decision, then nothing more
    wait_until(lambda: server.pending == 0, 5, "half-open connections released")


# ---- total deadlines ------------------------------------------------------------------

def test_a_silent_connection_is_closed_at_the_environment_deadline(serve,
                                                                   redis_server) -> None:
    server = serve(redis_server.url, env_timeout=0.3)
    with connect(server.address[1]) as sock:
        assert 0.25 < closed_after(sock, 3) < 1.0


def test_a_peer_that_never_answers_is_closed_at_the_session_deadline(serve,
                                                                      redis_server) -> None:
    server = serve(redis_server.url, session_timeout=0.5)
    with connect(server.address[1]) as sock:
        sock.sendall(REQUEST)
        sock.settimeout(3)
        started = time.monotonic()
        first = sock.recv(65536)
        assert first.startswith(b"EXEC MSet")
        assert sock.recv(65536) == b""  # the last command comes with the end of our side
        # No answer from us: the server waits for it until the session deadline only.
        wait_until(lambda: server.pending == 0, 3, "the unanswered session to be dropped")
        assert 0.4 < time.monotonic() - started < 1.0


# ---- shedding -------------------------------------------------------------------------

def test_a_full_table_sheds_the_oldest_idle_connection_first(serve, redis_server) -> None:
    server = serve(redis_server.url, max_connections=4, env_timeout=10.0)
    port = server.address[1]
    idle = []
    for count in range(1, 5):
        idle.append(connect(port))
        wait_until(lambda count=count: server.pending == count, 5, "connection admitted")
    try:
        assert routed_ok(port) < 0.5  # sheds idle[0] to get in
        assert closed_after(idle[0], 1) < 0.5
        for sock in idle[1:]:
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(1)  # still open
        assert server.table.shed == 1
    finally:
        for sock in idle:
            sock.close()


def test_a_call_in_flight_is_never_shed(serve, redis_server) -> None:
    """Full of calls waiting for Asterisk's reply: a newcomer is refused, not them."""
    server = serve(redis_server.url, max_connections=3, session_timeout=10.0)
    port = server.address[1]
    calls = []
    try:
        for _ in range(3):
            sock = connect(port)
            sock.sendall(REQUEST)
            assert sock.recv(65536).startswith(b"EXEC MSet")  # in flight, unanswered
            calls.append(sock)
        with connect(port) as extra:
            extra.sendall(REQUEST)
            assert closed_after(extra, 2) < 0.5
        for sock in calls:  # each call still completes
            sock.sendall(b"200 result=0\n")
        wait_until(lambda: server.pending == 0, 2, "the answered calls to end")
    finally:
        for sock in calls:
            sock.close()
    assert server.table.shed == 0


# ---- 520 usage replies ----------------------------------------------------------------

USAGE_520 = (b"520-Invalid command syntax.  Proper usage follows:\n"
             b" Usage: EXEC <application> <options>\n"
             b"Executes application with given options.\n"
             b"520 End of proper usage.\n")


def test_a_520_reply_is_drained_before_the_next_reply(serve, redis_server,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The whole usage text is one reply: the server stays in step with Asterisk.

    An invalid extension's decision is an MSet and a VERBOSE line, sent together with
    the end of the session; the MSet gets the 520, the VERBOSE line its own 200."""
    server = serve(redis_server.url)
    with connect(server.address[1]) as sock:
        sock.sendall(REQUEST.replace(b"1001", b"10;01"))
        stream = sock.makefile("rwb")
        mset, verbose = (parse_args(stream.readline().decode().rstrip("\n")) for _ in "12")
        assert dict(set_pairs([mset]))[v.STATUS] == v.STATUS_INVALID
        assert verbose[0] == "VERBOSE"
        assert stream.readline() == b""  # our side ends with the decision
        stream.write(USAGE_520 + b"200 result=1\n")
        stream.flush()
    wait_until(lambda: server.pending == 0, 2, "the session to end")
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == ["Asterisk refused 1 of 2 commands: 520-Invalid command syntax.  "
                       "Proper usage follows:"]


def test_the_process_session_drains_520_too() -> None:
    from agi.protocol import AgiProtocolError, AgiSession

    lines = iter([*USAGE_520.decode().splitlines(keepends=True), "200 result=1 (x)\n"])

    class Scripted(AgiSession):
        def __init__(self) -> None:
            self.env: dict[str, str] = {}

        def _send(self, command: str) -> None:
            pass

        def _readline(self) -> str:
            return next(lines, "")

    session = Scripted()
    with pytest.raises(AgiProtocolError, match="520-Invalid"):
        session.verbose("x")
    assert session.command("GET VARIABLE X") == "1"  # the next reply is its own


# ---- shutdown -------------------------------------------------------------------------

def test_sigterm_with_a_stuck_client_exits_within_the_drain_timeout(
        redis_server, config_env, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **config_env(redis_url=redis_server.url)}
    log = tmp_path / "fastagi.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(console_script("callroute-fastagi")), "--listen",
                                 f"127.0.0.1:{port}", "--drain-timeout", "1",
                                 "--session-timeout", "60"], env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: accepts(port), 10, "callroute-fastagi to listen")
        with connect(port) as stuck:
            stuck.sendall(REQUEST)
            assert stuck.recv(65536).startswith(b"EXEC MSet")  # now it never answers
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(5) == 0
            assert time.monotonic() - started < 1.0 + 1.0
    finally:
        stop_popen(proc)
    text = log.read_text()
    assert "1 call(s) still in flight after 1 s were cut" in text
    assert "every call in flight finished" not in text


def test_sigterm_lets_a_call_in_flight_finish_and_says_so(redis_server, config_env,
                                                          tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **config_env(redis_url=redis_server.url)}
    log = tmp_path / "fastagi.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(console_script("callroute-fastagi")), "--listen",
                                 f"127.0.0.1:{port}", "--drain-timeout", "5"], env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: accepts(port), 10, "callroute-fastagi to listen")
        with connect(port) as call:
            call.sendall(REQUEST)
            assert call.recv(65536).startswith(b"EXEC MSet")
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: not accepts(port), 5, "the listener to close")
            call.sendall(b"200 result=0\n")
            assert call.recv(65536) == b""
        assert proc.wait(5) == 0
    finally:
        stop_popen(proc)
    text = log.read_text()
    assert "every call in flight finished" in text and "were cut" not in text


def test_sigterm_with_only_an_idle_connection_cuts_no_call(redis_server, config_env,
                                                          tmp_path: Path) -> None:
    """A connection that never sent its environment is not a call in flight: it gets
    its environment deadline, and the log does not count it as a cut call."""
    port = free_port()
    env = {**os.environ, **config_env(redis_url=redis_server.url)}
    log = tmp_path / "fastagi.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(console_script("callroute-fastagi")), "--listen",
                                 f"127.0.0.1:{port}", "--drain-timeout", "5",
                                 "--env-timeout", "0.5"], env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: accepts(port), 10, "callroute-fastagi to listen")
        with connect(port):
            time.sleep(0.1)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(5) == 0
            assert time.monotonic() - started < 1.5
    finally:
        stop_popen(proc)
    text = log.read_text()
    assert "every call in flight finished" in text and "were cut" not in text


def test_a_stop_before_the_loop_runs_is_not_lost(fr_config) -> None:
    """SIGTERM during start-up: the server stops as soon as its loop starts."""
    import threading

    from agi.fastagi import FastAgiServer

    server = FastAgiServer(fr_config, "127.0.0.1", 0)
    server.stop()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


def test_tells_systemd_ready_only_once_redis_answered(redis_server, config_env,
                                                      tmp_path: Path) -> None:
    """Type=notify: READY=1 once listening and Redis answered, then WATCHDOG=1 pings;
    STOPPING=1 on SIGTERM. A closed Redis port first: no READY until it is the real one."""
    systemd = FakeSystemd(str(tmp_path / "notify"), str(tmp_path / "notify"))
    port = free_port()
    env = {**os.environ, **config_env(redis_url=redis_server.url), **systemd.env,
           "WATCHDOG_USEC": "400000"}
    log = tmp_path / "fastagi.log"
    try:
        proc = spawn([console_script("callroute-fastagi"), "--listen", f"127.0.0.1:{port}"],
                     log, env)
        try:
            first = systemd.receive()
            assert first[0] == "READY=1", first
            assert first[1].startswith(f"STATUS=listening on 127.0.0.1:{port}")
            assert systemd.receive() == ["WATCHDOG=1"]
            proc.send_signal(signal.SIGTERM)
            assert systemd.until("STOPPING=1")[-1] == ["STOPPING=1", "STATUS=draining"]
            assert proc.wait(5) == 0
        finally:
            stop_popen(proc)
    finally:
        systemd.sock.close()


def test_not_ready_while_redis_does_not_answer(config_env, tmp_path: Path) -> None:
    systemd = FakeSystemd(str(tmp_path / "notify"), str(tmp_path / "notify"))
    port = free_port()
    env = {**os.environ, **config_env(redis_url=f"redis://127.0.0.1:{free_port()}/0"),
           **systemd.env}
    try:
        proc = spawn([console_script("callroute-fastagi"), "--listen", f"127.0.0.1:{port}"],
                     tmp_path / "fastagi.log", env)
        try:
            for _ in range(2):
                status = systemd.receive()
                assert status[0].endswith("waiting for Redis"), status
        finally:
            stop_popen(proc)
    finally:
        systemd.sock.close()

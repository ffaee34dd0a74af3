"""The FastAGI server against a real Redis: same answers as process AGI, and bounded.

The server runs in this process (in a thread) for most tests; the SIGTERM drain is
checked on the real `callroute-fastagi` process. Clients speak the AGI protocol over
real sockets and parse every command with the Asterisk parser re-implementation.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import pytest
import redis

from agi import variables as v
from agi.fastagi import FastAgiServer
from tests.asterisk_parser import parse_args, variables
from tests.fake_asterisk import agi_session, console_script
from tests.harness.net import accepts
from tests.harness.procs import free_port, stop_popen, wait_until
from tests.harness.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def forward_on(redis_client: redis.Redis) -> None:
    redis_client.hset("callroute:ext:1001", mapping={
        "devices": '["PJSIP/1001"]', "forward_enabled": "1",
        "forward_target": "+33612345678", "did": "+33100001001"})


def test_route_gives_the_same_decision_as_process_agi(serve, redis_server, forward_on):
    server = serve(redis_server.url)
    found = variables(agi_session(server.address[1]))
    assert found[v.STATUS] == v.STATUS_OK
    assert found[v.MODE] == v.MODE_FORWARD
    assert found[v.DIAL] == "Local/+33612345678-0-0-0@callroute-external/n"
    assert found[v.DIVERSION] == "+33100001001"
    assert list(found)[-1] == v.STATUS


def test_health_answers_without_touching_redis(serve, closed_port):
    server = serve(f"redis://127.0.0.1:{closed_port}/0")
    assert agi_session(server.address[1], script="health") == [
        ["SET", "VARIABLE", "CALLROUTE_HEALTH", "OK"]]


def test_unknown_script_sets_nothing(serve, redis_server):
    server = serve(redis_server.url)
    commands = agi_session(server.address[1], script="../../etc/passwd")
    assert [c[0] for c in commands] == ["VERBOSE"]


def test_blackholed_redis_falls_back_within_the_deadline(serve, blackhole_port):
    server = serve(f"redis://127.0.0.1:{blackhole_port}/0")
    started = time.monotonic()
    found = variables(agi_session(server.address[1]))
    assert found[v.STATUS] == v.STATUS_FALLBACK
    assert found[v.DIAL] == "PJSIP/1001"
    assert time.monotonic() - started < 0.3 + 0.25


def test_routing_resumes_after_redis_restarts(serve, tmp_path):
    port = free_port()
    store = RedisServer(tmp_path / "r", port=port).start()
    try:
        server = serve(store.url)
        assert variables(agi_session(server.address[1]))[v.STATUS] == v.STATUS_OK
        store.stop()
        assert variables(agi_session(server.address[1]))[v.STATUS] == v.STATUS_FALLBACK
        store = RedisServer(tmp_path / "r", port=port).start()
        # The pooled connection died with the old server: the next call must not fail.
        assert variables(agi_session(server.address[1]))[v.STATUS] == v.STATUS_OK
    finally:
        store.stop()


def test_a_line_over_the_limit_closes_that_connection_only(serve, redis_server):
    server = serve(redis_server.url, max_line=1024)
    with socket.create_connection(("127.0.0.1", server.address[1]), timeout=5) as sock:
        try:
            sock.sendall(b"agi_network_script: route\n" + b"x" * 100_000)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may reset the connection while we are still sending
        assert _closed_without_a_word(sock)
    assert variables(agi_session(server.address[1]))[v.STATUS] == v.STATUS_OK


def test_listening_beyond_loopback_needs_an_allowlist(fr_config):
    with pytest.raises(ValueError, match="--allow"):
        FastAgiServer(fr_config, "0.0.0.0", 0)


def test_sigterm_finishes_the_call_in_flight_then_exits(redis_server, config_env,
                                                        forward_on):
    port = free_port()
    env = {**os.environ, **config_env(redis_url=redis_server.url)}
    proc = subprocess.Popen([str(console_script("callroute-fastagi")), "--listen",
                             f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: accepts(port), 10, "callroute-fastagi to listen")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            stream = sock.makefile("rwb")
            stream.write(b"agi_network_script: route\nagi_arg_1: 1001\n\n")
            stream.flush()
            first = stream.readline()  # the call is now in flight
            proc.send_signal(signal.SIGTERM)
            commands = [parse_args(first.decode().rstrip("\n"))]
            stream.write(b"200 result=1\n")
            stream.flush()
            while line := stream.readline():
                commands.append(parse_args(line.decode().rstrip("\n")))
                stream.write(b"200 result=1\n")
                stream.flush()
        assert variables(commands)[v.STATUS] == v.STATUS_OK
        assert proc.wait(10) == 0
        assert not accepts(port)
    finally:
        stop_popen(proc)


def _closed_without_a_word(sock: socket.socket) -> bool:
    """The server closed the connection without sending anything (FIN or RST)."""
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False  # still open: not closed at all
    except OSError:
        return True  # reset


def test_refusals_are_logged_at_most_once_a_second(caplog):
    from agi.fastagi import ThrottledLog

    throttled = ThrottledLog(interval=0.2)
    with caplog.at_level("WARNING", logger="callroute.fastagi"):
        for _ in range(500):
            throttled.warning("busy", "refused")
        time.sleep(0.25)
        throttled.warning("busy", "refused")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused", "refused (499 more since the last such line)"]


def test_an_error_reply_drops_one_pooled_connection_not_the_others(redis_server,
                                                                   redis_client):
    """WRONGTYPE comes from a working Redis: the other idle connections stay pooled."""
    from concurrent.futures import ThreadPoolExecutor

    from agi.resp import RespReplyError
    from agi.resp_async import AsyncRespPool

    keys = ["callroute:ext:1001"]

    async def scenario(executor: ThreadPoolExecutor) -> None:
        pool = AsyncRespPool(redis_server.url, 4, executor)
        deadline = time.monotonic() + 1
        # Two reads at once: two connections, both pooled afterwards.
        await asyncio.gather(*(pool.hgetall_many(keys, deadline) for _ in range(2)))
        assert len(pool._idle) == 2
        redis_client.set("callroute:ext:1001", "not a hash")
        with pytest.raises(RespReplyError):
            await pool.hgetall_many(keys, time.monotonic() + 1)
        assert len(pool._idle) == 1
        redis_client.delete("callroute:ext:1001")
        assert await pool.hgetall_many(keys, time.monotonic() + 1) == [{}]
        assert len(pool._idle) == 1
        pool.clear()

    with ThreadPoolExecutor(1) as executor:
        asyncio.run(scenario(executor))

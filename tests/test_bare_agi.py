"""The bench's bare FastAGI agent (tests/harness/bare_agi.py), the floor FastAGI's PDD
is read against: it must do what an agent's session does on the wire, or the floor
would be too low."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.harness import bare_agi
from tests.harness.bench_fastagi import fastagi_session, route_request
from tests.harness.procs import free_port, stop_popen
from tests.harness.redis_server import RedisServer

ANSWER = [b'EXEC MSet "CALLROUTE_MODE=RING,CALLROUTE_STATUS=OK"', b'VERBOSE "x" 1']
HASHES = 2  # the extension's and the company's


def hgetalls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))


@pytest.fixture
def bare(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = bare_agi.start(port, redis_server.url, "1001", ANSWER, tmp_path)
    try:
        yield ("127.0.0.1", port)
    finally:
        stop_popen(proc)


def test_a_session_reads_redis_once_and_gets_the_answer_then_our_end(
        bare: tuple[str, int], redis_client: redis.Redis) -> None:
    before = hgetalls(redis_client)
    # fastagi_session answers every line and returns at our end of the connection.
    assert fastagi_session(bare, route_request(bare)) == ANSWER
    assert hgetalls(redis_client) - before == HASHES


def test_a_peer_that_closes_before_its_environment_ends_does_not_stop_it(
        bare: tuple[str, int], redis_client: redis.Redis) -> None:
    with socket.create_connection(bare) as sock:
        sock.sendall(b"agi_network: yes\n")
    before = hgetalls(redis_client)
    assert fastagi_session(bare, route_request(bare)) == ANSWER
    assert hgetalls(redis_client) - before == HASHES

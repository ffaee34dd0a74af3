"""The Redis read sent on the script line (`route/<ext>`), before the environment ends.

Asterisk writes the FastAGI environment a line at a time, about half a millisecond
from the script line (the second) to agi_arg_1 (the last); the dialplan names the
extension in the script's path, so the server reads Redis meanwhile. Real server,
real Redis: what Redis was asked, and when, is read from its own command counters.
"""

from __future__ import annotations

import socket

import pytest
import redis

from agi import variables as v
from agi.fastagi_session import script_parts
from tests.asterisk_parser import variables
from tests.fake_asterisk import agi_session, answer_all, fastagi_request
from tests.harness.procs import wait_until

pytestmark = pytest.mark.redis


def hgetall_calls(client: redis.Redis) -> int:
    return client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0)


def start_request(port: int, script: str, ext: str) -> tuple[socket.socket, bytes]:
    """Send the environment up to and including its script line; returns the socket
    and the rest of the environment, to send later."""
    request = fastagi_request(port, script, (ext,))
    cut = request.index(b"\n", request.index(b"agi_network_script:")) + 1
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request[:cut])
    return sock, request[cut:]


def finish_request(sock: socket.socket, rest: bytes) -> dict[str, str]:
    with sock, sock.makefile("rwb") as stream:
        stream.write(rest)
        stream.flush()
        return variables(answer_all(stream))


@pytest.fixture
def forwarding_1001(redis_client: redis.Redis) -> None:
    redis_client.hset("callroute:ext:1001", mapping={
        "devices": '["PJSIP/1001"]', "forward_enabled": "1",
        "forward_target": "+33612345678"})
    redis_client.hset("callroute:ext:1002", mapping={"devices": '["PJSIP/1002"]'})


def test_the_read_goes_out_before_the_environment_ends(serve, redis_server, redis_client,
                                                       forwarding_1001):
    server = serve(redis_server.url)
    port = server.address[1]
    agi_session(port)  # leaves an idle Redis connection in the pool
    before = hgetall_calls(redis_client)
    sock, rest = start_request(port, "route/1001", "1001")
    wait_until(lambda: hgetall_calls(redis_client) == before + 2, 5,
               "the extension's and the company's HGETALL")
    found = finish_request(sock, rest)
    assert (found[v.STATUS], found[v.MODE]) == (v.STATUS_OK, v.MODE_FORWARD)
    assert hgetall_calls(redis_client) == before + 2  # that read served the decision


def test_agi_arg_1_decides_when_the_script_names_another_extension(
        serve, redis_server, redis_client, forwarding_1001):
    server = serve(redis_server.url)
    port = server.address[1]
    agi_session(port)
    before = hgetall_calls(redis_client)
    sock, rest = start_request(port, "route/1002", "1001")
    wait_until(lambda: hgetall_calls(redis_client) == before + 2, 5, "the early read")
    found = finish_request(sock, rest)
    assert (found[v.STATUS], found[v.MODE]) == (v.STATUS_OK, v.MODE_FORWARD)  # 1001's
    assert hgetall_calls(redis_client) == before + 4  # 1002's read was dropped


@pytest.mark.parametrize("script", ["route/10;01", "route/..%2f1001", "route", "feature/1001"])
def test_only_a_valid_extension_of_the_route_script_is_read_early(
        serve, redis_server, redis_client, forwarding_1001, script):
    server = serve(redis_server.url)
    port = server.address[1]
    agi_session(port)
    before = hgetall_calls(redis_client)
    sock, _ = start_request(port, script, "1001")
    with sock:
        # The server has the script line once it answers a request sent after it.
        assert variables(agi_session(port))[v.STATUS] == v.STATUS_OK
    assert hgetall_calls(redis_client) == before + 2  # agi_session's own read only


def test_a_request_that_never_completes_costs_its_read_and_nothing_more(
        serve, redis_server, redis_client, forwarding_1001):
    server = serve(redis_server.url)
    port = server.address[1]
    agi_session(port)
    clients = redis_client.info("clients")["connected_clients"]
    for _ in range(3):
        before = hgetall_calls(redis_client)
        sock, _ = start_request(port, "route/1001", "1001")
        wait_until(lambda n=before + 2: hgetall_calls(redis_client) == n, 5, "the early read")
        sock.close()
        wait_until(lambda: len(server.sessions.table) == 0, 5, "the session to end")
    # Each read's connection came back for the next one: no new connection was needed.
    assert redis_client.info("clients")["connected_clients"] == clients
    found = variables(agi_session(port))
    assert (found[v.STATUS], found[v.MODE]) == (v.STATUS_OK, v.MODE_FORWARD)


@pytest.mark.parametrize(("script", "parts"), [
    ("route/1001", ("route", "1001")),
    ("/route/1001/?x=1", ("route", "1001")),
    ("route?1001", ("route", "")),
    ("health", ("health", "")),
    ("", ("", "")),
])
def test_script_parts(script, parts):
    assert script_parts(script) == parts

"""Hostile AGI sessions against the real `callroute-fastagi` process, with its defaults.

Random bytes, EOF in the middle of the AGI environment, 1 MB lines and 1,000 idle
connections that never send. After each wave a normal `route` request still gets its
whole answer (until the server closes the session) in under 100 ms, the server's RSS
stays within 20 MiB of what it was when idle, and it holds at most 8 threads (the
event loop and a small executor; no thread per connection). The server runs as a subprocess so its
memory and threads are read from /proc/PID/status. One server serves the whole module,
so the waves also run in sequence against the same process.

Every socket has a timeout and every wave a deadline; sockets and the process are
closed in `finally` blocks.
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from agi import variables as v
from tests.asterisk_parser import parse_args, set_pairs
from tests.fake_asterisk import console_script
from tests.harness.procs import free_port, stop_popen, wait_until
from tests.harness.redis_server import RedisServer, empty_db_client

pytestmark = pytest.mark.redis

ENV_TIMEOUT_S = 1.0  # callroute-fastagi's default --env-timeout
ANSWER_WITHIN_S = 0.100
RSS_GROWTH_MAX_KIB = 20 * 1024
THREADS_MAX = 8
IDLE_CONNECTIONS = 1000
CLIENT_TIMEOUT_S = 10.0


@dataclass
class Agent:
    proc: subprocess.Popen
    port: int
    log: Path
    idle_rss_kib: int = 0
    peak_rss_kib: int = 0
    peak_threads: int = 0

    def status(self) -> tuple[int, int]:
        """(VmRSS in KiB, thread count) from /proc."""
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]), int(fields["Threads"])

    def assert_bounded(self) -> None:
        rss, threads = self.status()
        self.peak_rss_kib = max(self.peak_rss_kib, rss)
        self.peak_threads = max(self.peak_threads, threads)
        assert rss - self.idle_rss_kib < RSS_GROWTH_MAX_KIB, (rss, self.idle_rss_kib)
        assert threads <= THREADS_MAX, threads
        assert self.proc.poll() is None, "the server died"


def connect(port: int, timeout: float = CLIENT_TIMEOUT_S) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def route(port: int, ext: str = "1001") -> tuple[dict[str, str], float]:
    """A normal request, as Asterisk makes it: (variables set, seconds until closed)."""
    started = time.monotonic()
    with connect(port, timeout=2.0) as sock:
        stream = sock.makefile("rwb")
        stream.write(f"agi_network: yes\nagi_network_script: route\n"
                     f"agi_request: agi://127.0.0.1:{port}/route\nagi_arg_1: {ext}\n\n"
                     .encode())
        stream.flush()
        found = {}
        while line := stream.readline():
            found.update(set_pairs([parse_args(line.decode().rstrip("\n"))]))
            stream.write(b"200 result=1\n")
            stream.flush()
    return found, time.monotonic() - started


def assert_normal_request_answered(agent: Agent) -> None:
    found, elapsed = route(agent.port)
    assert (found[v.STATUS], found[v.MODE]) == (v.STATUS_OK, v.MODE_FORWARD)
    assert elapsed < ANSWER_WITHIN_S, f"{elapsed * 1000:.1f} ms"


def send_then_wait_for_close(port: int, payload: bytes, half_close: bool = True) -> bytes:
    """Send `payload` (the server may reset us midway), then read until the server
    closes; what it sent. Fails if the server keeps the connection past the timeout."""
    received = b""
    with connect(port) as sock:
        try:
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            return received  # reset while sending: closed
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
        raise AssertionError("the server kept a hostile connection open")


@pytest.fixture(scope="module")
def agent(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
          empty_ini: Path) -> Iterator[Agent]:
    with empty_db_client(redis_server.url) as client:
        client.hset("callroute:ext:1001", mapping={
            "devices": '["PJSIP/1001"]', "forward_enabled": "1",
            "forward_target": "+33612345678", "did": "+33100001001"})
        client.set("callroute:ext:1002", "a string where a hash belongs")  # WRONGTYPE
        port = free_port()
        log = tmp_path_factory.mktemp("fastagi") / "fastagi.log"
        env = {"PATH": "/usr/bin:/bin", "CALLROUTE_CONFIG": str(empty_ini),
               "CALLROUTE_COUNTRY": "FR", "CALLROUTE_REDIS_URL": redis_server.url}
        with log.open("wb") as sink:  # a file, not a pipe: 1,000 refusals log 1,000 lines
            proc = subprocess.Popen([str(console_script("callroute-fastagi")), "--listen",
                                     f"127.0.0.1:{port}"], env=env, stdin=subprocess.DEVNULL,
                                    stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _answers(port), 10, "callroute-fastagi to answer")
            found = Agent(proc, port, log)
            for _ in range(50):  # warm up: imports, worker threads, pooled connections
                route(port)
            found.idle_rss_kib = found.status()[0]
            yield found
        finally:
            stop_popen(proc)


def _answers(port: int) -> bool:
    try:
        return route(port)[0].get(v.STATUS) == v.STATUS_OK
    except OSError:
        return False


def _many(count: int, job: Callable[[int], bytes]) -> list[bytes]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(job, range(count), timeout=60))


# ---- the waves --------------------------------------------------------------------------

def test_random_bytes(agent: Agent) -> None:
    _many(24, lambda _: send_then_wait_for_close(agent.port, os.urandom(300_000)))
    agent.assert_bounded()
    assert_normal_request_answered(agent)


def test_eof_in_the_middle_of_the_environment(agent: Agent) -> None:
    cuts = [b"agi_network: yes\nagi_network_scr",
            b"agi_network: yes\nagi_network_script: route\nagi_arg_1: 1001\n",
            b"agi_network_script: route\r\n" * 3, b"", b"\n" * 0 + b"agi_arg_1: 10"]
    received = _many(100, lambda i: send_then_wait_for_close(agent.port, cuts[i % len(cuts)]))
    assert set(received) == {b""}  # nothing was routed for a half-told request
    agent.assert_bounded()
    assert_normal_request_answered(agent)


def test_one_megabyte_lines(agent: Agent) -> None:
    line = b"agi_network_script: route" + b"x" * (1 << 20)
    payloads = [line, line + b"\n\n", b"agi_network: yes\n" + line + b"\n\n",
                b"agi_network: yes\n\n" + b"2" * (1 << 20)]  # a 1 MB "reply" to a VERBOSE
    received = _many(24, lambda i: send_then_wait_for_close(agent.port, payloads[i % 4]))
    assert all(not data or data.startswith(b"VERBOSE") for data in received)
    agent.assert_bounded()
    assert_normal_request_answered(agent)


def test_a_thousand_idle_connections(agent: Agent) -> None:
    """Held without a thread each, never starving a real call, and each closed by the
    server once its environment is overdue (a total deadline, not per read)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE_CONNECTIONS + 512), hard))
    sockets: list[socket.socket] = []
    selector = selectors.DefaultSelector()
    try:
        opened = time.monotonic()
        for _ in range(IDLE_CONNECTIONS):
            sock = connect(agent.port, timeout=5)
            sock.setblocking(False)
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_READ)
        time.sleep(0.3)  # the server takes in the burst (~0.1 ms of work per connection)
        assert_normal_request_answered(agent)  # while all 1,000 are held
        agent.assert_bounded()
        closed: set[socket.socket] = set()
        deadline = time.monotonic() + ENV_TIMEOUT_S + 3
        while len(closed) < IDLE_CONNECTIONS and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                try:
                    data = key.fileobj.recv(1)  # type: ignore[union-attr]
                except ConnectionResetError:
                    data = b""
                assert data == b"", "the server sent something to an idle connection"
                closed.add(key.fileobj)  # type: ignore[arg-type]
                selector.unregister(key.fileobj)
        assert len(closed) == IDLE_CONNECTIONS
        assert time.monotonic() - opened > ENV_TIMEOUT_S * 0.9
    finally:
        selector.close()
        for sock in sockets:
            sock.close()
    assert_normal_request_answered(agent)
    agent.assert_bounded()


def test_everything_at_once(agent: Agent) -> None:
    """Idle connections, garbage and huge lines together, then a normal request."""
    jobs: list[Callable[[], object]] = []
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            idle.append(connect(agent.port, timeout=5))
        jobs += [lambda: send_then_wait_for_close(agent.port, os.urandom(200_000))] * 10
        jobs += [lambda: send_then_wait_for_close(agent.port, b"agi_arg_1: 1")] * 10
        jobs += [lambda: send_then_wait_for_close(agent.port, b"x" * (1 << 20))] * 10
        with ThreadPoolExecutor(max_workers=16) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result(timeout=60)
        agent.assert_bounded()
    finally:
        for sock in idle:
            sock.close()
    assert_normal_request_answered(agent)
    agent.assert_bounded()


def test_a_redis_error_reply_still_ends_the_session_at_once(agent: Agent) -> None:
    """`callroute:ext:1002` holds a string: HGETALL answers WRONGTYPE. The call falls back,
    and the server closes the session at once, without waiting for Python's GC."""
    for _ in range(5):
        found, elapsed = route(agent.port, ext="1002")
        assert found[v.STATUS] == v.STATUS_FALLBACK
        assert found[v.REASON] == "store: Redis error WRONGTYPE"
        assert elapsed < ANSWER_WITHIN_S
    assert_normal_request_answered(agent)


def test_the_log_has_no_traceback(agent: Agent) -> None:
    text = agent.log.read_text()
    assert "Traceback" not in text and "FastAGI session failed" not in text
    print(f"\nfastagi under hostile sessions: RSS idle {agent.idle_rss_kib} KiB, peak "
          f"{agent.peak_rss_kib} KiB (+{agent.peak_rss_kib - agent.idle_rss_kib} KiB); "
          f"threads peak {agent.peak_threads}; {text.count('refused FastAGI connection')} "
          "connections refused")

"""callroute-fastagi's Prometheus metrics: a real server process and a real redis-server,
known decisions and faults placed over real TCP, then /metrics scraped over HTTP must
show exactly those counts, and promtool must accept the exposition."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from agi import variables as v
from tests.asterisk_parser import variables
from tests.fake_asterisk import agi_session, console_script
from tests.harness.bench_fastagi import agi_request
from tests.harness.metrics import promtool, samples, scrape, value
from tests.harness.procs import free_port, stop_popen, wait_until
from tests.harness.redis_server import RedisServer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[1]
DESK = '["PJSIP/{ext}"]'
EXTENSIONS = {
    "1001": {"forward_enabled": "1", "forward_target": "+33612345678"},  # OK FORWARD
    "1002": {},  # OK RING
    "1003": {"forward_enabled": "yes"},  # FALLBACK RING, corrupt_field
    "1004": {"forward_enabled": "1", "forward_target": "+33899123456"},  # FALLBACK, invalid
}


class FastAgi:
    def __init__(self, proc: subprocess.Popen, port: int, metrics_port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"


def _answers(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    for ext, fields in EXTENSIONS.items():
        client.hset(f"callroute:ext:{ext}", mapping={"devices": DESK.format(ext=ext), **fields})
    client.close()
    yield server
    server.stop()


@pytest.fixture
def start_fastagi(own_redis: RedisServer, tmp_path: Path,
                  config_env: Callable[..., dict[str, str]]) -> Iterator[Callable[..., FastAgi]]:
    """callroute-fastagi --metrics on the test's Redis, with these extra options."""
    started: list[subprocess.Popen] = []

    def start(*extra: str) -> FastAgi:
        port, metrics_port = free_port(), free_port()
        log = tmp_path / f"fastagi{len(started)}.log"
        env = {"PATH": "/usr/bin:/bin",
               **config_env(redis_url=own_redis.url, timeout_ms="1000")}
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(console_script("callroute-fastagi")), "--listen", f"127.0.0.1:{port}",
                 "--metrics", f"127.0.0.1:{metrics_port}", "--env-timeout", "0.5",
                 "--loop", "asyncio", *extra], env=env, stdout=out, stderr=out,
                start_new_session=True)
        started.append(proc)
        server = FastAgi(proc, port, metrics_port, log)
        wait_until(lambda: proc.poll() is not None or _answers(server.metrics_url), 15,
                   "callroute-fastagi --metrics")
        assert proc.poll() is None, log.read_text()[-2000:]
        return server

    try:
        yield start
    finally:
        for proc in started:
            stop_popen(proc)


@pytest.fixture
def fastagi(start_fastagi: Callable[..., FastAgi]) -> FastAgi:
    return start_fastagi()


def route(server: FastAgi, ext: str) -> tuple[str, str]:
    found = variables(agi_session(server.port, args=(ext,)))
    return found[v.STATUS], found[v.MODE]


def test_scrape_counts_exactly_the_calls_and_faults_placed(fastagi: FastAgi,
                                                           own_redis: RedisServer) -> None:
    # Decisions: 2 OK FORWARD, 1 OK RING, 1 OK RING (unknown extension), 2 FALLBACK
    # settings (corrupt, invalid), 1 INVALID.
    assert [route(fastagi, ext) for ext in ("1001", "1001", "1002", "1999", "1003", "1004",
                                            "1&x")] == [
        ("OK", "FORWARD"), ("OK", "FORWARD"), ("OK", "RING"), ("OK", "RING"),
        ("FALLBACK", "RING"), ("FALLBACK", "RING"), ("INVALID", "VOICEMAIL")]
    # Redis stopped (SIGSTOP): 2 calls time out. The first on its pooled connection, then
    # with no time left to reconnect (2 timeouts, 1 reconnect); the second on a new one.
    os.kill(own_redis.pid, signal.SIGSTOP)
    try:
        assert [route(fastagi, "1002") for _ in range(2)] == [("FALLBACK", "RING")] * 2
    finally:
        os.kill(own_redis.pid, signal.SIGCONT)
    assert route(fastagi, "1002") == ("OK", "RING")
    # Redis gone: the pooled connection fails, and so do both connection attempts.
    own_redis.stop()
    assert [route(fastagi, "1001") for _ in range(2)] == [("FALLBACK", "RING")] * 2
    # Sessions ended early: one environment never sent, one over the size limit.
    with socket.create_connection(("127.0.0.1", fastagi.port)), \
            socket.create_connection(("127.0.0.1", fastagi.port)) as huge:
        try:
            huge.sendall(b"agi_network: " + b"x" * 70_000)
        except OSError:
            pass  # the server may close it before the last byte: over the limit already
        time.sleep(1.0)  # past --env-timeout 0.5
        with socket.create_connection(("127.0.0.1", fastagi.port)):
            time.sleep(0.2)
            text = scrape(fastagi.metrics_url)  # one connection open: that one

    found = samples(text)

    def count(name: str, **labels: str) -> float:
        return value(found, name, **labels)

    decisions = {(status, mode): count("callroute_decisions_total", status=status, mode=mode)
                 for status in ("OK", "FALLBACK", "INVALID")
                 for mode in ("FORWARD", "RING", "VOICEMAIL")}
    assert {key: n for key, n in decisions.items() if n} == {
        ("OK", "FORWARD"): 2, ("OK", "RING"): 3, ("FALLBACK", "RING"): 6,
        ("INVALID", "VOICEMAIL"): 1}
    assert count("callroute_decision_seconds_count") == 12
    assert count("callroute_decision_seconds_bucket", le="+Inf") == 12
    # The two timed-out reads waited out the whole 1 s deadline; nothing else did.
    assert count("callroute_decision_seconds_bucket", le="1.0") == 10
    assert {reason: count("callroute_fallbacks_total", reason=reason) for reason in (
        "store_down", "store_timeout", "corrupt_field", "invalid_setting", "other")} == {
        "store_down": 2, "store_timeout": 2, "corrupt_field": 1, "invalid_setting": 1,
        "other": 0}
    assert {kind: count("callroute_redis_errors_total", kind=kind) for kind in (
        "timeout", "connection", "reply")} == {"timeout": 3, "connection": 3, "reply": 0}
    assert count("callroute_redis_reconnects_total") == 2
    assert count("callroute_fastagi_shed_total", cause="env_timeout") == 1
    assert count("callroute_fastagi_shed_total", cause="bad_request") == 1
    assert count("callroute_fastagi_refused_total", cause="allowlist") == 0
    assert count("callroute_fastagi_connections_open") == 1
    assert count("callroute_build_info", version="0.1.0") == 1
    check = promtool("check", "metrics", stdin=text)
    assert (check.returncode, check.stdout + check.stderr) == (0, "")


def _connect(server: FastAgi, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                    source_address=(source, 0))


def _send_request_and_read_the_first_command(server: FastAgi) -> socket.socket:
    """A call whose environment is complete (so it is busy), left unanswered."""
    sock = _connect(server)
    sock.sendall(agi_request(("127.0.0.1", server.port), "route", "1002"))
    assert sock.recv(65536).startswith(b"EXEC MSet")
    return sock


def test_refusals_and_sheds_are_counted_by_cause(start_fastagi: Callable[..., FastAgi]) -> None:
    server = start_fastagi("--max-connections", "2", "--session-timeout", "1.5",
                           "--allow", "127.0.0.3")
    with _connect(server, "127.0.0.2") as stranger:  # not in --allow: closed at once
        assert stranger.recv(1) == b""
    # Two calls in flight fill the cap: a third connection is refused, nothing is shed.
    stuck = [_send_request_and_read_the_first_command(server) for _ in range(2)]
    with _connect(server) as third:
        assert third.recv(1) == b""
    # ... until both pass their session deadline (the server ended its side with the
    # command; it waits for the answer until then).
    wait_until(lambda: 'callroute_fastagi_shed_total{cause="session_timeout"} 2.0'
               in scrape(server.metrics_url), 5, "the unanswered calls dropped")
    for sock in stuck:
        assert sock.recv(65536) == b""
        sock.close()
    # Idle connections at the cap: a third sheds the oldest; the last two time out.
    idle = [_connect(server) for _ in range(3)]
    assert idle[0].recv(1) == b""
    for sock in idle[1:]:
        assert sock.recv(1) == b""
        sock.close()
    idle[0].close()
    # A caller that hangs up once its variables are sent.
    _send_request_and_read_the_first_command(server).close()
    wait_until(lambda: 'callroute_fastagi_shed_total{cause="hangup"} 1.0'
               in scrape(server.metrics_url), 5, "the hang-up counted")
    found = samples(scrape(server.metrics_url))
    assert {cause: value(found, "callroute_fastagi_refused_total", cause=cause)
            for cause in ("allowlist", "cap", "draining")} == {
        "allowlist": 1, "cap": 1, "draining": 0}
    assert {cause: value(found, "callroute_fastagi_shed_total", cause=cause)
            for cause in ("idle_at_cap", "env_timeout", "session_timeout", "hangup",
                          "bad_request", "error")} == {
        "idle_at_cap": 1, "env_timeout": 2, "session_timeout": 2, "hangup": 1,
        "bad_request": 0, "error": 0}


def test_feature_codes_are_counted_by_result(fastagi: FastAgi) -> None:
    for action in ("off", "on", "bogus", "toggle"):
        agi_session(fastagi.port, script="feature", args=(action, "1001"))
    # The exposition is at most RENDER_INTERVAL old.
    wait_until(lambda: "callroute_feature_codes_total{result=\"OFF\"} 1.0"
               in scrape(fastagi.metrics_url), 5, "the feature codes counted")
    found = samples(scrape(fastagi.metrics_url))
    assert {result: value(found, "callroute_feature_codes_total", result=result)
            for result in ("ON", "OFF", "REFUSED", "ERROR")} == {
        "ON": 1, "OFF": 1, "REFUSED": 2, "ERROR": 0}


def _fastagi_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(console_script("callroute-fastagi")), *args], env=env,
                          capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize(("address", "error"), [
    ("192.0.2.1:9473", "--metrics '192.0.2.1:9473' is beyond loopback: add --metrics-public "
                       "to serve the metrics there"),
    ("localhost:9473", "--metrics 'localhost:9473': the host must be an IP address"),
    ("127.0.0.1:99999", "--metrics '127.0.0.1:99999' must be HOST:PORT, e.g. 127.0.0.1:9473"),
], ids=["beyond-loopback", "name", "port"])
def test_a_bad_metrics_address_is_one_line_and_exit_2(
        address: str, error: str, config_env: Callable[..., dict[str, str]]) -> None:
    env = {"PATH": "/usr/bin:/bin", **config_env()}
    run = _fastagi_run("--listen", f"127.0.0.1:{free_port()}", "--metrics", address, env=env)
    assert (run.returncode, run.stderr.splitlines()) == (2, [
        f"callroute-fastagi: error: {error}"])


def test_without_prometheus_client_metrics_is_one_line_and_exit_2(
        config_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    """A `prometheus_client` that can't be imported stands for the package missing."""
    (tmp_path / "prometheus_client.py").write_text("raise ImportError('missing')\n")
    env = {"PATH": "/usr/bin:/bin", **config_env(), "PYTHONPATH": str(tmp_path)}
    run = _fastagi_run("--listen", f"127.0.0.1:{free_port()}", "--metrics", env=env)
    assert (run.returncode, run.stderr.splitlines()) == (2, [
        "callroute-fastagi: error: metrics need prometheus-client "
        "(pip install 'callroute[metrics]')"])


def test_the_listener_is_one_thread_and_only_with_metrics(
        own_redis: RedisServer, config_env: Callable[..., dict[str, str]]) -> None:
    """With --metrics: one more thread (the listener), within test_fastagi_limits' bound
    of 8; without it, prometheus_client is never imported."""
    code = ("import sys, threading, argparse\n"
            "from agi import fastagi, metrics\nfrom agi.config import load\n"
            "args = fastagi.build_parser().parse_args(sys.argv[1:])\n"
            "recorder = metrics.from_args(args, 'fastagi', 'test')\n"
            "server = fastagi.FastAgiServer(load(), '127.0.0.1', 0, recorder=recorder)\n"
            "metrics.serve_fastagi(recorder, server, args)\n"
            "t = threading.Thread(target=server.serve, daemon=True); t.start()\n"
            "server.wait_ready(5)\n"
            "import os; print(len(os.listdir('/proc/self/task')),"
            " 'prometheus_client' in sys.modules)\n"
            "server.stop(); t.join(10)\n")
    env = {**os.environ, **config_env(redis_url=own_redis.url)}
    counts = {}
    for args in ((), ("--metrics", f"127.0.0.1:{free_port()}")):
        run = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr[-2000:]
        threads, imported = run.stdout.split()
        counts[bool(args)] = (int(threads), imported)
    assert counts[False] == (counts[False][0], "False")
    assert counts[True] == (counts[False][0] + 1, "True")
    assert counts[True][0] <= 8


def test_decision_series_stay_bounded_and_buckets_are_inclusive(fr_config) -> None:
    """A status or mode outside the fixed sets counts as other; a bucket's bound
    includes itself (le), as Prometheus reads it."""
    from agi import metrics, routing

    recorder = metrics.Prometheus("fastagi")
    odd = routing.Route(status="MAYBE", mode="+33612345678", fault="strange")
    recorder.decision(odd, 0.001)
    recorder.decision(routing.fallback("1001", fr_config, "store: x", timeout=True), 2.0)
    found = samples(recorder.render().decode())
    assert value(found, "callroute_decisions_total", status="other", mode="other") == 1
    assert value(found, "callroute_decisions_total", status="FALLBACK", mode="RING") == 1
    assert not [labels for name, labels in found if name == "callroute_decisions_total"
                and ("mode", "+33612345678") in labels]
    assert value(found, "callroute_fallbacks_total", reason="other") == 1
    assert value(found, "callroute_fallbacks_total", reason="store_timeout") == 1
    assert [value(found, "callroute_decision_seconds_bucket", le=le)
            for le in ("0.0005", "0.001", "1.0", "+Inf")] == [0, 1, 1, 2]
    assert value(found, "callroute_decision_seconds_sum") == pytest.approx(2.001)


def test_a_scrape_flood_does_not_hold_up_calls(fastagi: FastAgi) -> None:
    """Scrapers hammering the listener (one request at a time, one rendering a second)
    leave the calls on the event loop as fast as without them."""
    import threading

    def quick_calls() -> float:
        started = time.monotonic()
        for _ in range(20):
            assert route(fastagi, "1002") == ("OK", "RING")
        return time.monotonic() - started

    route(fastagi, "1002")  # the pool's connection opened
    floor = quick_calls()
    stop = threading.Event()
    scrapes = [0]

    def hammer() -> None:
        while not stop.is_set():
            try:
                scrape(fastagi.metrics_url)
                scrapes[0] += 1
            except OSError:
                pass

    scrapers = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
    for thread in scrapers:
        thread.start()
    try:
        time.sleep(0.2)
        flooded = quick_calls()
    finally:
        stop.set()
        for thread in scrapers:
            thread.join(10)
    assert scrapes[0] > 20
    # Generous: this machine is shared; a starved loop would take seconds per call.
    assert flooded < max(3 * floor, 1.0), (floor, flooded)

"""Redis Sentinel: a real master, a replica and three sentinels, started by the test.

Routing reads through Sentinel on both call paths (a connection per call, as process
AGI does, and a real FastAGI server with its event-loop pool); the CLI writes to
whichever node is master.
The failover test kills the master while calls are being routed and measures how long
routing ran on FALLBACK.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agi import cli
from agi import variables as v
from agi.config import load
from agi.service import compute_route
from tests.asterisk_parser import variables
from tests.fake_asterisk import agi_session
from tests.harness.procs import wait_until
from tests.harness.redis_server import SentinelCluster, sentinel_cluster

pytestmark = pytest.mark.redis

PASSWORD = "s3nt1nel-test-secret"
SERVICE = "callroute"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    with sentinel_cluster(tmp_path, PASSWORD, SERVICE) as found:
        yield found


def run_cli(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> int:
    monkeypatch.setenv("CALLROUTE_REDIS_URL", url)
    monkeypatch.setenv("CALLROUTE_COUNTRY", "FR")
    return cli.main(list(args))


def test_cli_writes_and_calls_read_through_sentinel(cluster, monkeypatch, config_env, serve):
    assert run_cli(monkeypatch, cluster.url, "ext", "add", "1001", "--did",
                   "+33100001001") == 0
    assert run_cli(monkeypatch, cluster.url, "forward", "on", "1001", "0612345678") == 0
    assert cluster.node(cluster.master).hget("callroute:ext:1001", "forward_target") == \
        "+33612345678"
    config = load(config_env(redis_url=cluster.url))
    route = compute_route(config, "1001")
    assert (route.status, route.mode, route.target) == (
        v.STATUS_OK, v.MODE_FORWARD, "+33612345678"), route
    found = variables(agi_session(serve(cluster.url).address[1]))  # the async pool
    assert (found[v.STATUS], found[v.MODE], found[v.TARGET]) == (
        v.STATUS_OK, v.MODE_FORWARD, "+33612345678"), found


def test_failover_keeps_routing_and_cli_writes_reach_the_new_master(
        cluster, monkeypatch, config_env, capsys, serve):
    assert run_cli(monkeypatch, cluster.url, "ext", "add", "1001") == 0
    assert run_cli(monkeypatch, cluster.url, "forward", "on", "1001", "0612345678") == 0
    wait_until(lambda: cluster.node(cluster.replica).hget("callroute:ext:1001",
                                                          "forward_enabled") == "1",
               10, "the replica to catch up")
    config = load(config_env(redis_url=cluster.url, timeout_ms="300"))
    port = serve(cluster.url).address[1]
    results: list[tuple[float, str, str, str, str]] = []  # (time, path, status, mode, why)
    stop = threading.Event()

    def route_calls() -> None:
        while not stop.is_set():
            route = compute_route(config, "1001")
            results.append((time.monotonic(), "process", route.status, route.mode,
                            route.reason))
            found = variables(agi_session(port))  # FastAGI: the server's async pool
            results.append((time.monotonic(), "fastagi", found.get(v.STATUS, ""),
                            found.get(v.MODE, ""), found.get(v.REASON, "")))
            time.sleep(0.02)

    caller = threading.Thread(target=route_calls, daemon=True)
    caller.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        assert cluster.master.proc is not None
        cluster.master.proc.kill()  # a crash, not a clean shutdown
        cluster.master.proc.wait(5)
        cluster.master.proc = None
        wait_until(lambda: cluster.failed_over_to(cluster.replica), 30,
                   "the sentinels to promote the replica")
        failed_over_at = time.monotonic()
        assert run_cli(monkeypatch, cluster.url, "forward", "off", "1001") == 0
        time.sleep(1.0)
    finally:
        stop.set()
        caller.join(10)

    assert cluster.node(cluster.replica).hget("callroute:ext:1001", "forward_enabled") == "0"
    fallback = [t for t, _, status, _, _ in results if status == v.STATUS_FALLBACK]
    window = (fallback[-1] - fallback[0]) if fallback else 0.0
    with capsys.disabled():
        print(f"\nsentinel failover: master killed, promotion seen after "
              f"{failed_over_at - killed_at:.1f} s; {len(results)} routing decisions, "
              f"{len(fallback)} on FALLBACK, FALLBACK window {window * 1000:.0f} ms; "
              f"reasons: {sorted({r[4] for r in results if r[2] == v.STATUS_FALLBACK})}")
    # Every decision was either the stored settings or the FALLBACK ring of the desk
    # phone; after the write the new master's settings are what calls see.
    assert {status for _, _, status, _, _ in results} <= {v.STATUS_OK, v.STATUS_FALLBACK}
    last = [r for r in results if r[0] > failed_over_at + 0.5]
    assert last and all(status == v.STATUS_OK and mode == v.MODE_RING
                        for _, _, status, mode, _ in last[-10:]), last[-10:]
    assert window < 2.0

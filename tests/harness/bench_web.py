"""`scripts/bench-web`: callroute-web's latency and throughput, in one run, on this machine.

A private redis-server and a real `callroute-web` process (access log off, as a busy
install would run it); clients speak plain HTTP/1.1 keep-alive through http.client,
which costs the client far less CPU than a full-featured HTTP library, so more of the
two cores is left to the server under test. Targets (issue #11): GET extension p50
<= 5 ms, forwarding PATCH p50 <= 10 ms, >= 500 requests/s with 16 concurrent clients;
login (one argon2id verification) is reported on its own.

Exit status 0 whenever it ran (it reports, it doesn't judge); 1 if a request failed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from agi import admin
from agi.accounts import Accounts
from agi.admin import Actor, ExtensionChanges
from agi.config import load
from agi.store import AdminStore
from tests.harness.redis_server import RedisServer
from tests.harness.web import WebServer

PASSWORD = "bench-password-123"
TARGETS = {"get_p50_ms": 5.0, "patch_p50_ms": 10.0, "concurrent_rps": 500.0}


class Client:
    """One keep-alive connection; `call` returns (status, body) and raises on a 5xx."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = headers

    def call(self, method: str, path: str, body: dict | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        extra = {"Content-Type": "application/json"} if data else {}
        self.conn.request(method, path, body=data, headers={**self.headers, **extra,
                                                            **(headers or {})})
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status >= 500:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:200]!r}")
        return resp.status, payload


def server_cpu_ms(pid: int) -> float:
    """CPU time the server process has used: per request, it barely moves with the load
    other users put on a shared machine, unlike wall-clock latency."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed(func, count: int) -> list[float]:
    times = []
    for n in range(count):
        start = time.perf_counter()
        func(n)
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2), "n": len(ordered)}


def concurrent(port: int, headers: dict[str, str], clients: int, seconds: float) -> float:
    """Requests/s of GET extension with `clients` keep-alive connections in parallel."""
    counts = [0] * clients
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(index: int) -> None:
        client = Client(port, headers)
        try:
            while not stop.is_set():
                client.call("GET", "/api/v1/extensions/1001")
                counts[index] += 1
        except BaseException as exc:  # reported below: a failed request fails the bench
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # warm up
    before, start = sum(counts), time.perf_counter()
    time.sleep(seconds)
    done, elapsed = sum(counts) - before, time.perf_counter() - start
    stop.set()
    for thread in threads:
        thread.join(30)
    if errors:
        raise RuntimeError(f"concurrent client failed: {errors[0]}")
    return done / elapsed


def run(requests: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp, \
            RedisServer(Path(tmp) / "redis") as redis_server:
        env = {"PATH": "/usr/bin:/bin", "CALLROUTE_CONFIG": "/dev/null",
               "CALLROUTE_REDIS_URL": redis_server.url}
        config = load(env)
        store = AdminStore(config)
        accounts = Accounts(store)
        accounts.add_user("ada", "admin", [], PASSWORD)
        token = accounts.issue("ada", timedelta(hours=1))[0]
        admin.put_extension(store, config, "1001", ExtensionChanges(), Actor("cli:bench"))
        with WebServer(env, Path(tmp) / "web.log", args=("--no-access-log",)) as web:
            bearer = {"Authorization": f"Bearer {token}"}
            client = Client(web.port, bearer)
            timed(lambda n: client.call("GET", "/api/v1/extensions/1001"), 50)  # warm up
            cpu = server_cpu_ms(web.proc.pid)
            get = timed(lambda n: client.call("GET", "/api/v1/extensions/1001"), requests)
            get_cpu, cpu = (server_cpu_ms(web.proc.pid) - cpu) / requests, \
                server_cpu_ms(web.proc.pid)
            patch = timed(lambda n: client.call(
                "PATCH", "/api/v1/extensions/1001/forwarding",
                {"enabled": n % 2 == 0, "target": "06 12 34 56 78"}), requests)
            patch_cpu = (server_cpu_ms(web.proc.pid) - cpu) / requests
            rps = concurrent(web.port, bearer, 16, seconds)
            basic = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
            login_client = Client(web.port, {"Authorization": f"Basic {basic}"})
            login = timed(lambda n: login_client.call("POST", "/api/v1/tokens"), 10)
        store.close()
    return {"get_extension": {**summary(get), "server_cpu_ms": round(get_cpu, 2)},
            "patch_forwarding": {**summary(patch), "server_cpu_ms": round(patch_cpu, 2)},
            "concurrent_16_rps": round(rps), "login": summary(login),
            "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-web", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = run(args.requests, args.seconds)
    except RuntimeError as exc:
        print(f"bench-web: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    met = {"get_p50_ms": report["get_extension"]["p50_ms"] <= TARGETS["get_p50_ms"],
           "patch_p50_ms": report["patch_forwarding"]["p50_ms"] <= TARGETS["patch_p50_ms"],
           "concurrent_rps": report["concurrent_16_rps"] >= TARGETS["concurrent_rps"]}
    rows = [("GET /api/v1/extensions/1001", report["get_extension"], "get_p50_ms"),
            ("PATCH .../forwarding", report["patch_forwarding"], "patch_p50_ms")]
    for name, figures, target in rows:
        print(f"{name:32} p50 {figures['p50_ms']:6.2f} ms  p95 {figures['p95_ms']:6.2f} ms  "
              f"server CPU {figures['server_cpu_ms']:5.2f} ms/req  "
              f"(target p50 <= {TARGETS[target]:.0f} ms: {'met' if met[target] else 'MISSED'})")
    print(f"{'16 concurrent clients (GET)':32} {report['concurrent_16_rps']:6d} req/s         "
          f"(target >= {TARGETS['concurrent_rps']:.0f}: "
          f"{'met' if met['concurrent_rps'] else 'MISSED'})")
    print(f"{'login (argon2id), POST /tokens':32} p50 {report['login']['p50_ms']:6.2f} ms")
    print(f"machine: {report['cpus']} CPUs, load average {report['load_1min']} at the end "
          "(shared machine: figures move with other users' load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

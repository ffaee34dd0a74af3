"""`scripts/bench-web`: callroute-web's latency and throughput, in one run, on this machine.

A private redis-server and a real `callroute-web` process (access log off, as a busy
install would run it). Latency: one plain HTTP/1.1 keep-alive client (http.client).
Throughput: ApacheBench (`ab`, apache2-utils) with 16 keep-alive connections. Targets
(issue #11): GET extension p50 <= 5 ms, forwarding PATCH p50 <= 10 ms, >= 500
requests/s with 16 concurrent clients; login (one argon2id verification) on its own.

Exit status 0 whenever it ran (it reports, it doesn't judge); 1 if a request failed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
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


def concurrent(url: str, token: str, clients: int, seconds: float) -> float:
    """Requests/s of GET extension with `clients` keep-alive connections in parallel,
    driven by ApacheBench: a C client leaves the two cores to the server under test
    (16 Python client threads would take one of them). Every answer must be a 200."""
    proc = subprocess.run(
        ["ab", "-q", "-k", "-c", str(clients), "-t", str(seconds), "-n", "1000000",
         "-H", f"Authorization: Bearer {token}", f"{url}/api/v1/extensions/1001"],
        capture_output=True, text=True, timeout=seconds + 60, check=False)
    figures = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    if proc.returncode != 0 or "Non-2xx responses" in figures or \
            int(figures.get("Failed requests", "1").split()[0]) != 0:
        raise RuntimeError(f"ab failed or got errors: {proc.stdout[-800:]}{proc.stderr[-400:]}")
    return float(figures["Requests per second"].split()[0])


def run(requests: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp, \
            RedisServer(Path(tmp) / "redis") as redis_server:
        env = {"PATH": "/usr/bin:/bin", "CALLROUTE_CONFIG": "/dev/null",
               "CALLROUTE_REDIS_URL": redis_server.url}
        config = load(env)
        store = AdminStore(config)
        accounts = Accounts(store)
        accounts.add_user("ada", "admin", [], PASSWORD, actor=Actor("cli:bench"))
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
            rps = concurrent(web.url, token, 16, seconds)
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

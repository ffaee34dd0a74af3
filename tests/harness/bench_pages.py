"""Server-side render time of the Office Manager pages (issue 12's benchmark).

An in-process app (agi.web.app.create_app) on a throw-away real redis-server holding
N extensions, each with a desk phone, an external phone and half of them forwarding.
A logged-in admin GETs /extensions (all N rows) and /extensions/{ext}; the time is the
whole request through the ASGI stack (session lookup, admin-layer reads, Jinja render),
without a socket. Targets: /extensions p50 <= 20 ms, /extensions/{ext} p50 <= 10 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGETS_MS = {"/extensions": 20.0, "/extensions/{ext}": 10.0}


def _seed(config, extensions: int) -> None:
    from agi import admin
    from agi.accounts import Accounts
    from agi.admin import Actor, DeviceChanges, ExtensionChanges, ForwardingChanges
    from agi.store import AdminStore

    store, actor = AdminStore(config), Actor("cli:bench")
    admin.set_company(store, config, caller_id="+33140000000", name="Bench", actor=actor)
    for n in range(extensions):
        ext = str(2000 + n)
        admin.put_extension(store, config, ext, ExtensionChanges(), actor)
        admin.put_device(store, config, ext, f"+3378{n:07d}", DeviceChanges(), actor)
        if n % 2:
            admin.set_forwarding(store, config, ext, ForwardingChanges(
                enabled=True, target=f"+3361{n:07d}"), actor)
    Accounts(store).add_user("bench", "admin", [], "bench-password-1234",
                             actor=Actor("cli:bench"))
    store.close()


def _measure(client, path: str, rounds: int) -> list[float]:
    for _ in range(5):  # warm-up: template compilation, first connections
        assert client.get(path).status_code == 200
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return times


def run(extensions: int, rounds: int) -> dict:
    from starlette.testclient import TestClient

    from agi.config import load
    from agi.web.app import create_app
    from tests.harness.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            config = load({"CALLROUTE_CONFIG": "/dev/null", "CALLROUTE_COUNTRY": "FR",
                           "CALLROUTE_REDIS_URL": server.url})
            _seed(config, extensions)
            base = "http://127.0.0.1"
            with TestClient(create_app(config), base_url=base) as client:
                login = client.post("/login", data={"username": "bench",
                                                    "password": "bench-password-1234"},
                                    headers={"Origin": base}, follow_redirects=False)
                assert login.status_code == 303, login.text
                results = {}
                for label, path in (("/extensions", "/extensions"),
                                    ("/extensions/{ext}", f"/extensions/{2000 + 1}")):
                    times = sorted(_measure(client, path, rounds))
                    results[label] = {
                        "p50_ms": round(statistics.median(times), 2),
                        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
                        "target_ms": TARGETS_MS[label],
                    }
                    results[label]["ok"] = results[label]["p50_ms"] <= TARGETS_MS[label]
        finally:
            server.stop()
    return {"extensions": extensions, "rounds": rounds, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extensions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.extensions, args.rounds)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"Office Manager pages, {report['extensions']} extensions, "
              f"{report['rounds']} requests each (server side, in process):")
        for label, row in report["results"].items():
            verdict = "ok" if row["ok"] else "OVER TARGET"
            print(f"  GET {label:<18} p50 {row['p50_ms']:6.2f} ms  p95 {row['p95_ms']:6.2f} ms"
                  f"  (target p50 <= {row['target_ms']:.0f} ms: {verdict})")
    return 0 if all(row["ok"] for row in report["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

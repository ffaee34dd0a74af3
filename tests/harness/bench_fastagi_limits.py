"""`scripts/bench` section "fastagi": the limits of callroute-fastagi.

- AGI round trips per decision (commands the agent sends for one routed call);
- sequential p50 against one HGETALL, p99 and decisions/s with 8 and 64 clients;
- starvation: real requests beside 5,000 idle, 50 slow-drip and 10 garbage
  connections (an attacker process keeps them up), with the server's threads and
  RSS read from /proc meanwhile, and the first requests after the attack stops;
- SIGTERM with a stuck client: seconds until the process has exited.

The server is the bench venv's `callroute-fastagi` (a real process, as deployed). For
the starvation run, --env-timeout is raised to 30 s so that idle connections stay
(the worst case for memory: with the default 1 s each would be closed within a
second) and --max-connections to 10,000, so all 5,060 are held at once. (With the
default cap of 4,096, a persistent attacker reconnecting every shed connection makes
the server shed in a loop; tests/test_fastagi_limits.py covers shedding.)
"""

from __future__ import annotations

import multiprocessing
import os
import random
import resource
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.asterisk_parser import parse_args
from tests.harness import bare_agi
from tests.harness import bench_fastagi as fa
from tests.harness.bench_common import EXT, BenchError, Context, SectionReport, Stats, Target, log
from tests.harness.bench_decision import hgetall_floor
from tests.harness.bench_fastagi import agi_request, fastagi_session, route_request
from tests.harness.procs import free_port, stop_popen, wait_until

IDLE, SLOW, GARBAGE = 5000, 50, 10
DRAIN_TIMEOUT_S = 2.0


def _raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))


def _start(ctx: Context, *extra: str) -> tuple[subprocess.Popen, tuple[str, int], Path]:
    address = ("127.0.0.1", free_port())
    log_path = ctx.workdir / f"fastagi-{address[1]}.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen([str(ctx.script("callroute-fastagi")), "--listen",
                                 f"{address[0]}:{address[1]}", *extra],
                                env=ctx.agent_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=sink)
    health = agi_request(address, "health", EXT)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"callroute-fastagi exited: {log_path.read_text()[-500:]}")
        try:
            return bool(fastagi_session(address, health))
        except OSError:
            return False

    wait_until(healthy, 15.0, "callroute-fastagi health")
    return proc, address, log_path


def _status(pid: int) -> tuple[int, int]:
    """(VmRSS KiB, threads) of `pid`."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def round_trips(address: tuple[str, int]) -> int:
    """Commands (each one AGI round trip) of one routed call."""
    lines = fastagi_session(address, route_request(address))
    fa._check_session(lines)
    return len([parse_args(line.decode()) for line in lines])


# ---- the attacker --------------------------------------------------------------------

def _attack(address: tuple[str, int], ready: Any, stop: Any) -> None:
    """Hold IDLE idle, SLOW slow-drip and GARBAGE garbage connections until `stop`;
    reopen any the server closes (a persistent attacker)."""
    _raise_nofile(IDLE + SLOW + GARBAGE + 512)
    selector = selectors.DefaultSelector()
    drip = b"agi_network: yes\nagi_network_script: route\nagi_arg_1: 1001\n" * 100
    active: dict[str, set[socket.socket]] = {"idle": set(), "slow": set(), "garbage": set()}

    def open_one(kind: str) -> None:
        try:
            sock = socket.create_connection(address, timeout=5)
        except OSError:
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, kind)
        active[kind].add(sock)

    for kind, count in (("idle", IDLE), ("slow", SLOW), ("garbage", GARBAGE)):
        for _ in range(count):
            open_one(kind)
    ready.set()
    dripped = 0
    next_drip = time.monotonic()
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.02):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except OSError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                active[key.data].discard(key.fileobj)  # type: ignore[arg-type]
                key.fileobj.close()  # type: ignore[union-attr]
                open_one(key.data)
        for sock in list(active["garbage"]):
            try:
                sock.send(random.randbytes(4096))
            except OSError:
                pass
        if time.monotonic() >= next_drip:  # one byte per slow connection every 0.5 s
            byte = drip[dripped % len(drip):dripped % len(drip) + 1]
            dripped += 1
            for sock in list(active["slow"]):
                try:
                    sock.send(byte)
                except OSError:
                    pass
            next_drip = time.monotonic() + 0.5
    selector.close()


def starvation(ctx: Context, requests: int) -> dict[str, Any]:
    _raise_nofile(IDLE + SLOW + GARBAGE + 1024)
    proc, address, _ = _start(ctx, "--env-timeout", "30", "--max-connections",
                              str(2 * IDLE), "--log-level", "WARNING")
    mp = multiprocessing.get_context("fork")
    ready, stop = mp.Event(), mp.Event()
    attacker = mp.Process(target=_attack, args=(address, ready, stop), daemon=True)
    request = route_request(address)
    try:
        idle_rss, _ = _status(proc.pid)
        attacker.start()
        if not ready.wait(120):
            raise BenchError("the attacker could not open its connections")
        time.sleep(1.0)
        latencies, refused, peak_rss, peak_threads = [], 0, 0, 0
        for i in range(requests):
            started = time.perf_counter()
            try:
                ok = any(fa.STATUS_OK_LINE in line
                         for line in fastagi_session(address, request))
            except OSError:
                ok = False
            latencies.append(time.perf_counter() - started)
            refused += not ok
            if i % 50 == 0:
                rss, threads = _status(proc.pid)
                peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
        stop.set()
        attacker.join(30)
        released = time.perf_counter()
        after = []
        for _ in range(50):
            started = time.perf_counter()
            fastagi_session(address, request)
            after.append(time.perf_counter() - started)
        return {"idle": IDLE, "slow": SLOW, "garbage": GARBAGE,
                "latency_ms": asdict(Stats.of(latencies)), "refused": refused,
                "peak_threads": peak_threads, "peak_rss_kib": peak_rss,
                "idle_rss_kib": idle_rss,
                "after_ms": asdict(Stats.of(after)),
                "recovered_in_s": time.perf_counter() - released}
    finally:
        stop.set()
        if attacker.is_alive():
            attacker.kill()
        stop_popen(proc)


def sigterm_stuck(ctx: Context) -> float:
    """Seconds from SIGTERM to exit with one client that never answers."""
    proc, address, _ = _start(ctx, "--drain-timeout", str(DRAIN_TIMEOUT_S))
    try:
        with socket.create_connection(address, timeout=5) as stuck:
            stuck.sendall(route_request(address))
            stuck.recv(65536)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(DRAIN_TIMEOUT_S + 30)
            return time.monotonic() - started
    finally:
        stop_popen(proc)


def _bare_sequential(ctx: Context, lines: list[bytes]) -> Stats:
    """fastagi_sequential against the bare agent, answering the server's `lines`."""
    port = free_port()
    bare = bare_agi.start(port, ctx.redis_url, EXT, lines, ctx.workdir / "bare")
    try:
        return fa.fastagi_sequential(("127.0.0.1", port), ctx.plan.fastagi_runs)[0]
    finally:
        stop_popen(bare)


def fastagi_level(ctx: Context) -> SectionReport:
    plan = ctx.plan
    loadavg = os.getloadavg()
    hgetall = hgetall_floor(ctx)
    server = fa.FastAgiServer(ctx)
    try:
        server.start()
        trips = round_trips(server.address)
        log(f"fastagi: {trips} AGI round trip(s) per decision; sequential requests")
        sequential, _ = fa.fastagi_sequential(server.address, plan.fastagi_runs)
        log("fastagi: the bare agent (floor), sequential requests")
        bare = _bare_sequential(ctx, fa.routed_answer(server.address))
        loads = {}
        for clients in (8, 64):
            log(f"fastagi: {clients} client processes for {plan.load_seconds:g}s")
            loads[clients] = fa.fastagi_throughput(server, clients, plan.load_seconds)
    finally:
        server.stop()
    log(f"fastagi: starvation ({IDLE} idle, {SLOW} slow-drip, {GARBAGE} garbage)")
    attack = starvation(ctx, 200 if plan.quick else 1000)
    log("fastagi: SIGTERM with a stuck client")
    exit_s = sigterm_stuck(ctx)
    ratio = sequential.p50 / hgetall.p50
    lat = attack["latency_ms"]
    rows = [("measure", "n", "p50 ms", "p99 ms", "note"),
            ("HGETALL (redis-py)", str(hgetall.n), f"{hgetall.p50:.3f}", f"{hgetall.p99:.3f}",
             ""),
            ("bare FastAGI agent (floor)", str(bare.n), f"{bare.p50:.3f}",
             f"{bare.p99:.3f}", f"{bare.p50 / hgetall.p50:.1f}x HGETALL"),
            ("FastAGI sequential", str(sequential.n), f"{sequential.p50:.3f}",
             f"{sequential.p99:.3f}", f"{ratio:.1f}x HGETALL, "
             f"{sequential.p50 / bare.p50:.2f}x bare, {trips} round trip(s)")]
    for clients, load in loads.items():
        ms = load["latency_ms"]
        rows.append((f"FastAGI, {clients} clients", str(load["decisions"]), f"{ms['p50']:.3f}",
                     f"{ms['p99']:.3f}", f"{load['decisions_per_s']:.0f} decisions/s, CPU "
                     f"each: server {load['server_cpu_us_per_decision']:.0f} us, clients "
                     f"{load['client_cpu_us_per_decision']:.0f} us"))
    rows.append(("beside the attack", str(lat["n"]), f"{lat['p50']:.3f}", f"{lat['p99']:.3f}",
                 f"{attack['refused']} refused"))
    rows.append(("right after it", str(attack["after_ms"]["n"]),
                 f"{attack['after_ms']['p50']:.3f}", f"{attack['after_ms']['p99']:.3f}", ""))
    extra = ["bare FastAGI agent: tests/harness/bare_agi.py, one blocking thread that "
             "reads the environment and the same two Redis hashes, then sends the "
             "agent's own answer: the floor of any FastAGI agent in Python here.",
             f"server on {server.loop}; load average before the section "
             f"{' '.join(f'{x:.2f}' for x in loadavg)}",
             f"attack: {IDLE} idle + {SLOW} slow-drip + {GARBAGE} garbage connections; "
             f"server peak {attack['peak_threads']} threads, RSS "
             f"{attack['peak_rss_kib'] / 1024:.1f} MiB (idle {attack['idle_rss_kib'] / 1024:.1f}"
             f" MiB); SIGTERM with a stuck client: exited after {exit_s:.2f} s "
             f"(--drain-timeout {DRAIN_TIMEOUT_S:g})"]
    targets = [
        Target("FastAGI p50 <= 3 x HGETALL p50", ratio, 3.0, "x"),
        Target("p99 <= 3 ms with 8 clients", loads[8]["latency_ms"]["p99"], 3.0, "ms"),
        Target(">= 2000 decisions/s, 8 clients", loads[8]["decisions_per_s"], 2000.0, "/s",
               higher_is_better=True),
        Target(">= 2000 decisions/s, 64 clients", loads[64]["decisions_per_s"], 2000.0, "/s",
               higher_is_better=True),
        Target("p99 <= 20 ms beside the attack", lat["p99"], 20.0, "ms"),
        Target("none refused beside the attack", attack["refused"], 0.0, ""),
        Target("<= 8 threads under attack", attack["peak_threads"], 8.0, ""),
        Target("<= 150 MiB RSS under attack", attack["peak_rss_kib"] / 1024, 150.0, "MiB"),
        Target("SIGTERM, stuck client: exit <= drain + 1 s", exit_s, DRAIN_TIMEOUT_S + 1, "s"),
    ]
    results = {"round_trips_per_decision": trips, "hgetall_ms": asdict(hgetall),
               "sequential_ms": asdict(sequential), "ratio_p50_to_hgetall": ratio,
               "bare_sequential_ms": asdict(bare),
               "ratio_p50_bare_to_hgetall": bare.p50 / hgetall.p50,
               "ratio_p50_to_bare": sequential.p50 / bare.p50,
               "load": {str(k): val for k, val in loads.items()}, "starvation": attack,
               "sigterm_stuck_exit_s": exit_s, "pid": os.getpid(), "loop": server.loop,
               "loadavg_before": [round(x, 2) for x in loadavg]}
    return SectionReport("fastagi", "FastAGI limits", results, rows, extra, targets)

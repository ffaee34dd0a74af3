"""`scripts/bench`: how fast is a routing decision, next to the floors it can't beat.

Issue 4 asks for figures measured in ONE run on ONE machine, so each mode is reported
as a ratio to its own floor (a bare interpreter start for process AGI, one redis-py
HGETALL for FastAGI): ratios survive a change of machine, absolute times don't.

The agent under test is a NON-editable install, like /opt/callroute on a PBX: the
editable install's import finder alone costs ~12 ms per process. The bench venv
(.cache/bench-venv) is installed from the very wheels the test PBX ships
(`TestPBX._wheels()`, cached by the content of agi/, pyproject.toml and README.md), so it
is rebuilt exactly when the code changes.

Sections: the decision level (no Asterisk; a fake AGI peer drives the real protocol)
is `decision_level`; the PBX level (the real test PBX, SIPp post-dial delay) is
`pbx_level` in tests/harness/bench_pbx.py (`--no-pbx` skips it). Each is a function
returning a `SectionReport`, listed in `SECTIONS`; the table, the targets and `--json`
pick it up without other changes.

Exit status: 0 whenever the benchmark ran, targets met or not (it reports, it doesn't
judge); 1 if the benchmark itself failed, e.g. a call was not routed OK while Redis
was up, since then the figures would describe a failure path, not the call path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agi import variables as v
from tests.fake_asterisk import FakeAsterisk, parse_args, set_pairs
from tests.harness.pbx import TestPBX
from tests.harness.procs import free_port, stop_popen, wait_until
from tests.harness.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
BENCH_VENV = ROOT / ".cache" / "bench-venv"
# What the bench venv holds besides callroute: the runtime dependencies, by name.
RUNTIME_PACKAGES = ("callroute", "pyst2", "six", "redis", "phonenumbers")
EXT = "1001"
FORWARD_TO = "0612345678"
OK_REPLY = b"200 result=1\n"
# STATUS is the last pair of the decision's EXEC MSet (docs/dialplan-contract.md).
STATUS_OK_LINE = f'{v.STATUS}={v.STATUS_OK}"'.encode()
CALL_TIMEOUT_S = 10.0


class BenchError(Exception):
    """The benchmark itself failed: its figures would be meaningless."""


# ---- figures -------------------------------------------------------------------------

@dataclass
class Stats:
    """Latency summary in milliseconds. p99 is nearest-rank: with 50 samples it is the max."""

    n: int
    p50: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        if not seconds:
            raise BenchError("no samples")
        ms = sorted(s * 1000 for s in seconds)
        return cls(n=len(ms), p50=statistics.median(ms), p99=_nearest_rank(ms, 0.99),
                   mean=statistics.fmean(ms), min=ms[0], max=ms[-1])


def _nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Target:
    """One issue-4 target: the measured figure next to its limit."""

    name: str
    measured: float
    limit: float
    unit: str
    higher_is_better: bool = False

    @property
    def passed(self) -> bool:
        return self.measured >= self.limit if self.higher_is_better \
            else self.measured <= self.limit


@dataclass
class SectionReport:
    """What a section hands back: JSON-able results, printable rows, and its targets."""

    name: str
    title: str
    results: dict[str, Any]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # free text printed after the table
    targets: list[Target] = field(default_factory=list)


@dataclass
class Plan:
    """Sample sizes: `--quick` is a CI smoke (< 30 s) that keeps every code path alive."""

    quick: bool
    floor_runs: int
    agi_runs: int
    importtime_runs: int
    hgetall_runs: int
    fastagi_runs: int
    clients: int
    load_seconds: float

    @classmethod
    def make(cls, quick: bool, clients: int, seconds: float | None) -> Plan:
        if quick:
            return cls(True, 10, 20, 3, 200, 200, clients, seconds or 3.0)
        return cls(False, 50, 50, 5, 2000, 2000, clients, seconds or 10.0)


@dataclass
class Context:
    """Shared by every section: the plan, the agent's venv, a seeded private Redis."""

    plan: Plan
    venv: Path
    redis_url: str
    agent_env: dict[str, str]
    workdir: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def script(self, name: str) -> Path:
        return self.venv / "bin" / name


def log(message: str) -> None:
    """Progress goes to stderr, so `--json` output on stdout stays parseable."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---- setup ---------------------------------------------------------------------------

def ensure_bench_venv(venv: Path = BENCH_VENV) -> Path:
    """A production-like (non-editable, compiled) install of callroute and its deps.

    Installed offline from the test PBX's wheel cache, whose directory name is the hash
    of the wheel's sources: a stamp holding that name tells whether to reinstall.
    """
    wheels = TestPBX(ROOT)._wheels()
    stamp = venv / ".callroute-wheels"
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == str(wheels):
        return venv
    started = time.monotonic()
    if not python.exists():
        # The same base interpreter as .venv, so the floors compare like with like.
        _run([sys.executable, "-m", "venv", str(venv)], "create the bench venv")
    _run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links",
          str(wheels), "--force-reinstall", *RUNTIME_PACKAGES], "install into the bench venv")
    stamp.write_text(str(wheels))
    log(f"bench venv (re)installed from {wheels.name} in {time.monotonic() - started:.1f}s")
    return venv


def seed(ctx: Context) -> None:
    """docker/seed.sh (company, 1001-1003), then forwarding on 1001: the common case."""
    env = {**ctx.agent_env, "CALLROUTE": str(ctx.script("callroute"))}
    _run(["sh", str(ROOT / "docker" / "seed.sh")], "docker/seed.sh", env=env)
    _run([str(ctx.script("callroute")), "forward", "on", EXT, FORWARD_TO], "forward on",
         env=env)


def _run(args: list[str], what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    if proc.returncode != 0:
        raise BenchError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


# ---- floors --------------------------------------------------------------------------

def hgetall_floor(ctx: Context) -> Stats:
    """One HGETALL on a persistent redis-py connection: what a decision can't beat."""
    import redis

    client = redis.Redis.from_url(ctx.redis_url, decode_responses=True)
    key = f"callroute:ext:{EXT}"
    try:
        if not client.hgetall(key):
            raise BenchError(f"{key} is empty: seeding failed")
        for _ in range(50):  # warm the connection and both caches
            client.hgetall(key)
        samples = []
        for _ in range(ctx.plan.hgetall_runs):
            started = time.perf_counter()
            client.hgetall(key)
            samples.append(time.perf_counter() - started)
    finally:
        client.close()
    return Stats.of(samples)


# ---- process AGI ---------------------------------------------------------------------

def process_agi(ctx: Context) -> tuple[Stats, Stats, float]:
    """Per-call wall time of callroute-agi, and of `python -c pass`, interleaved.

    Both go through the same FakeAsterisk run (spawn, environment on stdin, wait), so
    the harness's own overhead is in both and cancels in the ratio; interleaving gives
    both the same machine conditions. Returns (floor, agent, median of first 20 calls).
    """
    plan = ctx.plan
    agent = FakeAsterisk(ctx.script("callroute-agi"), ctx.agent_env, timeout=CALL_TIMEOUT_S)
    bare = FakeAsterisk(ctx.python, ctx.agent_env, timeout=CALL_TIMEOUT_S)
    for _ in range(2):  # warm the page cache and .pyc files; not counted
        _checked_agi_call(agent)
        bare.run(EXT, argv=["-c", "pass"])
    floor: list[float] = []
    calls: list[float] = []
    for i in range(max(plan.floor_runs, plan.agi_runs)):
        if i < plan.floor_runs:
            run = bare.run(EXT, argv=["-c", "pass"])
            if run.returncode != 0 or run.timed_out:
                raise BenchError(f"python -c pass failed: {run.stderr[-300:]}")
            floor.append(run.elapsed)
        if i < plan.agi_runs:
            calls.append(_checked_agi_call(agent))
    return Stats.of(floor), Stats.of(calls), statistics.median(calls[:20]) * 1000


def _checked_agi_call(agent: FakeAsterisk) -> float:
    run = agent.run(EXT)
    got = run.variables()
    if run.timed_out or run.returncode != 0 or got.get(v.STATUS) != v.STATUS_OK:
        raise BenchError(f"process AGI call not routed OK (rc {run.returncode}, "
                         f"status {got.get(v.STATUS)!r}, reason {got.get(v.REASON)!r}, "
                         f"stderr {run.stderr[-300:]!r})")
    if got.get(v.MODE) != v.MODE_FORWARD:
        raise BenchError(f"extension {EXT} should forward, got mode {got.get(v.MODE)!r}")
    return run.elapsed


def import_breakdown(ctx: Context) -> tuple[list[tuple[str, int, float, float]], float]:
    """What the call path imports on top of a bare interpreter, from -X importtime.

    Profiles a real call (the console script, fed by FakeAsterisk), so lazy imports
    (pyst2 inside the session, agi.service after it, configparser when a config file
    exists) count. Returns the modules the bare interpreter doesn't import, in import
    order, as (module, nesting level, self ms, cumulative ms) with times the median of
    several runs, and the total self time in ms.
    """
    runs = ctx.plan.importtime_runs
    bare = FakeAsterisk(ctx.python, ctx.agent_env, timeout=CALL_TIMEOUT_S)
    baseline: set[str] = set()
    for _ in range(runs):
        baseline |= set(_parse_importtime(bare.run(EXT, argv=["-X", "importtime", "-c",
                                                              "pass"]).stderr))
    order: dict[str, int] = {}
    samples: dict[str, list[tuple[int, int]]] = {}
    for _ in range(runs):
        run = bare.run(EXT, argv=["-X", "importtime", str(ctx.script("callroute-agi")), EXT])
        if run.variables().get(v.STATUS) != v.STATUS_OK:
            raise BenchError(f"profiled call not routed OK: {run.stderr[-300:]}")
        for name, (level, own, cumulative) in _parse_importtime(run.stderr).items():
            if name not in baseline:
                order.setdefault(name, level)
                samples.setdefault(name, []).append((own, cumulative))
    rows = [(name, level, statistics.median(s[0] for s in samples[name]) / 1000,
             statistics.median(s[1] for s in samples[name]) / 1000)
            for name, level in order.items()]
    return rows, sum(row[2] for row in rows)


def _parse_importtime(stderr: str) -> dict[str, tuple[int, int, int]]:
    """{module: (nesting level, self us, cumulative us)} from `-X importtime`.

    Python prints a module when its import ends, so children come before their parent;
    the nesting level is the indentation of the name.
    """
    found: dict[str, tuple[int, int, int]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|")
        level = (len(name) - len(name.lstrip()) - 1) // 2
        found[name.strip()] = (level, int(self_us), int(cumulative_us))
    return found


def import_tree(rows: list[tuple[str, int, float, float]], min_ms: float) -> list[str]:
    """Top-level imports of the call, each followed by its costly direct children."""
    lines: list[str] = []
    pending: list[str] = []  # children are printed before their parent: hold them
    for name, level, _own, cumulative in rows:
        if level == 1 and cumulative >= min_ms:
            pending.append(f"      {name:<30} {cumulative:6.2f} ms")
        elif level == 0:
            lines += [f"    {name:<32} {cumulative:6.2f} ms", *pending]
            pending = []
    return lines


# ---- FastAGI -------------------------------------------------------------------------

def agi_request(address: tuple[str, int], script: str, ext: str) -> bytes:
    """The AGI environment Asterisk sends for `AGI(agi://host:port/script,ext)`."""
    url = f"agi://{address[0]}:{address[1]}/{script}"
    peer = FakeAsterisk(Path(url), {}, extra_agi_env={
        "agi_network": "yes", "agi_network_script": script, "agi_request": url})
    return ("".join(line + "\n" for line in peer.agi_environment(ext)) + "\n").encode()


def fastagi_session(address: tuple[str, int], request: bytes,
                    marks: list[float] | None = None) -> list[bytes]:
    """One FastAGI session as Asterisk runs it: every command gets `200 result=1`.

    Deliberately minimal (raw socket, no parsing beyond splitting lines): in the
    throughput test the client must not be the bottleneck. `marks`, if given, gets the
    time the first command arrived: the decision is made by then, the rest is protocol.
    """
    sock = socket.create_connection(address, timeout=CALL_TIMEOUT_S)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        lines: list[bytes] = []
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return lines
            buf += data
            while (end := buf.find(b"\n")) >= 0:
                if marks is not None and not lines:
                    marks.append(time.perf_counter())
                lines.append(buf[:end])
                buf = buf[end + 1:]
                sock.sendall(OK_REPLY)
    finally:
        sock.close()


@dataclass
class FastAgiServer:
    """callroute-fastagi from the bench venv, with its CPU and memory read from /proc."""

    ctx: Context
    proc: subprocess.Popen | None = None
    address: tuple[str, int] = ("127.0.0.1", 0)

    def start(self) -> FastAgiServer:
        self.address = ("127.0.0.1", free_port())
        self.log_path = self.ctx.workdir / "fastagi.log"
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(
                [str(self.ctx.script("callroute-fastagi")), "--listen",
                 f"{self.address[0]}:{self.address[1]}", "--log-level", "WARNING"],
                env=self.ctx.agent_env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True)
        health = agi_request(self.address, "health", EXT)
        wait_until(lambda: self._healthy(health), 15.0, "callroute-fastagi health")
        return self

    def _healthy(self, request: bytes) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"callroute-fastagi exited: {self.log_path.read_text()[-500:]}")
        try:
            return b'SET VARIABLE CALLROUTE_HEALTH "OK"' in fastagi_session(self.address,
                                                                             request)
        except OSError:
            return False

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        # Fields 14 and 15 of stat(5), counted after the ")" that ends the command name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kib(self) -> dict[str, int]:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            return {key: int(rest.split()[0]) for key, _, rest in
                    (line.partition(":") for line in status) if key in ("VmRSS", "VmHWM")}

    def stop(self) -> None:
        if self.proc is not None:
            stop_popen(self.proc)
            self.proc = None


def fastagi_sequential(server: FastAgiServer, runs: int) -> tuple[Stats, Stats]:
    """Connect, environment, answer every command, EOF: one request at a time.

    Also returns the time to the first command (connect, env, Redis read, decision):
    the difference to the total is the ~10 one-command-per-round-trip exchanges.
    """
    request = agi_request(server.address, "route", EXT)
    for _ in range(50):
        _check_session(fastagi_session(server.address, request))
    samples: list[float] = []
    first: list[float] = []
    for _ in range(runs):
        marks: list[float] = []
        started = time.perf_counter()
        lines = fastagi_session(server.address, request, marks)
        samples.append(time.perf_counter() - started)
        first.append(marks[0] - started)
        _check_session(lines)
    return Stats.of(samples), Stats.of(first)


def _check_session(lines: list[bytes]) -> None:
    found = dict(set_pairs([parse_args(line.decode("utf-8", "replace")) for line in lines]))
    if found.get(v.STATUS) != v.STATUS_OK or found.get(v.MODE) != v.MODE_FORWARD:
        raise BenchError(f"FastAGI request not routed OK/FORWARD: {lines!r}")


def _load_client(address: tuple[str, int], request: bytes, seconds: float,
                 go: Any, results: Any) -> None:
    """One client process of the throughput test: back-to-back sessions until time's up."""
    go.wait()
    started = time.perf_counter()
    deadline = started + seconds
    latencies: list[float] = []
    errors = 0
    first_error = ""
    now = started
    while now < deadline:
        try:
            ok = any(STATUS_OK_LINE in line for line in fastagi_session(address, request))
        except OSError as exc:
            ok, first_error = False, first_error or repr(exc)
        end = time.perf_counter()
        if ok:
            latencies.append(end - now)
        else:
            errors += 1
            first_error = first_error or "no CALLROUTE_STATUS OK"
        now = end
    results.put((latencies, errors, first_error, started, now))


def fastagi_throughput(server: FastAgiServer, clients: int,
                       seconds: float) -> dict[str, Any]:
    """K client processes hammer the server for T seconds; decisions/s and p99 under load.

    Processes, not threads: the GIL would make a threaded client the bottleneck.
    """
    request = agi_request(server.address, "route", EXT)
    mp = multiprocessing.get_context("fork")
    go = mp.Event()
    results = mp.Queue()
    workers = [mp.Process(target=_load_client, args=(server.address, request, seconds, go,
                                                     results), daemon=True)
               for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.2)  # let every client reach the start line
        cpu_before = server.cpu_seconds()
        wall_before = time.perf_counter()
        go.set()
        outcomes = [results.get(timeout=seconds + 60) for _ in workers]
        wall = time.perf_counter() - wall_before
        cpu = server.cpu_seconds() - cpu_before
    finally:
        for worker in workers:
            worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join()
    latencies = [lat for outcome in outcomes for lat in outcome[0]]
    errors = sum(outcome[1] for outcome in outcomes)
    if errors:
        first = next(outcome[2] for outcome in outcomes if outcome[2])
        raise BenchError(f"{errors} FastAGI requests failed under load (first: {first})")
    span = max(o[4] for o in outcomes) - min(o[3] for o in outcomes)
    decisions = len(latencies)
    return {"clients": clients, "seconds": round(span, 3), "decisions": decisions,
            "decisions_per_s": decisions / span, "latency_ms": asdict(Stats.of(latencies)),
            "server_cpu_s": cpu, "server_cpu_pct": 100 * cpu / wall,
            "server_cpu_us_per_decision": 1e6 * cpu / decisions,
            "server_memory_kib": server.memory_kib()}


# ---- the decision level --------------------------------------------------------------

def decision_level(ctx: Context) -> SectionReport:
    """Floors, process AGI and FastAGI, driven by fake AGI peers (no Asterisk)."""
    plan = ctx.plan
    log(f"HGETALL floor ({plan.hgetall_runs} round trips)")
    hgetall = hgetall_floor(ctx)
    log(f"process AGI ({plan.agi_runs} calls) and python -c pass ({plan.floor_runs} runs)")
    floor, agi, agi_first20 = process_agi(ctx)
    log(f"import profile of a call (-X importtime, {plan.importtime_runs} runs)")
    imports, import_total = import_breakdown(ctx)
    server = FastAgiServer(ctx)
    try:
        log("FastAGI server up; sequential requests")
        server.start()
        memory_idle = server.memory_kib()
        sequential, first_command = fastagi_sequential(server, plan.fastagi_runs)
        log(f"FastAGI throughput: {plan.clients} client processes for {plan.load_seconds:g}s")
        load = fastagi_throughput(server, plan.clients, plan.load_seconds)
    finally:
        server.stop()
    load_ms = load["latency_ms"]
    agi_ratio = agi.p50 / floor.p50
    fast_ratio = sequential.p50 / hgetall.p50

    def row(name: str, stats: Stats, ratio: str = "") -> tuple[str, ...]:
        return (name, str(stats.n), f"{stats.p50:.3f}", f"{stats.p99:.3f}", ratio)

    rows = [
        ("measure", "n", "p50 ms", "p99 ms", "ratio to floor"),
        row("floor: python -c pass (bench venv)", floor),
        row("floor: redis-py HGETALL round trip", hgetall),
        row("process AGI call (callroute-agi)", agi, f"{agi_ratio:.1f}x python -c pass"),
        row("FastAGI request, sequential", sequential, f"{fast_ratio:.1f}x HGETALL"),
        row("  of which: until the first command", first_command,
            f"{first_command.p50 / hgetall.p50:.1f}x HGETALL"),
        ("FastAGI request, under load", str(load["decisions"]), f"{load_ms['p50']:.3f}",
         f"{load_ms['p99']:.3f}", f"{load['decisions_per_s']:.0f} decisions/s"),
    ]
    mem = load["server_memory_kib"]
    extra = [
        f"process AGI: median of the first 20 calls {agi_first20:.1f} ms; the call path "
        f"imports {len(imports)} modules beyond a bare interpreter, {import_total:.1f} ms "
        "of import time (self):",
        "    (top-level import of the call, then its direct imports over 0.5 ms; "
        "cumulative times)",
        *import_tree(imports, 0.5),
        f"FastAGI under load: {load['clients']} client processes, {load['seconds']:.1f} s; "
        f"server CPU {load['server_cpu_s']:.2f} s ({load['server_cpu_pct']:.0f}% of one "
        f"core, {load['server_cpu_us_per_decision']:.0f} us/decision); RSS "
        f"{mem.get('VmRSS', 0) / 1024:.1f} MiB (peak {mem.get('VmHWM', 0) / 1024:.1f} MiB, "
        f"idle {memory_idle.get('VmRSS', 0) / 1024:.1f} MiB)",
    ]
    targets = [
        Target("FastAGI p50 <= 5 x HGETALL p50", fast_ratio, 5.0, "x"),
        Target("FastAGI p99 <= 5 ms (sequential)", sequential.p99, 5.0, "ms"),
        Target("FastAGI p99 <= 5 ms (under load)", load_ms["p99"], 5.0, "ms"),
        Target(">= 1000 decisions/s concurrent", load["decisions_per_s"], 1000.0, "/s",
               higher_is_better=True),
        Target("process AGI p50 <= 6 x python -c pass", agi_ratio, 6.0, "x"),
    ]
    results = {
        "floors": {"python_c_pass_ms": asdict(floor), "hgetall_ms": asdict(hgetall)},
        "process_agi": {"call_ms": asdict(agi), "first20_median_ms": agi_first20,
                        "ratio_p50_to_python_c_pass": agi_ratio,
                        "imports": {"total_self_ms": import_total, "modules": [
                            {"module": name, "level": level, "self_ms": own,
                             "cumulative_ms": cum}
                            for name, level, own, cum in imports]}},
        "fastagi": {"sequential_ms": asdict(sequential),
                    "first_command_ms": asdict(first_command), "ratio_p50_to_hgetall": fast_ratio,
                    "load": load, "idle_memory_kib": memory_idle},
    }
    return SectionReport("decision", "Decision level (fake AGI peer, no Asterisk)", results,
                         rows, extra, targets)


def pbx_level(ctx: Context) -> SectionReport:
    """Post-dial delay through the real test PBX (tests/harness/bench_pbx.py)."""
    from tests.harness import bench_pbx  # it imports this module: import it late

    return bench_pbx.pbx_level(ctx)


def fastagi_level(ctx: Context) -> SectionReport:
    """Issue 13: round trips, 8/64 clients, starvation, SIGTERM (tests/harness/bench_fastagi.py)."""
    from tests.harness import bench_fastagi  # it imports this module: import it late

    return bench_fastagi.fastagi_level(ctx)


SECTIONS: list[tuple[str, Callable[[Context], SectionReport]]] = [
    ("decision", decision_level),
    ("fastagi", fastagi_level),
    ("pbx", pbx_level),
]


# ---- output --------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """Enough to compare runs, nothing that identifies the host."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def render(info: dict[str, Any], plan: Plan, reports: list[SectionReport]) -> str:
    out = [f"callroute benchmark{' (--quick)' if plan.quick else ''}  {info['date']}",
           f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, "
           f"Linux {info['kernel']}", ""]
    for report in reports:
        out.append(f"== {report.title}")
        widths = [max(len(row[i]) for row in report.rows) for i in range(len(report.rows[0]))]
        for row in report.rows:
            out.append("  ".join(cell.ljust(w) if i in (0, 4) else cell.rjust(w)
                                 for i, (cell, w) in enumerate(zip(row, widths,
                                                                   strict=True))).rstrip())
        out += ["", *report.extra, ""]
    out.append("== Issue-4 targets")
    for report in reports:
        for target in report.targets:
            sign = ">=" if target.higher_is_better else "<="
            out.append(f"  {'PASS' if target.passed else 'MISS'}  {target.name:<40} "
                       f"measured {target.measured:8.2f} {target.unit:<3} "
                       f"(target {sign} {target.limit:g} {target.unit})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fast smoke run (CI): short decision level, one ~3 s PBX run "
                             "per mode")
    parser.add_argument("--no-pbx", action="store_true",
                        help="skip the PBX level (no test PBX, no SIPp)")
    parser.add_argument("--json", action="store_true", help="machine-readable results")
    parser.add_argument("--clients", type=int, default=4,
                        help="client processes in the FastAGI throughput test")
    parser.add_argument("--seconds", type=float, help="duration of the throughput test")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick, max(1, args.clients), args.seconds)
    started = time.monotonic()
    try:
        venv = ensure_bench_venv()
        with tempfile.TemporaryDirectory(prefix="callroute-bench-") as tmp, \
                RedisServer(Path(tmp) / "redis") as redis_server:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                   "CALLROUTE_REDIS_URL": redis_server.url, "CALLROUTE_COUNTRY": "FR",
                   "CALLROUTE_CONFIG": "/dev/null"}
            ctx = Context(plan, venv, redis_server.url, env, Path(tmp))
            seed(ctx)
            reports = [section(ctx) for name, section in SECTIONS
                       if not (args.no_pbx and name == "pbx")]
    except (BenchError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    info = machine()
    info["bench_python"] = str(venv / "bin" / "python")
    if args.json:
        print(json.dumps({"machine": info, "plan": asdict(plan),
                          "elapsed_s": round(time.monotonic() - started, 1),
                          "sections": {r.name: r.results for r in reports},
                          "targets": [{**asdict(t), "passed": t.passed}
                                      for r in reports for t in r.targets]}, indent=2))
    else:
        print(render(info, plan, reports))
        print(f"\n(total {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    # Run main() from the module as imported by name, not from this `-m` copy named
    # __main__: bench_pbx imports tests.harness.bench, and a BenchError it raises
    # must be the class main() catches.
    from tests.harness.bench import main as _main

    sys.exit(_main())

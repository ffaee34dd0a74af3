"""FastAGI in `scripts/bench`: callroute-fastagi driven by a raw-socket Asterisk, one
request at a time, then by K client processes at once (decisions/s, p99 under load)."""

from __future__ import annotations

import multiprocessing
import socket
import struct
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agi import variables as v
from tests.asterisk_parser import parse_args, set_pairs
from tests.fake_asterisk import FakeAsterisk
from tests.harness.bench_common import CALL_TIMEOUT_S, EXT, BenchError, Context, Stats
from tests.harness.net import start_fastagi
from tests.harness.procs import free_port, proc_stat, proc_status, stop_popen

OK_REPLY = b"200 result=1\n"
# STATUS is the last pair of the decision's EXEC MSet (docs/dialplan-contract.md).
STATUS_OK_LINE = f'{v.STATUS}={v.STATUS_OK}"'.encode()
# A stuck server fails the session (EAGAIN, an OSError) instead of hanging the bench.
_RECV_TIMEOUT = struct.pack("ll", int(CALL_TIMEOUT_S), 0)


def agi_request(address: tuple[str, int], script: str, ext: str) -> bytes:
    """The AGI environment Asterisk sends for `AGI(agi://host:port/script,ext)`."""
    url = f"agi://{address[0]}:{address[1]}/{script}"
    peer = FakeAsterisk(Path(url), {}, extra_agi_env={
        "agi_network": "yes", "agi_network_script": script, "agi_request": url})
    return ("".join(line + "\n" for line in peer.agi_environment(ext)) + "\n").encode()


def route_request(address: tuple[str, int]) -> bytes:
    """A route request for EXT as dialplan/callroute.conf makes it: the extension in the
    script's path too (docs/dialplan-contract.md), so the agent reads Redis early."""
    return agi_request(address, f"route/{EXT}", EXT)


def routed_answer(address: tuple[str, int]) -> list[bytes]:
    """The command lines callroute-fastagi answers a route request for EXT with (what
    the bare agent replays); BenchError unless it routed the call OK."""
    lines = fastagi_session(address, route_request(address))
    if not any(STATUS_OK_LINE in line for line in lines):
        raise BenchError(f"callroute-fastagi did not route {EXT} OK: {lines!r}")
    return lines


def fastagi_session(address: tuple[str, int], request: bytes,
                    marks: list[float] | None = None) -> list[bytes]:
    """One FastAGI session as Asterisk runs it: every command gets `200 result=1`.

    Deliberately minimal (raw socket, no parsing beyond splitting lines): in the
    throughput test the client, Python on the same cores, must not be the bottleneck.
    So no getaddrinfo (the address is numeric) and a kernel receive timeout
    (SO_RCVTIMEO) instead of socket.settimeout, which polls before every recv and send.
    `marks`, if given, gets the time the first command arrived: the decision is made
    by then, the rest is protocol.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _RECV_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(address)
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
    loop: str = "uvloop"  # as deployed with the `fast` extra (the bench venv has it)

    def start(self) -> FastAgiServer:
        self.address = ("127.0.0.1", free_port())
        self.proc = start_fastagi(self.ctx.script("callroute-fastagi"), *self.address,
                                  self.ctx.agent_env, self.ctx.workdir / "fastagi.log",
                                  "--log-level", "WARNING", "--loop", self.loop)
        return self

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads)."""
        assert self.proc is not None
        stat = proc_stat(self.proc.pid)
        if stat is None:
            raise BenchError("callroute-fastagi is gone")
        return stat.cpu_s

    def memory_kib(self) -> dict[str, int]:
        assert self.proc is not None
        status = proc_status(self.proc.pid)
        return {key: status[key] for key in ("VmRSS", "VmHWM") if key in status}

    def stop(self) -> None:
        if self.proc is not None:
            stop_popen(self.proc)
            self.proc = None


def fastagi_sequential(address: tuple[str, int], runs: int) -> tuple[Stats, Stats]:
    """Connect, environment, answer every command, EOF: one request at a time.

    Also returns the time to the first command (connect, env, Redis read, decision):
    the difference to the total is the ~10 one-command-per-round-trip exchanges.
    """
    request = route_request(address)
    for _ in range(50):
        _check_session(fastagi_session(address, request))
    samples: list[float] = []
    first: list[float] = []
    for _ in range(runs):
        marks: list[float] = []
        started = time.perf_counter()
        lines = fastagi_session(address, request, marks)
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
    cpu_started = time.process_time()
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
    results.put((latencies, errors, first_error, started, now,
                 time.process_time() - cpu_started))


def fastagi_throughput(server: FastAgiServer, clients: int,
                       seconds: float) -> dict[str, Any]:
    """K client processes hammer the server for T seconds; decisions/s and p99 under load.

    Processes, not threads: the GIL would make a threaded client the bottleneck.
    """
    request = route_request(server.address)
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
    client_cpu = sum(outcome[5] for outcome in outcomes)
    return {"clients": clients, "seconds": round(span, 3), "decisions": decisions,
            "decisions_per_s": decisions / span, "latency_ms": asdict(Stats.of(latencies)),
            "server_cpu_s": cpu, "server_cpu_pct": 100 * cpu / wall,
            "server_cpu_us_per_decision": 1e6 * cpu / decisions,
            # The clients are Python on the same cores: their share bounds decisions/s too.
            "client_cpu_us_per_decision": 1e6 * client_cpu / decisions,
            "server_memory_kib": server.memory_kib()}

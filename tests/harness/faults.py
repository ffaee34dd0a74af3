"""Faults injected while real calls flow through the test PBX, counted call by call.

Shared by `pytest -m faults` (tests/e2e/test_faults.py asserts on each outcome) and
`scripts/faults` (prints them as a table). Each fault runs one stream of calls: a SIPp
caller places calls to extension 1001 at a fixed rate while the fault is injected; a
multi-call SIPp desk phone (5071) and carrier (5080) answer. Extension 1001 forwards
to the carrier, so a call "routed as configured" reaches the carrier, one that "fell
back" reaches the desk phone (FALLBACK: the default device), and a call is "lost"
unless it is complete on the caller's wire (INVITE, 180, 200, and its BYE answered).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.load import start_caller, start_phone
from tests.harness.net import Blackhole
from tests.harness.pbx import TestPBX
from tests.harness.sipp import SippPeer

TARGET = "+33612345678"
RATE = 5  # calls per second
DESK_PORT, CARRIER_PORT, CALLER_PORT = 5071, 5080, 5090


@dataclass
class StreamResult:
    fault: str
    placed: int = 0
    as_configured: int = 0  # reached the forward target
    fell_back: int = 0  # reached the desk phone instead
    lost: int = 0
    max_pdd_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def row(self) -> list[str]:
        return [self.fault, str(self.placed), str(self.as_configured), str(self.fell_back),
                str(self.lost), f"{self.max_pdd_ms:.0f}", "; ".join(self.notes)]


def run_stream(pbx: TestPBX, workdir: Path, fault: str, seconds: float,
               inject: Callable[[], None] | None = None, at: float = 0.0,
               restore: Callable[[], None] | None = None, restore_at: float = 0.0,
               rate: int = RATE) -> StreamResult:
    """Place `rate` calls/s for `seconds` while `inject` runs at `at` s (and `restore`
    at `restore_at` s); count where every call went."""
    calls = max(1, int(rate * seconds))
    workdir.mkdir(parents=True, exist_ok=True)
    desk, carrier, caller = (SippPeer(name, workdir) for name in ("desk", "carrier", "caller"))
    timeline: list[threading.Timer] = []
    errors: list[str] = []

    def guarded(action: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                action()
            except Exception as exc:  # reported in the result, not lost in a thread
                errors.append(f"{getattr(action, '__name__', 'action')}: {exc}")
        return run

    try:
        start_phone(desk, DESK_PORT, calls, seconds + 60, trace_calls=True)
        start_phone(carrier, CARRIER_PORT, calls, seconds + 60, trace_calls=True)
        start_caller(caller, CALLER_PORT, "1001", calls, rate, seconds + 40)
        for action, when in ((inject, at), (restore, restore_at)):
            if action is not None:
                timer = threading.Timer(when, guarded(action))
                timer.start()
                timeline.append(timer)
        try:
            caller.wait(seconds + 50)
        except TimeoutError:
            errors.append(f"the caller was still running after {seconds + 50:g} s")
        for timer in timeline:
            timer.join(30)
        pbx.drain(20)
    finally:
        for timer in timeline:
            timer.cancel()
        for peer in (caller, desk, carrier):
            peer.stop()
    wire = caller.wire_calls()
    invited = wire.invited
    result = StreamResult(fault, placed=invited, as_configured=carrier.calls_received(),
                          fell_back=desk.calls_received(), lost=invited - wire.complete,
                          max_pdd_ms=1000 * max(wire.pdd_s, default=0.0))
    result.notes += errors
    leaked = pbx.channel_count()
    if leaked:
        result.notes.append(f"{leaked} channels leaked")
    if result.as_configured + result.fell_back != invited:
        result.notes.append(f"{result.as_configured + result.fell_back} legs for "
                            f"{invited} calls")
    return result


def _redis(pbx: TestPBX, *command: str) -> bytes:
    """One command to the PBX's Redis over a raw socket (inline protocol)."""
    with socket.create_connection(("127.0.0.1", pbx.redis_port), timeout=5) as sock:
        sock.sendall((" ".join(command) + "\r\n").encode())
        return sock.recv(4096)


def _forward_on(pbx: TestPBX) -> None:
    proc = pbx.cli("forward", "on", "1001", TARGET)
    if proc.returncode != 0:
        raise RuntimeError(f"callroute forward on: {proc.stderr.strip()}")


@dataclass
class Fault:
    name: str
    run: Callable[[TestPBX, Path], StreamResult]
    agi_modes: tuple[str, ...] = ("fastagi", "process")
    # The fault makes Redis hang: no call may wait on it past the agent's deadline.
    bounded_by_deadline: bool = False


def _redis_killed(pbx: TestPBX, workdir: Path) -> StreamResult:
    def restart() -> None:
        pbx.start_redis()  # empty (no persistence here): re-seed and re-apply the setting
        _forward_on(pbx)

    return run_stream(pbx, workdir, "Redis killed, then back", 10, pbx.stop_redis, 3,
                      restart, 6)


def _redis_blackholed(pbx: TestPBX, workdir: Path) -> StreamResult:
    port = pbx.redis_port
    holder: list[Blackhole] = []

    def blackhole() -> None:
        pbx.stop_redis()
        holder.append(Blackhole(port))

    def restore() -> None:
        holder.pop().close()
        pbx.start_redis()
        _forward_on(pbx)

    return run_stream(pbx, workdir, "Redis blackholed (accepts, never answers)", 8,
                      blackhole, 2, restore, 5)


def _redis_paused(pbx: TestPBX, workdir: Path) -> StreamResult:
    return run_stream(pbx, workdir, "Redis slow (CLIENT PAUSE 2 s)", 8,
                      lambda: _redis(pbx, "CLIENT", "PAUSE", "2000"), 2)


def _redis_auth(pbx: TestPBX, workdir: Path) -> StreamResult:
    return run_stream(pbx, workdir, "Redis refuses authentication", 6,
                      lambda: _redis(pbx, "CONFIG", "SET", "requirepass", "s3cret"), 2,
                      lambda: _redis_unlock(pbx), 4)


def _redis_unlock(pbx: TestPBX) -> bytes:
    with socket.create_connection(("127.0.0.1", pbx.redis_port), timeout=5) as sock:
        sock.sendall(b"AUTH s3cret\r\nCONFIG SET requirepass \"\"\r\n")
        return sock.recv(4096)


def _wrong_database(pbx: TestPBX, workdir: Path) -> StreamResult:
    """The settings are in another database than the URL names: nothing is found, so
    calls ring the default device (never lost)."""
    def move() -> None:
        for key in ("callroute:ext:1001", "callroute:company"):
            _redis(pbx, "MOVE", key, "1")

    return run_stream(pbx, workdir, "settings in another database", 6, move, 2)


def _schema_versions(pbx: TestPBX, workdir: Path) -> StreamResult:
    """An older writer (no schema field, fewer fields) and a newer one (schema 9 with
    fields we don't know) must both route as configured."""
    def older() -> None:
        _redis(pbx, "DEL", "callroute:ext:1001")
        _redis(pbx, "HSET", "callroute:ext:1001", "forward_enabled", "1",
               "forward_target", TARGET)

    def newer() -> None:
        _redis(pbx, "HSET", "callroute:ext:1001", "schema", "9", "forward_when", "always",
               "ring_strategy", "\"sequential\"", "forward_enabled", "1")

    return run_stream(pbx, workdir, "data from an older / newer schema", 6, older, 1.5,
                      newer, 3.5)


def _agent_killed(pbx: TestPBX, workdir: Path) -> StreamResult:
    return run_stream(pbx, workdir, "FastAGI server killed, then restarted", 10,
                      pbx.stop_agent, 3, pbx.start_agent, 6)


def _cli_toggling(pbx: TestPBX, workdir: Path) -> StreamResult:
    """The admin CLI's own code (in this process: a new CLI process takes ~300 ms to
    start) flips forwarding every 100 ms; each call must reach exactly one phone."""
    from agi import cli

    stop = threading.Event()
    failures: list[str] = []

    def toggle() -> None:
        state = False
        while not stop.is_set():
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(["forward", "on", "1001", TARGET] if state
                                else ["forward", "off", "1001"])
            if code:
                failures.append(f"callroute forward exited {code}")
            state = not state
            stop.wait(0.1)

    toggler = threading.Thread(target=toggle, daemon=True)
    saved = dict(os.environ)
    os.environ.update({**pbx.callroute_env(), "CALLROUTE_CONFIG": os.devnull})
    try:
        result = run_stream(pbx, workdir, "CLI toggles forwarding every 100 ms", 8,
                            toggler.start, 0.5, stop.set, 7.5)
    finally:
        stop.set()
        if toggler.is_alive():
            toggler.join(10)
        os.environ.clear()
        os.environ.update(saved)
    result.notes += failures
    return result


FAULTS = [
    Fault("redis-killed", _redis_killed),
    Fault("redis-blackholed", _redis_blackholed, bounded_by_deadline=True),
    Fault("redis-paused", _redis_paused, bounded_by_deadline=True),
    Fault("redis-auth", _redis_auth),
    Fault("wrong-database", _wrong_database),
    Fault("schema-versions", _schema_versions),
    Fault("agent-killed", _agent_killed, ("fastagi",)),
    Fault("cli-toggling", _cli_toggling),
]


def prepare(pbx: TestPBX) -> None:
    """The seeded topology with extension 1001 forwarding to the carrier."""
    pbx.reset()
    _forward_on(pbx)


def main(argv: list[str] | None = None) -> int:
    """`scripts/faults`: every fault against the test PBX, as a table; exit 1 if a
    call was lost."""
    import argparse
    import tempfile

    from tests.harness.pbx import AGI_MODES

    parser = argparse.ArgumentParser(prog="scripts/faults", description=main.__doc__)
    parser.add_argument("--agi", choices=AGI_MODES, default="fastagi")
    args = parser.parse_args(argv)
    pbx = TestPBX(Path(__file__).resolve().parents[2])
    pbx.up(agi_mode=args.agi)
    rows = []
    with tempfile.TemporaryDirectory(prefix="callroute-faults-") as tmp:
        for fault in FAULTS:
            if args.agi not in fault.agi_modes:
                continue
            print(f"fault: {fault.name} ...", file=sys.stderr, flush=True)
            prepare(pbx)
            rows.append(fault.run(pbx, Path(tmp) / fault.name))
    pbx.reset()
    header = ["fault", "calls placed", "routed as configured", "fell back", "lost",
              "max PDD ms", "notes"]
    table = [header] + [r.row for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"faults injected while calls flow ({args.agi} agent, {RATE} calls/s to "
          f"extension 1001, which forwards to the carrier)")
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 1 if any(r.lost or r.notes for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

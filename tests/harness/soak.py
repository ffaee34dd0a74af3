"""`scripts/soak`: a steady call rate for minutes, mixing every behaviour.

One SIPp caller places calls at a fixed rate, cycling through four extensions set
up for four behaviours; SIPp phones answer on the desk (5071) and carrier (5080)
ports, and nothing answers on 5073:

- 1001 RING: the desk phone answers;
- 1002 FORWARD: the carrier answers;
- 1003 FORWARD with keypress: the carrier answers and never presses 1, so after the
  prompt the caller reaches voicemail. One short prompt (a beep, 1 s to answer), not
  the default three spoken ones: at the benchmark's rates, 20 s of prompts per call
  would hold hundreds of playing channels at once, and 2 cores can't play them all
  (80 calls/s overran Asterisk and SIPp). The full prompts are tested call by call in
  tests/e2e;
- 1004, whose only device (PJSIP/1003 at 5073) is unreachable: straight to voicemail.

A call is "completed as expected" when the caller's dialog completes and every desk
and carrier leg was answered where the settings say. It reports calls placed and
completed, leaked channels at the end, the agent's RSS and thread count over time,
and post-dial delay percentiles (rtd, whole ms).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.harness.load import start_caller, start_phone
from tests.harness.pbx import AGI_MODES, TestPBX
from tests.harness.procs import proc_status
from tests.harness.sipp import SippPeer

ROOT = Path(__file__).resolve().parents[2]
FAILURE_DIR = Path(tempfile.gettempdir()) / "callroute-soak-last-failure"
UAC = "soak_uac"
MIX = ["1001", "1002", "1003", "1004"]  # one call each per cycle
DESK_PORT, CARRIER_PORT, CALLER_PORT = 5071, 5080, 5090


def setup(pbx: TestPBX) -> None:
    pbx.reset()
    for command in (("forward", "on", "1002", "+33612345678"),
                    ("forward", "on", "1003", "+33698765432", "--require-keypress"),
                    ("ext", "add", "1003", "--confirm-tries", "1", "--confirm-timeout", "1",
                     "--confirm-prompt", "beep"),
                    ("ext", "add", "1004", "--device", "PJSIP/1003",
                     "--mailbox", "1003@default")):
        proc = pbx.cli(*command)
        if proc.returncode != 0:
            raise RuntimeError(f"callroute {' '.join(command)}: {proc.stderr.strip()}")


def soak(pbx: TestPBX, workdir: Path, rate: int, seconds: float) -> dict:
    setup(pbx)
    calls = max(len(MIX), int(rate * seconds) // len(MIX) * len(MIX))
    injection = workdir / "calls.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    injection.write_text("SEQUENTIAL\n" + "".join(f"{ext};\n" for ext in MIX))
    status = pbx.status()
    agent_pid = status["pids"].get("fastagi") or status["pids"].get("asterisk")
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            status = proc_status(agent_pid)
            samples.append((time.monotonic() - started, status.get("VmRSS", 0),
                            status.get("Threads", 0)))
            stop.wait(5)

    desk, carrier, caller = (SippPeer(n, workdir) for n in ("desk", "carrier", "caller"))
    sampler = threading.Thread(target=sample, daemon=True)
    per_class = calls // len(MIX)
    try:
        start_phone(desk, DESK_PORT, per_class, seconds + 150, recv_timeout_ms=60_000)
        start_phone(carrier, CARRIER_PORT, 2 * per_class, seconds + 150,
                    recv_timeout_ms=60_000)
        sampler.start()
        started = time.monotonic()
        start_caller(caller, CALLER_PORT, "soak", calls, rate, seconds + 120, scenario=UAC,
                     # the keypress calls reach voicemail only after the prompt
                     recv_timeout_ms=60_000,
                     # -l: SIPp's default cap on open calls (3 x rate x duration seen so
                     # far) throttles the rate once 20 s keypress calls pile up
                     options={"-inf": injection, "-l": rate * 60})
        _wait_quietly(caller, seconds + 130)
        wall = time.monotonic() - started
        for peer in (desk, carrier):
            _wait_quietly(peer, 30)
        leaked = pbx.drain(30)
    finally:
        stop.set()
        for peer in (caller, desk, carrier):
            peer.stop()
    sampler.join(10)
    placed = caller.counters()
    rtd = sorted(caller.rtd_ms())
    rss = [s[1] for s in samples if s[1]]
    threads = [s[2] for s in samples if s[2]]
    answered = {"desk": desk.counters().get("SuccessfulCall", 0),
                "carrier": carrier.counters().get("SuccessfulCall", 0)}
    return {
        "agi": status["agi"], "rate": rate, "seconds": seconds, "wall_s": round(wall, 1),
        "calls_placed": placed.get("OutgoingCall", placed.get("TotalCallCreated", 0)),
        "calls_completed": placed.get("SuccessfulCall", 0),
        "calls_failed": placed.get("FailedCall", 0),
        "expected": {"desk": per_class, "carrier": 2 * per_class},
        "answered": answered,
        "leaked_channels": leaked,
        "agent_rss_kib": {"first": rss[0] if rss else 0, "max": max(rss, default=0),
                          "last": rss[-1] if rss else 0},
        "agent_threads": {"first": threads[0] if threads else 0,
                          "max": max(threads, default=0),
                          "last": threads[-1] if threads else 0},
        "pdd_ms": {"p50": _pct(rtd, 50), "p99": _pct(rtd, 99), "max": max(rtd, default=0)},
        "samples": samples,
    }


def _wait_quietly(peer: SippPeer, timeout: float) -> None:
    """Wait for a peer to finish; one that doesn't shows in the counts, not as an error."""
    try:
        peer.wait(timeout)
    except TimeoutError:
        pass


def _pct(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


def _each_minute(samples: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """The first sample, then the first one after each further minute, then the last."""
    picked, next_at = [], 0.0
    for sample in samples:
        if sample[0] >= next_at:
            picked.append(sample)
            next_at = (sample[0] // 60 + 1) * 60
    if samples and picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return picked


def healthy(report: dict) -> bool:
    return (report["calls_failed"] == 0 and report["leaked_channels"] == 0
            and report["calls_completed"] == report["calls_placed"] > 0
            and report["answered"] == report["expected"])


def render(report: dict) -> str:
    rss, threads, pdd = report["agent_rss_kib"], report["agent_threads"], report["pdd_ms"]
    who = "callroute-fastagi" if report["agi"] == "fastagi" else "Asterisk (process AGI)"
    return "\n".join([
        f"soak: {report['rate']} calls/s for {report['seconds']:g} s ({report['wall_s']} s until "
        f"the last call ended; {report['agi']} agent), "
        f"mix {'/'.join(MIX)} = RING / FORWARD / FORWARD+keypress->voicemail / voicemail",
        f"  calls placed {report['calls_placed']}, completed {report['calls_completed']}, "
        f"failed {report['calls_failed']}",
        f"  legs answered: desk {report['answered']['desk']} (expected "
        f"{report['expected']['desk']}), carrier {report['answered']['carrier']} "
        f"(expected {report['expected']['carrier']})",
        f"  leaked channels at the end: {report['leaked_channels']}",
        f"  {who} RSS KiB first {rss['first']} max {rss['max']} last {rss['last']}; "
        f"threads first {threads['first']} max {threads['max']} last {threads['last']}",
        f"  {who} RSS KiB / threads, each minute: " + "  ".join(
            f"{at:.0f} s {rss_kib}/{count}" for at, rss_kib, count in _each_minute(
                report["samples"])),
        f"  post-dial delay (rtd, whole ms): p50 {pdd['p50']:.0f} p99 {pdd['p99']:.0f} "
        f"max {pdd['max']:.0f}",
        f"  => {'OK' if healthy(report) else 'PROBLEM'}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, help="overrides --minutes (CI smoke: 30)")
    parser.add_argument("--rate", type=int, default=20, help="calls per second")
    parser.add_argument("--agi", choices=AGI_MODES, default="fastagi")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    pbx = TestPBX(ROOT)
    pbx.down()  # a fresh PBX: the agent's memory is measured from its start
    pbx.up(agi_mode=args.agi)
    try:
        with tempfile.TemporaryDirectory(prefix="callroute-soak-") as tmp:
            report = soak(pbx, Path(tmp), args.rate, args.seconds or args.minutes * 60)
            if not healthy(report):
                shutil.rmtree(FAILURE_DIR, ignore_errors=True)
                shutil.copytree(tmp, FAILURE_DIR)
                print(f"soak: SIPp files of this run kept in {FAILURE_DIR}", file=sys.stderr)
    finally:
        pbx.down()  # a measurement, not a demo: leave nothing running
    print(json.dumps(report) if args.json else render(report))
    return 0 if healthy(report) else 1


if __name__ == "__main__":
    sys.exit(main())

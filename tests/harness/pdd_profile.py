"""Where the PBX-level post-dial delay goes: `python -m tests.harness.pdd_profile`.

Runs the bench's SIPp load (tests/harness/bench_pbx.py) at 20 calls/s (--rate,
--calls, --modes: `--rate 100 --calls 6000` is the 60 s sustained run) through the
test PBX, static Dial and FastAGI (or the bench's other modes: process, bare), then
reads Asterisk's own log (ms timestamps, verbose 3: one `Executing [...]` line per
priority) per call: the first priority, the AGI() priority and the one after it, the
Dial() and the callee's "is ringing".
Per call that splits the dialplan's part of the PDD into:

- before AGI: priorities from the first one to AGI(),
- AGI: AGI() until the next priority (Asterisk's side of FastAGI plus the agent),
- after AGI: to the Dial(),
- Dial to ringing: Dial() until the desk phone's 180 is seen,

and the rest of the SIPp-measured PDD (INVITE to 180 at the caller) is outside the
dialplan: SIP parsing, channel creation, the 180 relayed back. Logging every
priority costs time itself, so these are upper bounds. Needs the PBX lock.

`--wire` also records the loopback traffic of each run (tests/harness/wire_phases.py)
and splits every call at the packets it sends, to the microsecond: the INVITE, the
AGI connection, the environment, the Redis read, the MSet, Asterisk's reply, the end
of AGI(), the desk phone's INVITE and 180, the caller's 180.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from tests.harness import bench
from tests.harness.bench_pbx import BARE_PORT, CALLER_PORT, DESK_PORT, PbxBench
from tests.harness.pbx import FASTAGI_PORT, SIP_PORT
from tests.harness.redis_server import RedisServer
from tests.harness.wire_phases import LoopbackCapture, call_phases

_LINE = re.compile(r"^\[(?P<ts>[\d-]+ [\d:.]+)\] VERBOSE\[\d+\]\[(?P<call>C-[0-9a-f]+)\] "
                   r"(?P<text>.*)$", re.MULTILINE)


def _seconds(stamp: str) -> float:
    hms = stamp.split(" ")[1]
    hours, minutes, seconds = hms.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def breakdown(log: str) -> dict[str, list[float]]:
    """Per phase, the ms of every call that went through every phase."""
    calls: dict[str, list[tuple[float, str]]] = {}
    for match in _LINE.finditer(log):
        calls.setdefault(match["call"], []).append((_seconds(match["ts"]), match["text"]))
    phases: dict[str, list[float]] = {"priorities before Dial": [], "before AGI": [],
                                      "AGI": [], "after AGI": [], "Dial to ringing": [],
                                      "first priority to ringing": []}
    for lines in calls.values():
        executing = [(t, text) for t, text in lines if "Executing [" in text]
        ringing = next((t for t, text in lines if text.endswith("is ringing")), None)
        dial_at = next((i for i, (_, text) in enumerate(executing) if "] Dial(" in text),
                       None)
        if not executing or ringing is None or dial_at is None:
            continue
        first, dial = executing[0][0], executing[dial_at][0]
        phases["priorities before Dial"].append(float(dial_at))
        phases["Dial to ringing"].append(1000 * (ringing - dial))
        phases["first priority to ringing"].append(1000 * (ringing - first))
        agi_at = next((i for i, (_, text) in enumerate(executing) if "] AGI(" in text), None)
        if agi_at is not None and agi_at + 1 <= dial_at:
            agi, after = executing[agi_at][0], executing[agi_at + 1][0]
            phases["before AGI"].append(1000 * (agi - first))
            phases["AGI"].append(1000 * (after - agi))
            phases["after AGI"].append(1000 * (dial - after))
    return phases


def _print(phases: dict[str, list[float]], digits: int = 2) -> None:
    for phase, values in phases.items():
        if values:
            print(f"  {phase:<30} p50 {statistics.median(values):7.{digits}f}  "
                  f"mean {statistics.fmean(values):7.{digits}f}  (n={len(values)})")


def _pairs(pbx_bench: PbxBench, count: int, rate: int, calls: int) -> None:
    """The run-to-run spread of the bench's same-time ratio, which one run can't show."""
    pbx_bench.warm_up("fastagi", 10)
    for _ in range(count):
        static, fastagi = pbx_bench.run_together(("static", "fastagi"), rate, calls)
        print(f"same time, {calls} calls each at {rate}/s: static p50 {static.p50:.2f} ms, "
              f"FastAGI p50 {fastagi.p50:.2f} ms, ratio {fastagi.p50 / static.p50:.3f}, "
              f"difference {fastagi.p50 - static.p50:.2f} ms, failed "
              f"{static.failed + fastagi.failed}, leaked {fastagi.leaked}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.pdd_profile",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=20, help="calls per second (20)")
    parser.add_argument("--calls", type=int, default=200, help="calls per mode (200)")
    parser.add_argument("--modes", default="static,fastagi",
                        help="comma-separated, from static, fastagi, process, bare")
    parser.add_argument("--wire", action="store_true",
                        help="also split each call at its loopback packets (us)")
    parser.add_argument("--pairs", type=int, default=0, metavar="N",
                        help="instead: N runs of static and FastAGI at the same time "
                             "(scripts/bench's target pair), each with its PDD ratio")
    args = parser.parse_args(argv)
    plan = bench.Plan.make(False, 4, None)
    venv = bench.ensure_bench_venv()
    calls, rate = args.calls, args.rate
    with tempfile.TemporaryDirectory(prefix="callroute-pdd-") as tmp, \
            RedisServer(Path(tmp) / "redis") as redis_server:
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "CALLROUTE_REDIS_URL": redis_server.url, "CALLROUTE_COUNTRY": "FR",
               "CALLROUTE_CONFIG": "/dev/null"}
        ctx = bench.Context(plan, venv, redis_server.url, env, Path(tmp))
        pbx_bench = PbxBench(ctx)
        try:
            if args.pairs:
                _pairs(pbx_bench, args.pairs, rate, calls)
                return 0
            for mode in args.modes.split(","):
                pbx_bench.warm_up(mode, 10)
                log_file = pbx_bench.pbx.log_file
                start = log_file.stat().st_size
                load = os.getloadavg()[0]
                with contextlib.ExitStack() as stack:
                    capture = stack.enter_context(LoopbackCapture()) if args.wire else None
                    run = pbx_bench.run(mode, rate, calls)
                with log_file.open("rb") as handle:
                    handle.seek(start)
                    text = handle.read().decode("utf-8", "replace")
                print(f"\n{mode}: {calls} calls at {rate}/s, SIPp PDD p50 {run.p50:.2f} ms "
                      f"p99 {run.p99:.2f} ms, failed {run.failed}, desk failed "
                      f"{run.desk_failed}, leaked {run.leaked}, wall {run.wall_s:.1f} s, "
                      f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
                _print(breakdown(text))
                if capture is not None:
                    print("  on the wire:")
                    agent = BARE_PORT if mode == "bare" else FASTAGI_PORT
                    _print(call_phases(capture.packets, sip=SIP_PORT, caller=CALLER_PORT,
                                       desk=DESK_PORT, fastagi=agent), 3)
        finally:
            pbx_bench.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())

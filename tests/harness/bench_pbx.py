"""The PBX level of `scripts/bench`: post-dial delay through the real test PBX.

A SIPp caller places calls at a fixed rate (`sipp -r R -m N`) into the test PBX
(127.0.0.1:5060); one SIPp desk phone on 5071 (extension 1001) answers them all. The
post-dial delay (PDD) of a call is the time from the caller sending its INVITE to the
caller receiving the 180 Ringing that Asterisk relays from the desk phone (which sends
180 at once, so the figure is the PBX's). Three modes, same calls:

- static:  `9` + extension, a plain `Dial(PJSIP/1001)` with no callroute (the floor
           a user compares with; docker/asterisk/extensions.conf, [from-trunk]),
- fastagi: extension 1001 through callroute-fastagi,
- process: extension 1001 through callroute-agi, one process per call,
- bare:    extension 1001 through the same dialplan, answered by a FastAGI agent that
           does nothing but the bytes and one Redis read (tests/harness/bare_agi.py):
           the floor of any FastAGI agent here, to read FastAGI's own part against.

static and fastagi run on one PBX started with `up(agi_mode="fastagi")`, process on
one started with `up(agi_mode="process")`. Each mode runs alone at the rate (its CPU
figures), then static and FastAGI run *at the same time*, one caller each at the rate
and one desk phone for both: the target's ratio is taken from that pair, which sees
the same machine second by second (two runs one after the other drift by ~10%, the
order of what is measured). The full run then holds static and FastAGI at 100 calls/s
for 60 s each.

How PDD is measured, and why not with SIPp's rtd alone: SIPp 3.6.1 reports response
times (`start_rtd`/`rtd`, `-trace_rtt -rtt_freq 1`) in whole milliseconds, which is
the same order as the figure itself (a static Dial is a few ms), so a 1.5x ratio
could not be told. PDD is therefore taken from the caller's message trace
(`-trace_msg`, microsecond timestamps from the same clock): first INVITE sent to
first 180 received, per Call-ID. The rtd samples are kept as a cross-check (`rtd
p50`).

A call is failed unless it is complete on the wire (INVITE sent, 180 received, 200 to
the BYE received): calls SIPp never placed, calls without a PDD and calls SIPp counted
as failed (FailedCall) all count. The larger of that and SIPp's own FailedCall is
reported. After each run the PBX must drain to 0 channels: what remains is reported
as leaked (and hung up, so the next run starts clean).

CPU, per run, from the caller's start to its exit: Asterisk's own utime+stime and its
children's cutime+cstime (reaped process-AGI children land there) from
/proc/<pid>/stat, and callroute-fastagi's utime+stime: as % of one core and ms per
call. The SIPp peers run on the same cores and are not counted.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from tests.harness import bare_agi
from tests.harness.bench_common import BenchError, Context, SectionReport, Stats, log
from tests.harness.bench_fastagi import routed_answer
from tests.harness.bench_pbx_report import MODE_TITLES, PbxPlan, Run, report
from tests.harness.load import start_caller, start_phone
from tests.harness.pbx import FASTAGI_HOST, FASTAGI_PORT, TestPBX
from tests.harness.procs import proc_stat, stop_popen, tcp_port_free
from tests.harness.sipp import SippPeer
from tests.harness.sippcmd import SIPP

ROOT = Path(__file__).resolve().parents[2]
EXT = "1001"  # seeded by TestPBX: RING mode to PJSIP/1001
DESK_PORT = 5071  # PJSIP/1001's contact (docker/asterisk/pjsip.conf)
CALLER_PORT = 5090  # any 127.0.0.1 port is the `inbound` endpoint
# Mode -> (agi mode of the PBX it runs on, dialled number).
MODES = {"static": ("fastagi", "9" + EXT), "fastagi": ("fastagi", EXT),
         "process": ("process", EXT), "bare": ("fastagi", "8" + EXT)}
# Where the dialplan sends `8` + extension (docker/asterisk/extensions.conf).
BARE_PORT = 4574
DRAIN_TIMEOUT_S = 20.0


def cpu_times(pid: int | None) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of a process; zeros if it is gone."""
    stat = proc_stat(pid)
    return (stat.cpu_s, stat.children_cpu_s) if stat is not None else (0.0, 0.0)


# ---- one run -------------------------------------------------------------------------

class PbxBench:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pbx = TestPBX(ROOT)
        self.agi_mode: str | None = None
        self.runs = 0
        self.bare: subprocess.Popen | None = None

    def up(self, agi_mode: str) -> None:
        """A fresh PBX in `agi_mode` (down first: up() would keep one in another mode)."""
        if self.agi_mode == agi_mode:
            return
        started = time.monotonic()
        self.down()  # the bare agent too: it reads the Redis of the PBX that goes
        status = self.pbx.up(agi_mode=agi_mode)
        if status.get("agi") != agi_mode or not status.get("running"):
            raise BenchError(f"test PBX not up in {agi_mode} mode: {status}")
        self.agi_mode = agi_mode
        log(f"test PBX up (agi {agi_mode}) in {time.monotonic() - started:.1f}s")

    def down(self) -> None:
        self._stop_bare()
        self.pbx.down()
        self.agi_mode = None

    def _start_bare(self) -> None:
        """tests/harness/bare_agi.py on BARE_PORT, answering what callroute-fastagi
        answers for EXT on this PBX (asked once, here)."""
        if self.bare is not None and self.bare.poll() is None:
            return
        if not tcp_port_free("127.0.0.1", BARE_PORT):
            raise BenchError(f"TCP 127.0.0.1:{BARE_PORT} is taken by another process")
        lines = routed_answer((FASTAGI_HOST, FASTAGI_PORT))
        url = self.pbx.redis_url
        assert url is not None  # the PBX is up
        self.bare = bare_agi.start(BARE_PORT, url, EXT, lines, self.ctx.workdir / "pbx")

    def _stop_bare(self) -> None:
        if self.bare is not None:
            stop_popen(self.bare)
            self.bare = None

    def run(self, mode: str, rate: int, calls: int) -> Run:
        return self.run_together((mode,), rate, calls)[0]

    def run_together(self, modes: tuple[str, ...], rate: int, calls: int) -> list[Run]:
        """`calls` calls at `rate`/s for each mode, all at the same time (one caller per
        mode, one desk phone for all): modes compared this way see the same machine,
        second by second. CPU figures are then those of the whole run."""
        agi_modes = {MODES[mode][0] for mode in modes}
        if len(agi_modes) != 1:
            raise BenchError(f"modes {modes} need PBXs in different AGI modes")
        self.up(agi_modes.pop())
        if "bare" in modes:
            self._start_bare()
        if self.pbx.channel_count():
            self._drain()  # left over from something else: not this run's leak
        self.runs += 1
        workdir = self.ctx.workdir / "pbx" / f"{self.runs:02d}-{'+'.join(modes)}-{rate}"
        pids = self.pbx.status()["pids"]
        asterisk_pid, agent_pid = pids.get("asterisk"), pids.get("fastagi")
        desk = SippPeer("desk", workdir)
        callers = [SippPeer(f"caller-{mode}", workdir) for mode in modes]
        results = [Run(mode, rate, calls) for mode in modes]
        timeout = calls / rate + 30
        try:
            start_phone(desk, DESK_PORT, calls * len(modes), timeout + 30)
            ast0, agent0 = cpu_times(asterisk_pid), cpu_times(agent_pid)
            started = time.monotonic()
            for i, (mode, caller) in enumerate(zip(modes, callers, strict=True)):
                start_caller(caller, CALLER_PORT + i, MODES[mode][1], calls, rate, timeout)
            for result, caller in zip(results, callers, strict=True):
                try:
                    result.caller_rc = caller.wait(max(1.0, started + timeout + 10
                                                       - time.monotonic()))
                except TimeoutError:
                    caller.stop()
            wall = time.monotonic() - started
            ast1, agent1 = cpu_times(asterisk_pid), cpu_times(agent_pid)
            leaked = self._drain()
            try:
                desk.wait(3)
            except TimeoutError:
                desk.stop()
        finally:
            for caller in callers:
                caller.stop()
            desk.stop()
        own, children = ast1[0] - ast0[0], ast1[1] - ast0[1]
        agent = agent1[0] - agent0[0]
        every, span = calls * len(modes), max(wall, 1e-9)
        cpu = {"asterisk_s": own, "asterisk_children_s": children, "fastagi_s": agent,
               "asterisk_pct": 100 * own / span,
               "asterisk_children_pct": 100 * children / span,
               "fastagi_pct": 100 * agent / span,
               "asterisk_ms_per_call": 1000 * own / every}
        for result, caller in zip(results, callers, strict=True):
            mode = result.mode
            result.wall_s, result.leaked = wall, leaked
            result.cpu = {**cpu, "agent_ms_per_call": 1000 * (
                children if mode == "process" else agent) / every}
            self._read_caller(result, caller, desk)
        return results

    def _read_caller(self, result: Run, caller: SippPeer, desk: SippPeer) -> None:
        mode, rate, calls = result.mode, result.rate, result.calls
        wire = caller.wire_calls()
        result.invited, result.complete = wire.invited, wire.complete
        result.sipp_failed = caller.counters().get("FailedCall", 0)
        result.desk_failed = desk.counters().get("FailedCall", 0)
        result.no_pdd = calls - len(wire.pdd_s)
        result.failed = max(calls - result.complete, result.sipp_failed)
        if wire.pdd_s:
            result.pdd_ms = asdict(Stats.of(wire.pdd_s))
        rtd = caller.rtd_ms()
        result.rtd_p50_ms = statistics.median(rtd) if rtd else None
        if result.invited == 0:
            raise BenchError(f"{mode} @ {rate}/s: the caller sent no INVITE "
                             f"(rc {result.caller_rc}):\n{caller.describe()}")
        log(f"  {mode:7} {rate:3d}/s x {calls:4d}: PDD p50 {result.p50:7.2f} ms "
            f"p99 {result.p99:7.2f} ms, failed {result.failed}, desk failed "
            f"{result.desk_failed}, leaked {result.leaked}, Asterisk CPU "
            f"{result.cpu['asterisk_pct']:.0f}%")
        if result.failed and not self.ctx.plan.quick:
            keep = self.ctx.workdir.parent / "callroute-bench-last-failure"
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(caller.workdir, keep)
            log(f"  SIPp files of this run kept in {keep}")

    def _drain(self) -> int:
        """Wait for 0 channels; if some stay, return how many and hang them up."""
        count = self.pbx.drain(DRAIN_TIMEOUT_S, hang_up=True)
        if count:
            log(f"  {count} channel(s) were still up after {DRAIN_TIMEOUT_S:g}s: hung up")
        return count

    def warm_up(self, mode: str, calls: int) -> None:
        """A few calls first, not counted: page cache, .pyc files, Redis connections."""
        if calls:
            self.run(mode, 5, calls)


# ---- the section ---------------------------------------------------------------------

def pbx_level(ctx: Context) -> SectionReport:
    plan = PbxPlan.make(ctx.plan.quick)
    if not shutil.which(SIPP) and not Path(SIPP).exists():
        raise BenchError(f"SIPp not found ({SIPP})")
    bench = PbxBench(ctx)
    fixed: dict[str, Run] = {}
    steps: dict[str, list[Run]] = {}
    together: dict[str, Run] = {}
    trio: dict[str, Run] = {}
    sustained: dict[str, Run] = {}
    calls = round(plan.rate * plan.seconds)
    try:
        # PBX in fastagi mode: static floor and FastAGI; then process mode.
        for mode in ("static", "fastagi", "process"):
            log(f"PBX level, {MODE_TITLES[mode]}: {plan.rate} calls/s for "
                f"{plan.seconds:g}s")
            bench.warm_up(mode, plan.warmup_calls)
            fixed[mode] = bench.run(mode, plan.rate, calls)
            for rate in plan.steps:
                run = bench.run(mode, rate, round(rate * plan.step_seconds))
                steps.setdefault(mode, []).append(run)
                if not run.sustained:
                    break
            if mode != "fastagi":
                continue
            # The target's ratio: both at once, each at the rate, so the floor and
            # FastAGI see the same machine second by second (runs one after the other
            # drift by more than the difference being measured).
            log(f"PBX level, static and FastAGI at the same time: {plan.rate} calls/s "
                f"each for {plan.seconds:g}s")
            pair = bench.run_together(("static", "fastagi"), plan.rate, calls)
            together = {run.mode: run for run in pair}
            # Where FastAGI's part goes: beside both floors, no AGI and an AGI that
            # does nothing (bare_agi.py), all three at once.
            log(f"PBX level, static, bare FastAGI and FastAGI at the same time: "
                f"{plan.rate} calls/s each for {plan.seconds:g}s")
            bench.warm_up("bare", plan.warmup_calls)
            trio = {run.mode: run for run in bench.run_together(
                ("static", "bare", "fastagi"), plan.rate, calls)}
            if plan.sustained_rate:
                for held in ("static", "fastagi"):
                    log(f"PBX level, {MODE_TITLES[held]}: {plan.sustained_rate} calls/s "
                        f"for {plan.sustained_seconds:g}s")
                    sustained[held] = bench.run(
                        held, plan.sustained_rate,
                        round(plan.sustained_rate * plan.sustained_seconds))
    finally:
        log("test PBX down")
        bench.down()
    return report(plan, fixed, steps, together, trio, sustained)

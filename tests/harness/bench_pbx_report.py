"""What a PBX-level bench run measured, and how `scripts/bench` judges it: the plan,
one run's figures, and the section's table, notes and targets (the runs themselves
are made in tests/harness/bench_pbx.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tests.harness.bench_common import SectionReport, Target

MODE_TITLES = {"static": "static Dial, no AGI (floor)", "fastagi": "FastAGI",
               "process": "process AGI", "bare": "bare FastAGI agent (floor)"}
SUSTAINED_P99_MS = 200.0
TARGET_RATE = 20
TARGET_RATIO = 1.5
SUSTAINED_RATE = 100  # calls/s, static and FastAGI, no failed and no leaked call
SUSTAINED_SECONDS = 60.0


@dataclass
class PbxPlan:
    """Fixed-rate run per mode, then (full run only) the rate steps."""

    rate: int
    seconds: float
    steps: tuple[int, ...]
    step_seconds: float
    warmup_calls: int
    sustained_rate: int  # static and FastAGI, each for sustained_seconds (full run only)
    sustained_seconds: float

    @classmethod
    def make(cls, quick: bool) -> PbxPlan:
        if quick:
            return cls(5, 3.0, (), 0.0, 3, 0, 0.0)
        return cls(TARGET_RATE, 10.0, (10, 20, 40, 60, 80), 6.0, 10, SUSTAINED_RATE,
                   SUSTAINED_SECONDS)


@dataclass
class Run:
    """One fixed-rate run of one mode."""

    mode: str
    rate: int
    calls: int
    invited: int = 0
    complete: int = 0
    sipp_failed: int = 0
    desk_failed: int = 0
    failed: int = 0
    no_pdd: int = 0
    leaked: int = 0
    caller_rc: int | None = None
    wall_s: float = 0.0
    pdd_ms: dict[str, float] | None = None
    rtd_p50_ms: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return self.pdd_ms["p50"] if self.pdd_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.pdd_ms["p99"] if self.pdd_ms else float("nan")

    @property
    def sustained(self) -> bool:
        return (self.failed == 0 and self.desk_failed == 0 and self.leaked == 0
                and self.pdd_ms is not None and self.p99 < SUSTAINED_P99_MS)


def report(plan: PbxPlan, fixed: dict[str, Run], steps: dict[str, list[Run]],
           together: dict[str, Run], trio: dict[str, Run],
           sustained: dict[str, Run]) -> SectionReport:
    floor = fixed["static"].p50

    def ratio(run: Run) -> str:
        return "" if run.mode == "static" else f"{run.p50 / floor:.2f}x static"

    def cpu(run: Run) -> tuple[str, str]:
        agent = {"static": "-",
                 "process": f"{run.cpu['asterisk_children_pct']:.0f}%",
                 "fastagi": f"{run.cpu['fastagi_pct']:.0f}%"}[run.mode]
        return f"{run.cpu['asterisk_pct']:.0f}%", agent

    rows: list[tuple[str, ...]] = [
        ("mode", "calls", "PDD p50 ms", "PDD p99 ms", "p50 vs floor", "failed", "leaked",
         "Asterisk CPU", "agent CPU", "CPU ms/call")]
    for mode in ("static", "fastagi", "process"):
        run = fixed[mode]
        ast, agent = cpu(run)
        per_call = run.cpu["asterisk_ms_per_call"] + (0 if mode == "static"
                                                      else run.cpu["agent_ms_per_call"])
        rows.append((f"{MODE_TITLES[mode]} @ {run.rate}/s", str(run.calls),
                     f"{run.p50:.2f}", f"{run.p99:.2f}", ratio(run), str(run.failed),
                     str(run.leaked), ast, agent, f"{per_call:.2f}"))

    def same_time(runs: dict[str, Run], others: str, share: str) -> None:
        """Rows of callers run at once: each against static (and bare, if it ran)."""
        for mode, run in runs.items():
            ratio_text = "" if mode == "static" else (
                f"{run.p50 / runs['static'].p50:.2f}x static"
                + (f", {run.p50 / runs['bare'].p50:.2f}x bare"
                   if "bare" in runs and mode != "bare" else "") + " (same time)")
            rows.append((f"{MODE_TITLES[mode]} @ {run.rate}/s, with the {others}",
                         str(run.calls), f"{run.p50:.2f}", f"{run.p99:.2f}", ratio_text,
                         str(run.failed), str(run.leaked),
                         f"{run.cpu['asterisk_pct']:.0f}% ({share})",
                         f"{run.cpu['fastagi_pct']:.0f}%" if mode == "fastagi" else "-", "-"))

    same_time(together, "other", "both")
    same_time(trio, "other two", "all")
    for mode, run in sustained.items():
        rows.append((f"{MODE_TITLES[mode]} @ {run.rate}/s", str(run.calls),
                     f"{run.p50:.2f}", f"{run.p99:.2f}", "", str(run.failed),
                     str(run.leaked), f"{run.cpu['asterisk_pct']:.0f}%",
                     f"{run.cpu['fastagi_pct']:.0f}%" if mode == "fastagi" else "-",
                     f"{run.cpu['asterisk_ms_per_call'] + (run.cpu['agent_ms_per_call'] if mode == 'fastagi' else 0):.2f}"))  # noqa: E501
    extra = [
        "PDD: caller's INVITE sent -> 180 received (relayed from the desk phone, which "
        "rings at once), from SIPp's message trace (us); SIPp's own rtd, whole ms, as "
        "a cross-check: " + ", ".join(
            f"{m} {fixed[m].rtd_p50_ms:g} ms" if fixed[m].rtd_p50_ms is not None
            else f"{m} -" for m in ("static", "fastagi", "process")) + ".",
        "failed = calls not complete on the wire (INVITE, 180, 200 to BYE) or counted "
        "failed by SIPp; desk-side failures: " + ", ".join(
            f"{m} {fixed[m].desk_failed}" for m in ("static", "fastagi", "process")) + ".",
        "CPU as % of one core over the run (2 SIPp peers share the cores, not counted); "
        "agent = callroute-fastagi, or Asterisk's reaped children (process AGI); "
        "CPU ms/call = Asterisk + agent.",
        "\"with the other\": static and FastAGI callers at the same time, each at the "
        "rate, one desk phone answering both; the target's ratio is taken there "
        "(the one-after-the-other ratio above moves with the machine between runs).",
        "\"with the other two\": static, FastAGI and the bare FastAGI agent "
        "(tests/harness/bare_agi.py) at the same time. The bare agent goes through the "
        "same dialplan and reads the same two Redis hashes, then answers with the "
        "agent's own command lines, from one blocking thread that does nothing else: "
        "what any FastAGI agent costs here (Asterisk's side of AGI, the Redis round "
        "trip, the processes waking up). FastAGI above it is callroute's own part. "
        "(Its calls run one priority more, the Set() that points them at it.)",
    ]
    highest: dict[str, int | None] = {}
    if steps:
        extra.append(f"Highest sustained call rate (steps of {plan.step_seconds:g}s: "
                     f"p99 PDD < {SUSTAINED_P99_MS:g} ms, no failed call, no leaked "
                     "channel; a mode stops at its first failing step):")
        for mode in ("static", "fastagi", "process"):
            runs = steps.get(mode, [])
            passing = [r.rate for r in runs if r.sustained]
            highest[mode] = max(passing) if passing else None
            trail = "  ".join(
                f"{r.rate}/s:{'ok' if r.sustained else 'MISS'}"
                f"(p99 {r.p99:.0f} ms, fail {r.failed + r.desk_failed}, "
                f"Ast {r.cpu['asterisk_pct']:.0f}%"
                + (f", agent {r.cpu['asterisk_children_pct' if mode == 'process' else 'fastagi_pct']:.0f}%"  # noqa: E501
                   if mode != "static" else "") + ")"
                for r in runs)
            best = highest[mode]
            if best is None:
                verdict = f"none (below {runs[0].rate} calls/s)" if runs else "not run"
            elif runs[-1].sustained:
                verdict = f">= {best} calls/s (every step passed)"
            else:
                verdict = f"{best} calls/s"
            extra.append(f"    {MODE_TITLES[mode]:<28} {verdict}")
            extra.append(f"      {trail}")
    fast = fixed["fastagi"]
    # The target is set at 20 calls/s; --quick measures at its own rate and says so.
    at = f"@{plan.rate}/s" + ("" if plan.rate == TARGET_RATE else " (quick)")
    targets = [
        Target(f"PBX {at}, same time: FastAGI PDD p50 <= {TARGET_RATIO:g} x static",
               together["fastagi"].p50 / together["static"].p50, TARGET_RATIO, "x"),
        Target(f"PBX {at}: FastAGI failed calls",
               float(fast.failed + fast.desk_failed + fast.leaked), 0.0, "calls"),
        *(Target(f"PBX {run.rate}/s for {run.calls / run.rate:g} s: {MODE_TITLES[mode]} "
                 "failed + leaked calls",
                 float(run.failed + run.desk_failed + run.leaked), 0.0, "calls")
          for mode, run in sustained.items()),
    ]
    results = {
        "plan": asdict(plan),
        "fixed_rate": {m: asdict(r) for m, r in fixed.items()},
        "ratio_p50_to_static": {m: fixed[m].p50 / floor for m in ("fastagi", "process")},
        "together": {m: asdict(r) for m, r in together.items()},
        "ratio_p50_to_static_together": together["fastagi"].p50 / together["static"].p50,
        "trio": {m: asdict(r) for m, r in trio.items()},
        "ratio_p50_trio": {
            "bare_to_static": trio["bare"].p50 / trio["static"].p50,
            "fastagi_to_static": trio["fastagi"].p50 / trio["static"].p50,
            "fastagi_to_bare": trio["fastagi"].p50 / trio["bare"].p50} if trio else {},
        "sustained": {m: asdict(r) for m, r in sustained.items()},
        "steps": {m: [asdict(r) for r in runs] for m, runs in steps.items()},
        "highest_sustained_rate": highest,
    }
    return SectionReport("pbx", "PBX level (real Asterisk, SIPp caller and desk phone)",
                         results, rows, extra, targets)

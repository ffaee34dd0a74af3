"""Process AGI in `scripts/bench`: a call of callroute-agi next to `python -c pass`,
and what the call path imports on top of a bare interpreter (`-X importtime`)."""

from __future__ import annotations

import statistics

from agi import variables as v
from tests.fake_asterisk import FakeAsterisk
from tests.harness.bench_common import CALL_TIMEOUT_S, EXT, BenchError, Context, Stats


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

"""What every section of `scripts/bench` shares: its figures, its plan and its setup.

Issue 4 asks for figures measured in ONE run on ONE machine, so each mode is reported
as a ratio to its own floor (a bare interpreter start for process AGI, one redis-py
HGETALL for FastAGI), which cancels what a faster or slower machine does to both alike
(not all it does: docs/performance.md, "How it is measured").

The agent under test is a NON-editable install, like /opt/callroute on a PBX: the
editable install's import finder alone costs ~12 ms per process. The bench venv
(.cache/bench-venv) is installed from the very wheels the test PBX ships
(tests/harness/rootfs.py, cached by the content of agi/, pyproject.toml and
README.md), so it is rebuilt exactly when the code changes.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.procs import run
from tests.harness.rootfs import wheels
from tests.harness.seeding import run_cli, seed

ROOT = Path(__file__).resolve().parents[2]
BENCH_VENV = ROOT / ".cache" / "bench-venv"
# What the bench venv holds besides callroute: the runtime dependencies, by name.
RUNTIME_PACKAGES = ("callroute", "pyst2", "six", "redis", "phonenumbers")
# callroute's `fast` extra, as a FastAGI host installs it (a compiled wheel, so not in
# the PBX's pure-Python wheel cache: pip takes it from the configured index).
FAST_PACKAGES = ("uvloop",)
EXT = "1001"
FORWARD_TO = "0612345678"
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
    cached = wheels(ROOT)
    stamp = venv / ".callroute-wheels"
    stamped = f"{cached} {' '.join(FAST_PACKAGES)}"
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == stamped:
        return venv
    started = time.monotonic()
    if not python.exists():
        # The same base interpreter as .venv, so the floors compare like with like.
        run([sys.executable, "-m", "venv", venv], 300, "create the bench venv")
    run([venv / "bin" / "pip", "install", "-q", "--no-index", "--find-links", cached,
         "--force-reinstall", *RUNTIME_PACKAGES], 300, "install into the bench venv")
    run([venv / "bin" / "pip", "install", "-q", *FAST_PACKAGES], 300,
        "install the fast extra into the bench venv")
    stamp.write_text(stamped)
    log(f"bench venv (re)installed from {cached.name} in {time.monotonic() - started:.1f}s")
    return venv


def seed_bench(ctx: Context) -> None:
    """docker/seed.sh (company, 1001-1003), then forwarding on 1001: the common case."""
    seed(ROOT, ctx.agent_env, ctx.script("callroute"))
    proc = run_cli(ctx.script("callroute"), ctx.agent_env, "forward", "on", EXT, FORWARD_TO)
    if proc.returncode != 0:
        raise BenchError(f"callroute forward on failed: {proc.stderr.strip()[-500:]}")

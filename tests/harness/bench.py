"""`scripts/bench`: how fast is a routing decision, next to the floors it can't beat.

Sections: the decision level (no Asterisk; fake AGI peers drive the real protocol) in
tests/harness/bench_decision.py, and the PBX level (the real test PBX, SIPp post-dial
delay) in tests/harness/bench_pbx.py (`--no-pbx` skips it). Each is a function
returning a `SectionReport`, listed in `SECTIONS`; the table, the targets, `--json`
and the saved run pick it up without other changes.

`--save` keeps the run as docs/bench/<date>-<kind>.json (with the machine's facts)
and regenerates docs/performance.md from it (tests/harness/bench_doc.py), so no
figure is ever copied into the documentation by hand.

Exit status: 0 whenever the benchmark ran, targets met or not (it reports, it doesn't
judge); 1 if the benchmark itself failed, e.g. a call was not routed OK while Redis
was up, since then the figures would describe a failure path, not the call path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.harness.bench_common import (
    ROOT,
    BenchError,
    Context,
    Plan,
    SectionReport,
    ensure_bench_venv,
    log,
    seed_bench,
)
from tests.harness.bench_decision import decision_level
from tests.harness.bench_doc import save_run
from tests.harness.bench_fastagi_limits import fastagi_level
from tests.harness.bench_pbx import pbx_level
from tests.harness.redis_server import RedisServer
from tests.harness.rootfs import package_version, rootfs_path

SECTIONS: list[tuple[str, Callable[[Context], SectionReport]]] = [
    ("decision", decision_level),
    ("fastagi", fastagi_level),
    ("pbx", pbx_level),
]


def _version(*argv: str) -> str | None:
    """First line a tool prints about its version, or None if it can't be run."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


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
            "kernel": platform.release(),
            "asterisk": package_version(rootfs_path(ROOT), "asterisk"),
            "sipp": _version("sipp", "-v"), "redis": _version("redis-server", "--version"),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()]}


def render(info: dict[str, Any], plan: Plan, reports: list[SectionReport]) -> str:
    out = [f"callroute benchmark{' (--quick)' if plan.quick else ''}  {info['date']}",
           f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, "
           f"Linux {info['kernel']}, Asterisk {info['asterisk']}", ""]
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
                       f"measured {target.measured:8.3f} {target.unit:<3} "
                       f"(target {sign} {target.limit:g} {target.unit})")
    return "\n".join(out)


def as_json(info: dict[str, Any], plan: Plan, elapsed: float, no_pbx: bool, note: str | None,
            reports: list[SectionReport]) -> dict[str, Any]:
    """The whole run: machine facts, plan, results, the printed tables, the targets."""
    return {"machine": info, "plan": {**asdict(plan), "no_pbx": no_pbx},
            "note": note, "elapsed_s": round(elapsed, 1),
            "sections": {r.name: r.results for r in reports},
            "tables": {r.name: {"title": r.title, "rows": r.rows, "notes": r.extra}
                       for r in reports},
            "targets": [{**asdict(t), "passed": t.passed} for r in reports for t in r.targets]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fast smoke run (CI): short decision level, one ~3 s PBX run "
                             "per mode")
    parser.add_argument("--no-pbx", action="store_true",
                        help="skip the PBX level (no test PBX, no SIPp)")
    parser.add_argument("--json", action="store_true", help="machine-readable results")
    parser.add_argument("--save", action="store_true",
                        help="keep the run in docs/bench/ and regenerate docs/performance.md")
    parser.add_argument("--note", help="a sentence saved with the run (e.g. 'shared machine')")
    parser.add_argument("--clients", type=int, default=4,
                        help="client processes in the FastAGI throughput test")
    parser.add_argument("--seconds", type=float, help="duration of the throughput test")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick, max(1, args.clients), args.seconds)
    started = time.monotonic()
    info = machine()
    try:
        venv = ensure_bench_venv()
        with tempfile.TemporaryDirectory(prefix="callroute-bench-") as tmp, \
                RedisServer(Path(tmp) / "redis") as redis_server:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                   "CALLROUTE_REDIS_URL": redis_server.url, "CALLROUTE_COUNTRY": "FR",
                   "CALLROUTE_CONFIG": "/dev/null"}
            ctx = Context(plan, venv, redis_server.url, env, Path(tmp))
            seed_bench(ctx)
            reports = [section(ctx) for name, section in SECTIONS
                       if not (args.no_pbx and name == "pbx")]
    except (BenchError, RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    info["bench_python"] = str(venv / "bin" / "python")
    run = as_json(info, plan, time.monotonic() - started, args.no_pbx, args.note, reports)
    if args.save:
        saved, doc = save_run(run)
        log(f"saved {saved.relative_to(ROOT)}; regenerated {doc.relative_to(ROOT)}")
    if args.json:
        print(json.dumps(run, indent=2))
    else:
        print(render(info, plan, reports))
        print(f"\n(total {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

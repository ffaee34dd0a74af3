"""docs/performance.md, generated from a saved `scripts/bench --json` run.

`scripts/bench --save` writes the run to docs/bench/<date>-<kind>.json and calls
`save_run`; `python -m tests.harness.bench_doc [RUN.json] [--before OLD.json]` regenerates
the page from a saved run (the newest by default), with a before/after table of the
targets when an earlier run of the same machine is named. Every figure on the page
comes from those files: the tables `scripts/bench` prints, its notes and the targets,
each ratio taken against a floor measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs" / "bench"
PAGE = ROOT / "docs" / "performance.md"

HOW = """\
## How it is measured

- **Decision level** (no Asterisk): a fake Asterisk drives the real AGI protocol.
  Process AGI is timed against `python -c pass` started the same way (the floor of
  any process-per-call agent); FastAGI against one redis-py `HGETALL` round trip on a
  persistent connection (the floor of any decision that reads Redis). Beside it, the
  bare FastAGI agent (`tests/harness/bare_agi.py`): one blocking thread that reads the
  environment and the same two hashes, then sends callroute's own answer, and does
  nothing else (the floor of any FastAGI agent in Python). The agent is a
  non-editable install from the wheels the test PBX ships (`.cache/bench-venv`).
- **PBX level**: a SIPp caller places calls at a fixed rate into the real test PBX
  (Asterisk 22 from Debian sid); a SIPp desk phone answers. Post-dial delay (PDD) is
  the caller's INVITE sent to its 180 received, from SIPp's message trace. The floor
  is a static `Dial(PJSIP/1001)` with no AGI on the same PBX, in the same run; the
  target's ratio is taken with both callers running at the same time, so floor and
  FastAGI see the same machine. A second same-time run adds the bare FastAGI agent,
  through the same dialplan (`8` + extension): FastAGI against it is callroute's own
  part; the bare agent against static is what any FastAGI agent costs on this host.
- A ratio to a floor measured in the same run cancels what a faster or slower machine
  does to both alike, not what it does to one more than the other: compare ratios
  between runs on the same kind of host. Two 2-core VMs on the same day
  ([AMD](bench/2026-12-04-2cpu-full.json), and
  [Intel](bench/2026-12-04-2cpu-full-xeon.json), where an idle core wakes up cheaply):
  one HGETALL round trip took 219 and 25 us, a sequential FastAGI session 390 and
  153 us, so its ratio went from 1.8x to 6.0x. A round trip is mostly wake-ups; a
  session also spends the server's own CPU (214 and 94 us a decision under load),
  which shrinks less. The PBX-level ratio hardly moved (1.55x and 1.58x).
- The FastAGI rework's own before and after (main at 1146c84, then the reworked
  server) were measured on the AMD host; `python -m tests.harness.bench_doc
  docs/bench/2026-12-04-2cpu-full.json --before docs/bench/2026-12-03-2cpu-full-before.json`
  renders that page.
"""


def kind(run: dict[str, Any]) -> str:
    """What distinguishes runs of one day: the machine's size and the plan."""
    plan = run["plan"]
    parts = [f"{run['machine']['nproc']}cpu",
             "quick" if plan["quick"] else "full",
             *(["no-pbx"] if plan.get("no_pbx") else [])]
    return "-".join(parts)


def save_run(run: dict[str, Any], runs: Path = RUNS, page: Path = PAGE) -> tuple[Path, Path]:
    """Write the run as <date>-<kind>.json (-2, -3... after the first of a day: an
    earlier run is never overwritten) and regenerate the page from it."""
    runs.mkdir(parents=True, exist_ok=True)
    stem = f"{run['machine']['date'][:10]}-{kind(run)}"
    path, n = runs / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = runs / f"{stem}-{n}.json"
    path.write_text(json.dumps(run, indent=2) + "\n")
    page.write_text(render(run, path.relative_to(page.parent).as_posix()))
    return path, page


def _table(rows: list[list[str]]) -> list[str]:
    escaped = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    return ["| " + " | ".join(escaped[0]) + " |",
            "|" + "|".join(" --- " for _ in escaped[0]) + "|",
            *("| " + " | ".join(row) + " |" for row in escaped[1:])]


def _measured(target: dict[str, Any]) -> str:
    return f"{target['measured']:.3f} {target['unit']}"


def before_after(before: dict[str, Any], after: dict[str, Any], source: str) -> list[str]:
    """Each target of the newer run beside the same target in the earlier one: same
    machine, same harness, so the ratios compare."""
    earlier = {t["name"]: t for t in before["targets"]}
    rows = [["target", "limit", "before", "after", "result after"]]
    for target in after["targets"]:
        old = earlier.get(target["name"])
        rows.append([target["name"],
                     f"{'>=' if target['higher_is_better'] else '<='} {target['limit']:g} "
                     f"{target['unit']}",
                     _measured(old) if old else "-", _measured(target),
                     "PASS" if target["passed"] else "MISS"])
    return ["## Before and after", "",
            f"The same targets in an earlier run, [`{source}`]({source}) "
            f"({before['machine']['date']}, load average before "
            f"{before['machine'].get('loadavg_before')}): "
            f"{before.get('note') or 'no note'}.", "", *_table(rows), ""]


def render(run: dict[str, Any], source: str, before: dict[str, Any] | None = None,
           before_source: str = "") -> str:
    info, plan = run["machine"], run["plan"]
    scope = ("decision level only (`--no-pbx`: no test PBX, no SIPp)" if plan.get("no_pbx")
             else "decision level and PBX level")
    out = [
        "# Performance",
        "",
        f"<!-- Generated by tests/harness/bench_doc.py from {source}. Do not edit: run "
        "`scripts/bench --save` (or `python -m tests.harness.bench_doc FILE`). -->",
        "",
        f"Figures from one `scripts/bench{' --quick' if plan['quick'] else ''}` run, "
        f"{scope}, saved as [`{source}`]({source}). Re-run `scripts/bench --json --save` "
        "(under the PBX lock) to replace them.",
        "",
        "## Machine",
        "",
        *_table([["fact", "value"],
                 ["date (UTC)", info["date"]],
                 ["cores", str(info["nproc"])],
                 ["CPU", info["cpu"]],
                 ["Python", info["python"]],
                 ["Linux", info["kernel"]],
                 ["Asterisk (test PBX rootfs)", str(info.get("asterisk"))],
                 ["SIPp (host, drives the calls)", str(info.get("sipp"))],
                 ["Redis", str(info.get("redis"))],
                 ["load average before / after",
                  f"{info.get('loadavg_before')} / {info.get('loadavg_after')}"],
                 ["run took", f"{run['elapsed_s']} s"]]),
        "",
    ]
    if run.get("note"):
        out += [f"**Note:** {run['note']}", ""]
    out += [HOW]
    for table in run["tables"].values():
        out += [f"## {table['title']}", "", *_table(table["rows"]), ""]
        if table["notes"]:
            out += ["```", *table["notes"], "```", ""]
    if before is not None:
        out += before_after(before, run, before_source)
    out += ["## Targets", "",
            *_table([["target", "measured", "limit", "result"]] + [
                [t["name"], _measured(t),
                 f"{'>=' if t['higher_is_better'] else '<='} {t['limit']:g} {t['unit']}",
                 "PASS" if t["passed"] else "MISS"] for t in run["targets"]]),
            ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Regenerate the page from the run named, or the newest saved run."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness.bench_doc")
    parser.add_argument("run", nargs="?", type=Path, help="a saved run (default: newest)")
    parser.add_argument("--before", type=Path, help="an earlier run, for before/after")
    args = parser.parse_args(argv)
    if args.run:
        path = args.run.resolve()
    else:
        saved = sorted(RUNS.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not saved:
            print(f"bench_doc: no saved run in {RUNS}", file=sys.stderr)
            return 1
        path = saved[-1]
    before = json.loads(args.before.read_text()) if args.before else None
    before_source = (args.before.resolve().relative_to(PAGE.parent).as_posix()
                     if args.before else "")
    PAGE.write_text(render(json.loads(path.read_text()),
                           path.relative_to(PAGE.parent).as_posix(), before, before_source))
    print(f"bench_doc: {PAGE.relative_to(ROOT)} regenerated from {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

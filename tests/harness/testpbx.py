"""Command line of the test PBX: `scripts/testpbx up|status|down`.

More subcommands plug in through `build_parser()`: add a subparser and give it
`func=handler`, where handler(pbx, args) returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.harness.pbx import AGI_MODES, TestPBX

ROOT = Path(__file__).resolve().parents[2]


def cmd_up(pbx: TestPBX, args: argparse.Namespace) -> int:
    print_status(pbx.up(agi_mode=args.agi, seed=not args.no_seed), as_json=False)
    return 0


def cmd_status(pbx: TestPBX, args: argparse.Namespace) -> int:
    print_status(pbx.status(), as_json=args.json)
    return 0


def cmd_down(pbx: TestPBX, args: argparse.Namespace) -> int:
    pbx.down()
    print("test PBX stopped")
    return 0


def cmd_demo(pbx: TestPBX, args: argparse.Namespace) -> int:
    from tests.harness.demo import run_demo

    return run_demo(pbx, args.agi, args.language)


def print_status(status: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, indent=2))
        return
    for key, value in status.items():
        print(f"{key:12} {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/testpbx",
        description="Real Asterisk + Redis for callroute tests (SIP on 127.0.0.1:5060).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start the PBX (no-op if running), return when ready")
    up.add_argument("--agi", choices=AGI_MODES, default="fastagi",
                    help="how Asterisk runs the agent (default: %(default)s)")
    up.add_argument("--no-seed", action="store_true",
                    help="leave Redis empty instead of seeding docker/seed.sh's demo data")
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="show addresses, paths and PIDs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="start the PBX and place a call for every behaviour")
    demo.add_argument("--agi", choices=AGI_MODES, default="fastagi",
                      help="how Asterisk runs the agent (default: %(default)s)")
    demo.add_argument("--language", metavar="CODE",
                      help="the company's language for every call, e.g. fr (default: none, "
                           "the PBX's English)")
    demo.set_defaults(func=cmd_demo)

    down = sub.add_parser("down", help="stop everything `up` started")
    down.set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(TestPBX(ROOT), args)
    except (RuntimeError, TimeoutError, PermissionError) as exc:
        print(f"testpbx: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testpbx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

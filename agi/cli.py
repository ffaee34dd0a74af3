"""`callroute`: the admin CLI. It parses arguments, calls the admin layer (agi.admin),
and prints: the rules and the writes are the layer's.

Exit status: 0 success, 2 invalid input (one line on stderr, nothing written),
1 the store is unreachable (`doctor`: something needs attention). Every check runs
before the first write.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from agi import accounts_cli, admin, doctor
from agi import fields as f
from agi import schema as s
from agi.admin import checks
from agi.admin import errors as e
from agi.cli_commands import COMMANDS
from agi.config import ConfigError, load
from agi.store import AdminStore, StoreError

EXIT_OK, EXIT_STORE, EXIT_INVALID = 0, 1, 2
# Given to a --confirm-* or --language option, removes the extension's own setting.
DEFAULT_WORD = "default"
# The CLI's own sentence for refusals that concern how an option is spelt here.
_WORDING = {
    e.AFTER_NEEDS_NOANSWER: "--after is how long the phones ring before an unanswered call "
                            "is forwarded; it needs --when with noanswer",
    e.INVALID_NAME: f"--name must be 1 to {checks.NAME_MAX} printable characters",
}


class UsageError(Exception):
    """A command line argparse refuses: one line, exit status 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---- option values: the admin layer's own checks, run while parsing, so a bad command
# line is refused before any connection, with the sentence any other interface shows.

def _early(check: Callable[[str], object]) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return check(text)
        except admin.Refused as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _when(text: str) -> str:
    """--when: always, or a comma list of conditions, as stored (canonical order)."""
    return f.when_text(checks.conditions(text.split(",")))


def _whole(bounds: tuple[int, int]) -> Callable[[str], object]:
    return _early(lambda text: checks.whole(text, bounds, ""))


def _setting(parse: Callable[[str], object]) -> Callable[[str], str]:
    """A --confirm-* value as stored; "" (remove the setting) for the word 'default'."""
    def read(text: str) -> str:
        return "" if text == DEFAULT_WORD else str(parse(text))
    return read


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="callroute", description="Manage callroute call forwarding.")
    top = parser.add_subparsers(dest="group", required=True, parser_class=_Parser)

    ext = top.add_parser("ext", help="extensions").add_subparsers(dest="action", required=True)
    add = ext.add_parser("add", help="create or update an extension")
    add.add_argument("ext")
    add.add_argument("--device", action="append", metavar="DIAL",
                     help="an Asterisk dial string such as PJSIP/1001 (repeatable)")
    add.add_argument("--mailbox", help="voicemail box, default EXT@<voicemail_context>")
    add.add_argument("--did", metavar="NUMBER", help="the extension's own public number")
    add.add_argument("--externals-during-calls", action=argparse.BooleanOptionalAction,
                     help="external devices ring while a desk phone is in use (initially on)")
    add.add_argument("--confirm-tries", metavar="N", type=_setting(_whole(f.CONFIRM_TRIES)),
                     help=f"'press 1' prompts before giving up, {f.CONFIRM_TRIES[0]}-"
                          f"{f.CONFIRM_TRIES[1]} ('{DEFAULT_WORD}': the dialplan's)")
    add.add_argument("--confirm-timeout", metavar="S",
                     type=_setting(_whole(f.CONFIRM_TIMEOUT)),
                     help=f"seconds to wait for the digit, {f.CONFIRM_TIMEOUT[0]}-"
                          f"{f.CONFIRM_TIMEOUT[1]} ('{DEFAULT_WORD}': the dialplan's)")
    add.add_argument("--confirm-prompt", metavar="SOUND", type=_setting(_early(checks.sound)),
                     help=f"the 'press 1' sound, e.g. custom/press-1 ('{DEFAULT_WORD}': the "
                          "dialplan's)")
    add.add_argument("--language", metavar="CODE", type=_setting(_early(checks.language)),
                     help="language of the prompts on this extension's external phones and "
                          f"voicemail, e.g. fr or fr_FR ('{DEFAULT_WORD}': the company's)")
    ext.add_parser("remove", help="delete an extension").add_argument("ext")
    show = ext.add_parser("show", help="show one extension")
    show.add_argument("ext")
    show.add_argument("--json", action="store_true")
    ext.add_parser("list", help="list extensions").add_argument("--json", action="store_true")

    fwd = top.add_parser("forward", help="call forwarding").add_subparsers(dest="action",
                                                                           required=True)
    on = fwd.add_parser("on", help="forward calls to NUMBER")
    on.add_argument("ext")
    on.add_argument("number")
    on.add_argument("--when", type=_early(_when), metavar="always|offline|busy|noanswer[,...]",
                    help="forward every call (always), or only when the phones are offline, "
                         "busy or don't answer (default: keep the current setting, initially "
                         "always)")
    on.add_argument("--after", type=_whole(f.FORWARD_AFTER), metavar="SECONDS",
                    help=f"with noanswer: seconds the phones ring first, {f.FORWARD_AFTER[0]}-"
                         f"{f.FORWARD_AFTER[1]} (initially {f.FORWARD_AFTER_DEFAULT})")
    on.add_argument("--caller-id", choices=s.CALLER_ID_MODES,
                    help="number shown to the target (default: keep the current setting, "
                         "initially original); original-fallback retries with the company "
                         "number if the carrier refuses the caller's")
    on.add_argument("--require-keypress", action=argparse.BooleanOptionalAction,
                    help="the target must press 1 to take the call")
    fwd.add_parser("off", help="stop forwarding (keeps the target and options)") \
        .add_argument("ext")

    dev = top.add_parser("device", help="external phones that ring with the desk phones") \
        .add_subparsers(dest="action", required=True)
    dadd = dev.add_parser("add", help="add an external number, or change its settings")
    dadd.add_argument("ext")
    dadd.add_argument("number")
    dadd.add_argument("--require-keypress", action=argparse.BooleanOptionalAction,
                      help="this phone must press 1 to take the call (default: as the "
                           "extension's forward setting)")
    dadd.add_argument("--delay", type=_whole(f.DEVICE_DELAY), metavar="S",
                      help=f"seconds before it starts ringing, {f.DEVICE_DELAY[0]}-"
                           f"{f.DEVICE_DELAY[1]} (initially 0)")
    dadd.add_argument("--ring", type=_whole(f.DEVICE_RING), metavar="S",
                      help=f"seconds it rings, {f.DEVICE_RING[0]}-{f.DEVICE_RING[1]} "
                           "(initially the dialplan's)")
    drm = dev.add_parser("remove", help="remove one")
    drm.add_argument("ext")
    drm.add_argument("number")

    company = top.add_parser("company", help="company settings").add_subparsers(
        dest="action", required=True)
    cset = company.add_parser("set", help="set the company number, name or language")
    cset.add_argument("number", nargs="?")
    cset.add_argument("--name")
    cset.add_argument("--language", metavar="CODE", type=_setting(_early(checks.language)),
                      help="language of the prompts of every extension without its own, e.g. "
                           f"fr or fr_FR ('{DEFAULT_WORD}': the PBX's own)")

    audit = top.add_parser("audit", help="who changed what, newest first")
    audit.add_argument("--ext", help="only the changes of this extension")
    audit.add_argument("--limit", type=int, default=20, metavar="N",
                       help="at most N records (default 20)")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(action="show")
    accounts_cli.add_parsers(top)
    doctor.add_parser(top)
    return parser


def _refusal_line(exc: admin.Refused, args: argparse.Namespace | None) -> str:
    sentences = []
    for refusal in exc.refusals:
        sentence = _WORDING.get(refusal.code, refusal.message)
        if refusal.code == e.NOT_FOUND and args is not None and args.group != "ext":
            sentence += f"; create it with 'callroute ext add {args.ext}'"
        sentences.append(sentence)
    return "; ".join(sentences)


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        if args.group in accounts_cli.GROUPS:
            return accounts_cli.run(args)
        if args.group == "doctor":  # a bad setting is one of its findings, not an error
            return doctor.run(args)
        if args.group == "company" and (args.number, args.name, args.language) == (None,) * 3:
            raise UsageError("company set needs the company number, --name or --language "
                             "(see 'callroute company set --help')")
        config = load()
        COMMANDS[(args.group, args.action)](args, config, AdminStore(config))
    except (UsageError, ConfigError) as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except admin.Refused as exc:
        print(f"callroute: error: {_refusal_line(exc, args)}", file=sys.stderr)
        return EXIT_INVALID
    except StoreError as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_STORE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

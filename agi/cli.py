"""`callroute`: the admin CLI.

Exit status: 0 success, 2 invalid input (one line on stderr, nothing written),
1 the store is unreachable. Every check runs before the first write.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from agi import routing
from agi import variables as v
from agi.config import Config, ConfigError, load
from agi.guard import is_device, is_extension, is_mailbox
from agi.store import AdminStore, StoreError, dumps_list, loads_list

EXIT_OK, EXIT_STORE, EXIT_INVALID = 0, 1, 2


class UsageError(Exception):
    """Invalid input: reported in one line, exit status 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="callroute", description="Manage callroute call forwarding.")
    top = parser.add_subparsers(dest="group", required=True, parser_class=_Parser)

    ext = top.add_parser("ext", help="extensions").add_subparsers(dest="action", required=True)
    add = ext.add_parser("add", help="create or update an extension")
    add.add_argument("ext")
    add.add_argument("--device", action="append", metavar="DIAL",
                     help="an Asterisk dial string such as PJSIP/1001 (repeatable)")
    add.add_argument("--mailbox", help="voicemail box, default EXT@default")
    add.add_argument("--did", metavar="NUMBER", help="the extension's own public number")
    ext.add_parser("remove", help="delete an extension").add_argument("ext")
    show = ext.add_parser("show", help="show one extension")
    show.add_argument("ext")
    show.add_argument("--json", action="store_true")
    ext.add_parser("list", help="list extensions").add_argument("--json", action="store_true")

    fwd = top.add_parser("forward", help="call forwarding").add_subparsers(dest="action",
                                                                           required=True)
    on = fwd.add_parser("on", help="forward every call to NUMBER")
    on.add_argument("ext")
    on.add_argument("number")
    on.add_argument("--caller-id", choices=routing.CALLER_ID_MODES,
                    help="number shown to the target (default: keep the current setting, "
                         "initially original)")
    on.add_argument("--require-keypress", action=argparse.BooleanOptionalAction,
                    help="the target must press 1 to take the call")
    fwd.add_parser("off", help="stop forwarding (keeps the target and options)") \
        .add_argument("ext")

    dev = top.add_parser("device", help="external phones that ring with the desk phones") \
        .add_subparsers(dest="action", required=True)
    for name, text in (("add", "add an external number"), ("remove", "remove one")):
        sub = dev.add_parser(name, help=text)
        sub.add_argument("ext")
        sub.add_argument("number")

    company = top.add_parser("company", help="company settings").add_subparsers(
        dest="action", required=True)
    cset = company.add_parser("set", help="set the company number")
    cset.add_argument("number")
    cset.add_argument("--name")
    return parser


# ---- helpers -------------------------------------------------------------------------

def _check_ext(ext: str) -> str:
    if not is_extension(ext):
        raise UsageError(f"{ext!r} is not a valid extension (letters, digits, '_' or '-', "
                         "at most 32)")
    return ext


def _number(raw: str, config: Config, *, own: frozenset[str] = frozenset(),
            purpose: str = "target") -> str:
    from agi.numbers import NumberRejected, normalise  # phonenumbers only when needed

    try:
        return normalise(raw, config.country, own_numbers=own, purpose=purpose)
    except NumberRejected as exc:
        raise UsageError(str(exc)) from None


def _own_numbers(store: AdminStore) -> frozenset[str]:
    """The company's numbers and every extension's DID: never a forward target."""
    numbers = {store.get_company().get(routing.F_COMPANY_CALLER_ID, "")}
    numbers |= {fields.get(routing.F_DID, "") for fields in store.all_extensions().values()}
    return frozenset(n for n in numbers if n)


def _require(ext: str, fields: dict[str, str]) -> dict[str, str]:
    if not fields:
        raise UsageError(f"extension {ext} does not exist; create it with "
                         f"'callroute ext add {ext}'")
    return dict(fields)


def _edit(store: AdminStore, ext: str, mutate: Callable[[dict[str, str]], None]) -> dict:
    """Change an existing extension's fields in place, atomically; the new fields."""
    def change(fields: dict[str, str]) -> dict[str, str]:
        new = _require(ext, fields)
        mutate(new)
        return new
    return store.update_extension(ext, change)


def describe(ext: str, fields: dict[str, str], company: dict[str, str], config: Config) -> dict:
    """The extension's settings and, in one sentence, what a call to it does now."""
    route = routing.decide(ext, fields, company, config)
    return {
        "extension": ext,
        "devices": loads_list(fields.get(routing.F_DEVICES)) if routing.F_DEVICES in fields
        else [config.default_device_for(ext)],
        "external_devices": loads_list(fields.get(routing.F_EXTERNAL)),
        "forward": {
            "enabled": fields.get(routing.F_FORWARD_ENABLED) == "1",
            "target": fields.get(routing.F_FORWARD_TARGET, ""),
            "caller_id": fields.get(routing.F_FORWARD_CALLER_ID, routing.CALLER_ID_ORIGINAL),
            "require_keypress": fields.get(routing.F_REQUIRE_KEYPRESS) == "1",
        },
        "mailbox": fields.get(routing.F_MAILBOX) or routing.default_mailbox(ext),
        "did": fields.get(routing.F_DID, ""),
        "status": route.status,
        "problems": route.reason if route.status != v.STATUS_OK else "",
        "behaviour": behaviour(route),
    }


def behaviour(route: routing.Route) -> str:
    keypress = " (the callee must press 1)" if route.confirm else ""
    ext_keypress = " (external phones must press 1)" if route.confirm else ""
    if route.mode == v.MODE_FORWARD:
        shown = f"showing {route.callerid}" if route.callerid else "showing the caller's number"
        return (f"Calls ring only {route.target}{keypress}, {shown}; unanswered calls go to "
                f"voicemail {route.mailbox}.")
    if route.mode == v.MODE_RING:
        legs = [leg.split("@")[0].removeprefix("Local/") for leg in route.dial.split("&")]
        return (f"Calls ring {', '.join(legs)} in parallel{ext_keypress}; unanswered calls go to "
                f"voicemail {route.mailbox}.")
    return f"Nothing rings: calls go straight to voicemail {route.mailbox}."


def _print_ext(info: dict) -> None:
    fwd = info["forward"]
    state = "on" if fwd["enabled"] else "off"
    target = f" -> {fwd['target']}" if fwd["target"] else ""
    keypress = "required" if fwd["require_keypress"] else "not required"
    opts = f"caller ID {fwd['caller_id']}, keypress {keypress}"
    print(f"Extension {info['extension']}")
    print(f"  devices:          {', '.join(info['devices']) or '(none)'}")
    print(f"  external devices: {', '.join(info['external_devices']) or '(none)'}")
    print(f"  forwarding:       {state}{target} ({opts})")
    print(f"  mailbox:          {info['mailbox']}")
    print(f"  DID:              {info['did'] or '(none)'}")
    if info["problems"]:
        print(f"  WARNING:          stored data is corrupt: {info['problems']}")
    print(f"  {info['behaviour']}")


# ---- commands --------------------------------------------------------------------------

def cmd_ext_add(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = _check_ext(args.ext)
    devices = args.device
    for device in devices or []:
        if not is_device(device):
            raise UsageError(f"{device!r} is not a dial string such as PJSIP/{ext}")
    if args.mailbox is not None and not is_mailbox(args.mailbox):
        raise UsageError(f"{args.mailbox!r} is not a mailbox such as {ext}@default")
    did = _number(args.did, config, purpose="own") if args.did else None
    if did:
        for other, fields in store.all_extensions().items():
            if other != ext and fields.get(routing.F_DID) == did:
                raise UsageError(f"{did} is already the DID of extension {other}")

    def change(fields: dict[str, str]) -> dict[str, str]:
        new = dict(fields)
        if devices is not None:
            new[routing.F_DEVICES] = dumps_list(list(dict.fromkeys(devices)))
        elif routing.F_DEVICES not in new:
            new[routing.F_DEVICES] = dumps_list([config.default_device_for(ext)])
        if args.mailbox is not None:
            new[routing.F_MAILBOX] = args.mailbox
        new.setdefault(routing.F_MAILBOX, routing.default_mailbox(ext))
        if did:
            new[routing.F_DID] = did
        new.setdefault(routing.F_FORWARD_ENABLED, "0")
        return new

    existed = bool(store.get_extension(ext))
    store.update_extension(ext, change)
    print(f"extension {ext} {'updated' if existed else 'added'}")


def cmd_ext_remove(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = _check_ext(args.ext)
    store.update_extension(ext, lambda fields: _require(ext, fields) and None)
    print(f"extension {ext} removed")


def cmd_ext_show(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = _check_ext(args.ext)
    fields = store.get_extension(ext)
    if not fields:
        raise UsageError(f"extension {ext} does not exist")
    info = describe(ext, fields, store.get_company(), config)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_ext(info)


def cmd_ext_list(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    company = store.get_company()
    infos = [describe(ext, fields, company, config)
             for ext, fields in store.all_extensions().items()]
    if args.json:
        print(json.dumps(infos, indent=2))
        return
    if not infos:
        print("no extensions (add one with 'callroute ext add EXT')")
    for info in infos:
        fwd = info["forward"]
        state = f"forward -> {fwd['target']}" if fwd["enabled"] else "ring devices"
        print(f"{info['extension']:<8} {state:<28} {info['behaviour']}")


def cmd_forward_on(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = _check_ext(args.ext)
    target = _number(args.number, config, own=_own_numbers(store))

    def mutate(new: dict[str, str]) -> None:
        new[routing.F_FORWARD_ENABLED] = "1"
        new[routing.F_FORWARD_TARGET] = target
        if args.caller_id is not None:
            new[routing.F_FORWARD_CALLER_ID] = args.caller_id
        new.setdefault(routing.F_FORWARD_CALLER_ID, routing.CALLER_ID_ORIGINAL)
        if args.require_keypress is not None:
            new[routing.F_REQUIRE_KEYPRESS] = "1" if args.require_keypress else "0"
        new.setdefault(routing.F_REQUIRE_KEYPRESS, "0")

    new = _edit(store, ext, mutate)
    print(f"extension {ext}: forwarding on to {target} (caller ID "
          f"{new[routing.F_FORWARD_CALLER_ID]}, keypress "
          f"{'required' if new[routing.F_REQUIRE_KEYPRESS] == '1' else 'not required'})")


def cmd_forward_off(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = _check_ext(args.ext)
    _edit(store, ext, lambda new: new.update({routing.F_FORWARD_ENABLED: "0"}))
    print(f"extension {ext}: forwarding off")


def cmd_device_add(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = _check_ext(args.ext)
    number = _number(args.number, config, own=_own_numbers(store))

    def mutate(new: dict[str, str]) -> None:
        numbers = loads_list(new.get(routing.F_EXTERNAL))
        if number not in numbers:
            numbers.append(number)
        new[routing.F_EXTERNAL] = dumps_list(numbers)

    _edit(store, ext, mutate)
    print(f"extension {ext}: {number} rings with the desk phones")


def cmd_device_remove(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = _check_ext(args.ext)
    number = _number(args.number, config, purpose="own")

    def mutate(new: dict[str, str]) -> None:
        numbers = loads_list(new.get(routing.F_EXTERNAL))
        if number not in numbers:
            raise UsageError(f"{number} is not an external device of extension {ext}")
        new[routing.F_EXTERNAL] = dumps_list([n for n in numbers if n != number])

    _edit(store, ext, mutate)
    print(f"extension {ext}: {number} removed")


def cmd_company_set(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    number = _number(args.number, config, purpose="own")
    fields = {routing.F_COMPANY_CALLER_ID: number}
    if args.name is not None:
        name = args.name.strip()
        if not name or not name.isprintable() or len(name) > 64:
            raise UsageError("--name must be 1 to 64 printable characters")
        fields[routing.F_COMPANY_NAME] = name
    store.set_company(fields)
    print(f"company number set to {number}")


COMMANDS: dict[tuple[str, str], Callable[[argparse.Namespace, Config, AdminStore], None]] = {
    ("ext", "add"): cmd_ext_add,
    ("ext", "remove"): cmd_ext_remove,
    ("ext", "show"): cmd_ext_show,
    ("ext", "list"): cmd_ext_list,
    ("forward", "on"): cmd_forward_on,
    ("forward", "off"): cmd_forward_off,
    ("device", "add"): cmd_device_add,
    ("device", "remove"): cmd_device_remove,
    ("company", "set"): cmd_company_set,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        config = load()
        COMMANDS[(args.group, args.action)](args, config, AdminStore(config))
    except (UsageError, ConfigError) as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except StoreError as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_STORE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""`callroute`: the admin CLI.

Exit status: 0 success, 2 invalid input (one line on stderr, nothing written),
1 the store is unreachable. Every check runs before the first write.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable

from agi import accounts_cli, admin, routing
from agi import fields as f
from agi import variables as v
from agi.admin import UsageError, check_ext, edit, normalise, reachable, require
from agi.config import Config, ConfigError, load
from agi.guard import is_device, is_mailbox
from agi.store import AdminStore, DidTaken, StoreError, dumps_list, loads_list

EXIT_OK, EXIT_STORE, EXIT_INVALID = 0, 1, 2
# Given to a --confirm-* option, removes the extension's own setting.
DEFAULT_WORD = "default"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---- option values: checked while parsing, before any connection -------------------------

def _when(text: str) -> str:
    """--when: always, or a comma list of conditions; stored in canonical order."""
    items = [item.strip() for item in text.split(",")]
    if items == [f.WHEN_ALWAYS]:
        return f.WHEN_ALWAYS
    if not all(item in f.CONDITIONS for item in items):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 'always' or a comma-separated list of "
            f"{', '.join(f.CONDITIONS)} ('always' can't be combined)")
    return f.when_text(tuple(items))


def _whole(bounds: tuple[int, int]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = f.integer(text.strip(), bounds)
        if value is None:
            raise argparse.ArgumentTypeError(
                f"{text[:20]!r} is not a whole number from {bounds[0]} to {bounds[1]}")
        return value
    return parse


def _setting(parse: Callable[[str], object]) -> Callable[[str], str]:
    """A --confirm-* value as stored; "" (remove the setting) for the word 'default'."""
    def read(text: str) -> str:
        return "" if text == DEFAULT_WORD else str(parse(text))
    return read


def _sound(text: str) -> str:
    if not f.is_sound(text):
        raise argparse.ArgumentTypeError(
            f"{text[:70]!r} is not a sound name such as custom/press-1 (letters, digits, "
            f"'_', '-' and '/', at most {f.SOUND_MAX} characters, no extension)")
    return text


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
    add.add_argument("--externals-during-calls", action=argparse.BooleanOptionalAction,
                     help="external devices ring while a desk phone is in use (initially on)")
    add.add_argument("--confirm-tries", metavar="N", type=_setting(_whole(f.CONFIRM_TRIES)),
                     help=f"'press 1' prompts before giving up, {f.CONFIRM_TRIES[0]}-"
                          f"{f.CONFIRM_TRIES[1]} ('{DEFAULT_WORD}': the dialplan's)")
    add.add_argument("--confirm-timeout", metavar="S",
                     type=_setting(_whole(f.CONFIRM_TIMEOUT)),
                     help=f"seconds to wait for the digit, {f.CONFIRM_TIMEOUT[0]}-"
                          f"{f.CONFIRM_TIMEOUT[1]} ('{DEFAULT_WORD}': the dialplan's)")
    add.add_argument("--confirm-prompt", metavar="SOUND", type=_setting(_sound),
                     help=f"the 'press 1' sound, e.g. custom/press-1 ('{DEFAULT_WORD}': the "
                          "dialplan's)")
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
    on.add_argument("--when", type=_when, metavar="always|offline|busy|noanswer[,...]",
                    help="forward every call (always), or only when the phones are offline, "
                         "busy or don't answer (default: keep the current setting, initially "
                         "always)")
    on.add_argument("--after", type=_whole(f.FORWARD_AFTER), metavar="SECONDS",
                    help=f"with noanswer: seconds the phones ring first, {f.FORWARD_AFTER[0]}-"
                         f"{f.FORWARD_AFTER[1]} (initially {f.FORWARD_AFTER_DEFAULT})")
    on.add_argument("--caller-id", choices=routing.CALLER_ID_MODES,
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
    cset = company.add_parser("set", help="set the company number")
    cset.add_argument("number")
    cset.add_argument("--name")
    accounts_cli.add_parsers(top)
    return parser


# ---- describing an extension ---------------------------------------------------------------

def describe(ext: str, fields: dict[str, str], company: dict[str, str], config: Config) -> dict:
    """The extension's settings and, in one sentence, what a call to it does now.

    Settings are shown as a call uses them (through the same readers); corrupt ones are
    named in "problems".
    """
    route = routing.decide(ext, fields, company, config)
    when = f.forward_when(fields.get(routing.F_FORWARD_WHEN) or f.WHEN_ALWAYS)
    target = fields.get(routing.F_FORWARD_TARGET, "")
    owner = company.get(routing.did_field(target), "") if target else ""
    return {
        "extension": ext,
        "devices": loads_list(fields.get(routing.F_DEVICES)) if routing.F_DEVICES in fields
        else [config.default_device_for(ext)],
        "external_devices": [
            {"number": d.number, "require_keypress": d.require_keypress, "delay": d.delay,
             "ring": d.ring} for d in f.external_devices(fields.get(routing.F_EXTERNAL))],
        "externals_during_calls": fields.get(routing.F_EXTERNALS_DURING_CALLS) != "0",
        "forward": {
            "enabled": fields.get(routing.F_FORWARD_ENABLED) == "1",
            "target": target,
            "target_extension": owner if owner != ext else "",
            "when": f.when_text((f.WHEN_NOANSWER,) if when is None else when),
            "after": _stored_int(fields, routing.F_FORWARD_AFTER, f.FORWARD_AFTER)
            or f.FORWARD_AFTER_DEFAULT,
            "caller_id": fields.get(routing.F_FORWARD_CALLER_ID, routing.CALLER_ID_ORIGINAL),
            "require_keypress": fields.get(routing.F_REQUIRE_KEYPRESS) == "1",
        },
        "confirm": {  # None: the dialplan's global applies
            "tries": int(route.ask_tries) if route.ask_tries else None,
            "timeout": int(route.ask_timeout) if route.ask_timeout else None,
            "prompt": route.ask_prompt or None,
        },
        "mailbox": fields.get(routing.F_MAILBOX) or routing.default_mailbox(ext),
        "did": fields.get(routing.F_DID, ""),
        "status": route.status,
        "problems": route.reason if route.status != v.STATUS_OK else "",
        "behaviour": behaviour(route),
    }


def _stored_int(fields: dict[str, str], field: str, bounds: tuple[int, int]) -> int | None:
    return f.integer(fields.get(field, ""), bounds)


_EXTERNAL_LEG = re.compile(r"Local/(\+[0-9]+)-([01])-([0-9]+)-([0-9]+)@"
                           + re.escape(v.EXTERNAL_LEG_CONTEXT) + "/n")
_HOP_LEG = re.compile(r"Local/([^@]+)@" + re.escape(v.HOP_LEG_CONTEXT) + "/n")
# NEXT_ON values in the order a sentence reads best.
_CONDITION_WORDS = ((v.DIALSTATUS_NOANSWER, "nobody answers"),
                    (v.DIALSTATUS_BUSY, "the phones are busy"),
                    (v.DIALSTATUS_OFFLINE, "no phone is reachable"))


def _leg_words(leg: str) -> str:
    """One Dial() leg of a Route, for people: the routing module's leg formats, read back."""
    hop = _HOP_LEG.fullmatch(leg)
    if hop:
        return f"extension {hop.group(1)}'s rules"
    external = _EXTERNAL_LEG.fullmatch(leg)
    if not external:
        return leg
    number, keypress, delay, ring = external.groups()
    details = [text for text, shown in (("press 1", keypress == "1"),
                                        (f"after {delay} s", delay != "0"),
                                        (f"for {ring} s", ring != "0")) if shown]
    return f"{number} ({', '.join(details)})" if details else number


def _words_list(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def behaviour(route: routing.Route) -> str:
    """What a call does now, in one sentence."""
    voicemail = f"unanswered calls go to voicemail {route.mailbox}."
    if route.mode == v.MODE_VOICEMAIL:
        return f"Nothing rings: calls go straight to voicemail {route.mailbox}."
    outside = bool(route.trunk)
    if route.callerid:
        shown = f", showing {route.callerid}"
    elif route.callerid_retry:
        shown = f", showing the caller's number ({route.callerid_retry} if the carrier refuses it)"
    else:
        shown = ", showing the caller's number" if outside and route.mode == v.MODE_FORWARD \
            else ""
    if route.mode == v.MODE_FORWARD:
        hop = _HOP_LEG.fullmatch(route.dial)
        if hop:
            return f"Calls follow extension {hop.group(1)}'s rules; {voicemail}"
        return f"Calls ring only {_leg_words(route.dial)}{shown}; {voicemail}"
    legs = _words_list([_leg_words(leg) for leg in route.dial.split("&")])
    ringing = f" for {route.ringtime} s" if route.ringtime else ""
    quiet = " (only the desk phones while one is in use)" if route.desks else ""
    then = ""
    if route.next_dial:
        statuses = route.next_on.split("-")
        conditions = [words for status, words in _CONDITION_WORDS if status in statuses]
        then = f", then {_leg_words(route.next_dial)} if {_words_list(conditions, 'or')}"
    return f"Calls ring {legs}{ringing}{quiet}{then}{shown}; {voicemail}"


def _device_words(device: dict) -> str:
    """An external device as `ext show` lists it: its number and its own settings."""
    keypress = device["require_keypress"]
    details = [text for text, shown in (
        ("press 1", keypress is True),
        ("no press 1", keypress is False),
        (f"after {device['delay']} s", bool(device["delay"])),
        (f"rings {device['ring']} s", device["ring"] is not None)) if shown]
    return f"{device['number']} ({', '.join(details)})" if details else device["number"]


def _print_ext(info: dict) -> None:
    fwd = info["forward"]
    state = "on" if fwd["enabled"] else "off"
    target = f" -> {fwd['target']}" if fwd["target"] else ""
    if fwd["target_extension"]:
        target += f", extension {fwd['target_extension']}'s rules"
    when = ""
    if fwd["when"] != f.WHEN_ALWAYS:
        after = f" after {fwd['after']} s" if f.WHEN_NOANSWER in fwd["when"] else ""
        when = f"when {fwd['when']}{after}, "
    keypress = "required" if fwd["require_keypress"] else "not required"
    opts = f"{when}caller ID {fwd['caller_id']}, keypress {keypress}"
    devices = [_device_words(device) for device in info["external_devices"]]
    confirm = info["confirm"]
    asked = [text for text, value in ((f"{confirm['tries']} tries", confirm["tries"]),
                                      (f"{confirm['timeout']} s each", confirm["timeout"]),
                                      (f"sound {confirm['prompt']}", confirm["prompt"]))
             if value]
    print(f"Extension {info['extension']}")
    print(f"  devices:          {', '.join(info['devices']) or '(none)'}")
    print(f"  external devices: {', '.join(devices) or '(none)'}")
    print("  during calls:     external devices "
          + ("ring too" if info["externals_during_calls"] else "stay silent"))
    print(f"  forwarding:       {state}{target} ({opts})")
    print(f"  press 1 prompt:   {', '.join(asked) or 'dialplan defaults'}")
    print(f"  mailbox:          {info['mailbox']}")
    print(f"  DID:              {info['did'] or '(none)'}")
    if info["problems"]:
        print(f"  WARNING:          stored data is corrupt: {info['problems']}")
    print(f"  {info['behaviour']}")


# ---- commands --------------------------------------------------------------------------

def cmd_ext_add(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = check_ext(args.ext)
    devices = args.device
    for device in devices or []:
        if not is_device(device):
            raise UsageError(f"{device!r} is not a dial string such as PJSIP/{ext}")
    if args.mailbox is not None and not is_mailbox(args.mailbox):
        raise UsageError(f"{args.mailbox!r} is not a mailbox such as {ext}@default")
    did = normalise(args.did, config, purpose="own") if args.did else None
    if did:  # the DID map says the same, except for DIDs stored before it existed
        for other, fields in store.all_extensions().items():
            if other != ext and fields.get(routing.F_DID) == did:
                raise UsageError(f"{did} is already the DID of extension {other}")
    settings = {routing.F_CONFIRM_TRIES: args.confirm_tries,
                routing.F_CONFIRM_TIMEOUT: args.confirm_timeout,
                routing.F_CONFIRM_PROMPT: args.confirm_prompt}

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
            dialled = [d.number for d in f.external_devices(new.get(routing.F_EXTERNAL))]
            if did in (new.get(routing.F_FORWARD_TARGET), *dialled):
                raise UsageError(f"{did} is a forward target or external device of extension "
                                 f"{ext}; as its DID, calls there would loop")
            new[routing.F_DID] = did
        new.setdefault(routing.F_FORWARD_ENABLED, "0")
        if args.externals_during_calls is not None:
            new[routing.F_EXTERNALS_DURING_CALLS] = "1" if args.externals_during_calls else "0"
        for field, value in settings.items():
            if value == "":
                new.pop(field, None)
            elif value is not None:
                new[field] = value
        return new

    existed = bool(store.get_extension(ext))
    store.update_extension(ext, change)
    print(f"extension {ext} {'updated' if existed else 'added'}")


def cmd_ext_remove(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = check_ext(args.ext)
    store.update_extension(ext, lambda fields: require(ext, fields) and None)
    print(f"extension {ext} removed")


def cmd_ext_show(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = check_ext(args.ext)
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
    new, owner = admin.forward_on(store, config, args.ext, args.number, when=args.when,
                                  after=args.after, caller_id=args.caller_id,
                                  keypress=args.require_keypress)
    hop = f", extension {owner}'s rules" if owner else ""
    when = f.forward_when(new[routing.F_FORWARD_WHEN]) or ()
    after = _stored_int(new, routing.F_FORWARD_AFTER, f.FORWARD_AFTER) \
        or f.FORWARD_AFTER_DEFAULT
    condition = f", when {new[routing.F_FORWARD_WHEN]}" if when else ""
    if f.WHEN_NOANSWER in when:
        condition += f" after {after} s"
    print(f"extension {args.ext}: forwarding on to {new[routing.F_FORWARD_TARGET]}{hop}"
          f"{condition} (caller ID {new[routing.F_FORWARD_CALLER_ID]}, keypress "
          f"{'required' if new[routing.F_REQUIRE_KEYPRESS] == '1' else 'not required'})")


def cmd_forward_off(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    admin.forward_off(store, args.ext)
    print(f"extension {args.ext}: forwarding off")


def cmd_device_add(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = check_ext(args.ext)
    number = reachable(store, config, ext, args.number)

    def mutate(new: dict[str, str]) -> None:
        number.recheck(new)
        devices = f.external_devices(new.get(routing.F_EXTERNAL))
        device = next((d for d in devices if d.number == number.number), None)
        if device is None:
            device = f.ExternalDevice(number.number)
            devices.append(device)
        if args.require_keypress is not None:
            device.require_keypress = args.require_keypress
        if args.delay is not None:
            device.delay = args.delay
        if args.ring is not None:
            device.ring = args.ring
        new[routing.F_EXTERNAL] = f.dumps_external_devices(devices)

    edit(store, ext, mutate)
    hop = f" (extension {number.owner}'s rules)" if number.owner else ""
    print(f"extension {ext}: {number.number}{hop} rings with the desk phones")


def cmd_device_remove(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    ext = check_ext(args.ext)
    number = normalise(args.number, config, purpose="own")

    def mutate(new: dict[str, str]) -> None:
        devices = f.external_devices(new.get(routing.F_EXTERNAL))
        if number not in (d.number for d in devices):
            raise UsageError(f"{number} is not an external device of extension {ext}")
        new[routing.F_EXTERNAL] = f.dumps_external_devices(
            [d for d in devices if d.number != number])

    edit(store, ext, mutate)
    print(f"extension {ext}: {number} removed")


def cmd_company_set(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    number = normalise(args.number, config, purpose="own")
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
        if args.group in accounts_cli.GROUPS:
            return accounts_cli.run(args)
        config = load()
        COMMANDS[(args.group, args.action)](args, config, AdminStore(config))
    except (UsageError, ConfigError, DidTaken) as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except StoreError as exc:
        print(f"callroute: error: {exc}", file=sys.stderr)
        return EXIT_STORE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

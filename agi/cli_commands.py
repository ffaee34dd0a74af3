"""The `callroute` commands: each turns parsed arguments into one admin-layer call and
prints the outcome. No rule and no Redis access here: both are agi.admin's."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Callable

from agi import admin
from agi import fields as f
from agi.admin import UNSET, Actor, DeviceChanges, ExtensionChanges, ForwardingChanges
from agi.config import Config
from agi.store import AdminStore

Command = Callable[[argparse.Namespace, Config, AdminStore], None]


def actor() -> Actor:
    """cli:<the unix user running the command>."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.geteuid()}"
    return Actor(f"cli:{user}")


def _given(value: object) -> object:
    """An option's value, UNSET when it was not given."""
    return UNSET if value is None else value


def _confirm(value: str | None) -> object:
    """A --confirm-* value as parsed: None not given, "" back to the default."""
    if value is None:
        return UNSET
    return None if value == "" else value


def _device_words(device: dict) -> str:
    """An external device as `ext show` lists it: its number and its own settings."""
    keypress = device["require_keypress"]
    details = [text for text, shown in (
        ("press 1", keypress is True),
        ("no press 1", keypress is False),
        (f"after {device['delay']} s", bool(device["delay"])),
        (f"rings {device['ring']} s", device["ring"] is not None)) if shown]
    return f"{device['number']} ({', '.join(details)})" if details else device["number"]


def _language_words(language: dict) -> str:
    if language["own"] is not None:
        return f"{language['own']} (this extension's)"
    return f"{language['used']} (the company's)" if language["used"] \
        else "the PBX's own (none set)"


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
    print(f"  language:         {_language_words(info['language'])}")
    if info["problems"]:
        print(f"  WARNING:          stored data is corrupt: {info['problems']}")
    for entry in info["corrupt"]:
        print(f"  ignored:          {entry['field']} = {json.dumps(entry['stored'])[:80]}, "
              f"using {json.dumps(entry['used'])}")
    print(f"  {info['behaviour']}")


def cmd_ext_add(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    changes = ExtensionChanges(
        devices=_given(args.device), mailbox=_given(args.mailbox),
        did=args.did or UNSET, externals_during_calls=_given(args.externals_during_calls),
        confirm_tries=_int(_confirm(args.confirm_tries)),
        confirm_timeout=_int(_confirm(args.confirm_timeout)),
        confirm_prompt=_confirm(args.confirm_prompt), language=_confirm(args.language))
    view = admin.put_extension(store, config, args.ext, changes, actor())
    print(f"extension {args.ext} {'added' if view.created else 'updated'}")


def _int(value: object) -> object:
    return int(value) if isinstance(value, str) else value


def cmd_ext_remove(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    admin.remove_extension(store, config, args.ext, actor())
    print(f"extension {args.ext} removed")


def cmd_ext_show(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    info = admin.get_extension(store, config, args.ext).to_json()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_ext(info)


def _print_list(args: argparse.Namespace, items: list[dict], empty: str,
                line: Callable[[dict], str]) -> None:
    """A list command's output: JSON, or one line per item (`empty` if none)."""
    if args.json:
        print(json.dumps(items, indent=2))
        return
    print("\n".join(map(line, items)) if items else empty)


def cmd_ext_list(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    def line(info: dict) -> str:
        fwd = info["forward"]
        state = f"forward -> {fwd['target']}" if fwd["enabled"] else "ring devices"
        return f"{info['extension']:<8} {state:<28} {info['behaviour']}"

    _print_list(args, [view.to_json() for view in admin.list_extensions(store, config)],
                "no extensions (add one with 'callroute ext add EXT')", line)


def cmd_forward_on(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    changes = ForwardingChanges(
        enabled=True, target=args.number,
        when=UNSET if args.when is None else f.forward_when(args.when),
        after=_given(args.after), caller_id=_given(args.caller_id),
        require_keypress=_given(args.require_keypress))
    fwd = admin.set_forwarding(store, config, args.ext, changes, actor()).forward
    hop = f", extension {fwd.target_extension}'s rules" if fwd.target_extension else ""
    condition = f", when {fwd.when}" if fwd.when != f.WHEN_ALWAYS else ""
    if f.WHEN_NOANSWER in fwd.when:
        condition += f" after {fwd.after} s"
    print(f"extension {args.ext}: forwarding on to {fwd.target}{hop}{condition} (caller ID "
          f"{fwd.caller_id}, keypress {'required' if fwd.require_keypress else 'not required'})")


def cmd_forward_off(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    admin.set_forwarding(store, config, args.ext, ForwardingChanges(enabled=False), actor())
    print(f"extension {args.ext}: forwarding off")


def cmd_device_add(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    changes = DeviceChanges(require_keypress=_given(args.require_keypress),
                            delay=_given(args.delay), ring=_given(args.ring))
    view = admin.put_device(store, config, args.ext, args.number, changes, actor())
    hop = f" (extension {view.subject_extension}'s rules)" if view.subject_extension else ""
    print(f"extension {args.ext}: {view.subject}{hop} rings with the desk phones")


def cmd_device_remove(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    view = admin.remove_device(store, config, args.ext, args.number, actor())
    print(f"extension {args.ext}: {view.subject} removed")


def cmd_company_set(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    company = admin.set_company(store, config, caller_id=_given(args.number),
                                name=_given(args.name), language=_confirm(args.language),
                                actor=actor())
    if args.number is not None:
        print(f"company number set to {company.caller_id}")
    if args.language is not None:
        language = company.language or "none (the PBX's own)"
        print(f"company language set to {language}")


def cmd_audit(args: argparse.Namespace, config: Config, store: AdminStore) -> None:
    def line(record: dict) -> str:
        changes = ", ".join(f"{field}: {'-' if old is None else old} -> "
                            f"{'-' if new is None else new}"
                            for field, (old, new) in record["changes"].items())
        where = f"ext {record['ext']}" if record["ext"] else "company"
        return (f"{record['at']}  {record['actor']}  {record['action']}  {where}  "
                f"{changes or '(no change)'}")

    records = admin.read_audit(store, ext=args.ext, limit=max(args.limit, 0))
    _print_list(args, [r.to_json() for r in records], "no changes recorded", line)


COMMANDS: dict[tuple[str, str], Command] = {
    ("ext", "add"): cmd_ext_add,
    ("ext", "remove"): cmd_ext_remove,
    ("ext", "show"): cmd_ext_show,
    ("ext", "list"): cmd_ext_list,
    ("forward", "on"): cmd_forward_on,
    ("forward", "off"): cmd_forward_off,
    ("device", "add"): cmd_device_add,
    ("device", "remove"): cmd_device_remove,
    ("company", "set"): cmd_company_set,
    ("audit", "show"): cmd_audit,
}

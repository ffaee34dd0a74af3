"""CLI parsing: the exact command syntax of the issue, and one-line errors with exit 2.

Parsing is checked without Redis: a bad command line must be refused before any
connection is attempted (the store is never even configured in these tests).
"""

from __future__ import annotations

import argparse

import pytest

from agi import cli
from agi.cli import UsageError, build_parser


def parse(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(list(argv)))


# Options of `ext add`, `forward on` and `device add` that default to "keep what is stored".
EXT_ADD = {"externals_during_calls": None, "confirm_tries": None, "confirm_timeout": None,
           "confirm_prompt": None}
FORWARD_ON = {"when": None, "after": None, "caller_id": None, "require_keypress": None}
DEVICE_ADD = {"require_keypress": None, "delay": None, "ring": None}


@pytest.mark.parametrize(("argv", "expected"), [
    (["ext", "add", "1001"],
     {"group": "ext", "action": "add", "ext": "1001", "device": None, "mailbox": None,
      "did": None, **EXT_ADD}),
    (["ext", "add", "1001", "--device", "PJSIP/1001", "--device", "PJSIP/1001b",
      "--mailbox", "1001@default", "--did", "+33142685301"],
     {"group": "ext", "action": "add", "ext": "1001", "device": ["PJSIP/1001", "PJSIP/1001b"],
      "mailbox": "1001@default", "did": "+33142685301", **EXT_ADD}),
    (["ext", "add", "1001", "--no-externals-during-calls", "--confirm-tries", "2",
      "--confirm-timeout", "08", "--confirm-prompt", "custom/press-1"],
     {"group": "ext", "action": "add", "ext": "1001", "device": None, "mailbox": None,
      "did": None, "externals_during_calls": False, "confirm_tries": "2",
      "confirm_timeout": "8", "confirm_prompt": "custom/press-1"}),
    (["ext", "add", "1001", "--externals-during-calls", "--confirm-tries", "default",
      "--confirm-timeout", "default", "--confirm-prompt", "default"],
     {"group": "ext", "action": "add", "ext": "1001", "device": None, "mailbox": None,
      "did": None, "externals_during_calls": True, "confirm_tries": "",
      "confirm_timeout": "", "confirm_prompt": ""}),
    (["ext", "remove", "1001"], {"group": "ext", "action": "remove", "ext": "1001"}),
    (["ext", "show", "1001"], {"group": "ext", "action": "show", "ext": "1001", "json": False}),
    (["ext", "show", "1001", "--json"],
     {"group": "ext", "action": "show", "ext": "1001", "json": True}),
    (["ext", "list"], {"group": "ext", "action": "list", "json": False}),
    (["ext", "list", "--json"], {"group": "ext", "action": "list", "json": True}),
    (["forward", "on", "1001", "0612345678"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON}),
    (["forward", "on", "1001", "0612345678", "--caller-id", "company", "--require-keypress"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON, "caller_id": "company", "require_keypress": True}),
    (["forward", "on", "1001", "0612345678", "--caller-id", "original",
      "--no-require-keypress"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON, "caller_id": "original", "require_keypress": False}),
    (["forward", "on", "1001", "0612345678", "--caller-id", "original-fallback"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON, "caller_id": "original-fallback"}),
    (["forward", "on", "1001", "0612345678", "--when", "noanswer,busy", "--after", "15"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON, "when": "busy,noanswer", "after": 15}),
    (["forward", "on", "1001", "0612345678", "--when", " offline , noanswer,offline"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON, "when": "offline,noanswer"}),
    (["forward", "on", "1001", "0612345678", "--when", "always"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON, "when": "always"}),
    (["forward", "on", "1001", "0612345678", "--after", "300"],
     {"group": "forward", "action": "on", "ext": "1001", "number": "0612345678",
      **FORWARD_ON, "after": 300}),
    (["forward", "off", "1001"], {"group": "forward", "action": "off", "ext": "1001"}),
    (["device", "add", "1001", "0612345678"],
     {"group": "device", "action": "add", "ext": "1001", "number": "0612345678",
      **DEVICE_ADD}),
    (["device", "add", "1001", "0612345678", "--require-keypress", "--delay", "0",
      "--ring", "120"],
     {"group": "device", "action": "add", "ext": "1001", "number": "0612345678",
      "require_keypress": True, "delay": 0, "ring": 120}),
    (["device", "add", "1001", "0612345678", "--no-require-keypress", "--delay", "60",
      "--ring", "5"],
     {"group": "device", "action": "add", "ext": "1001", "number": "0612345678",
      "require_keypress": False, "delay": 60, "ring": 5}),
    (["device", "remove", "1001", "0612345678"],
     {"group": "device", "action": "remove", "ext": "1001", "number": "0612345678"}),
    (["company", "set", "+33142685300"],
     {"group": "company", "action": "set", "number": "+33142685300", "name": None}),
    (["company", "set", "+33142685300", "--name", "Acme SARL"],
     {"group": "company", "action": "set", "number": "+33142685300", "name": "Acme SARL"}),
], ids=lambda argv: " ".join(argv) if isinstance(argv, list) else None)
def test_commands_parse(argv: list[str], expected: dict[str, object]) -> None:
    assert parse(*argv) == expected


def test_every_parsed_command_has_a_handler() -> None:
    groups = {("ext", a) for a in ("add", "remove", "show", "list")} | {
        ("forward", "on"), ("forward", "off"), ("device", "add"), ("device", "remove"),
        ("company", "set"), ("audit", "show")}
    assert set(cli.COMMANDS) == groups


def subcommand(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    """The parser of `callroute PATH...` (argparse keeps them in its subparsers action)."""
    for name in path:
        group = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = group.choices[name]
    return parser


def test_keypress_is_a_boolean_optional_action() -> None:
    """Both spellings exist, and neither given means 'keep the stored setting' (None)."""
    actions = {a.dest: a for a in subcommand(build_parser(), "forward", "on")._actions}
    assert isinstance(actions["require_keypress"], argparse.BooleanOptionalAction)
    assert actions["require_keypress"].option_strings == ["--require-keypress",
                                                          "--no-require-keypress"]
    assert actions["require_keypress"].default is None


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required: group"),
    (["ext"], "the following arguments are required: action"),
    (["ext", "add"], "the following arguments are required: ext"),
    (["ext", "rename", "1001"], "invalid choice: 'rename'"),
    (["forward", "on", "1001"], "the following arguments are required: number"),
    (["forward", "on", "1001", "0612345678", "--caller-id", "boss"],
     "argument --caller-id: invalid choice: 'boss'"),
    (["forward", "on", "1001", "0612345678", "--keypress"], "unrecognized arguments"),
    (["forward", "off"], "the following arguments are required: ext"),
    (["device", "add", "1001"], "the following arguments are required: number"),
    (["company", "set"], "the following arguments are required: number"),
    (["ext", "show", "1001", "--yaml"], "unrecognized arguments: --yaml"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["forward", "on", "1001", "0612345678", "--when", "always,busy"],
     "argument --when: 'always,busy' is not 'always' or a comma-separated list of offline, "
     "busy, noanswer ('always' can't be combined)"),
    (["forward", "on", "1001", "0612345678", "--when", "busy,"], "argument --when: 'busy,'"),
    (["forward", "on", "1001", "0612345678", "--when", ""], "argument --when: ''"),
    (["forward", "on", "1001", "0612345678", "--when", "unreachable"],
     "argument --when: 'unreachable'"),
    (["forward", "on", "1001", "0612345678", "--after", "4"],
     "argument --after: '4' is not a whole number from 5 to 300"),
    (["forward", "on", "1001", "0612345678", "--after", "301"],
     "argument --after: '301' is not a whole number from 5 to 300"),
    (["forward", "on", "1001", "0612345678", "--after", "20s"], "argument --after: '20s'"),
    (["forward", "on", "1001", "0612345678", "--after", "-5"],
     "argument --after: '-5' is not a whole number from 5 to 300"),
    (["forward", "on", "1001", "0612345678", "--caller-id", "fallback"],
     "argument --caller-id: invalid choice: 'fallback'"),
    (["device", "add", "1001", "0612345678", "--delay", "61"],
     "argument --delay: '61' is not a whole number from 0 to 60"),
    (["device", "add", "1001", "0612345678", "--ring", "4"],
     "argument --ring: '4' is not a whole number from 5 to 120"),
    (["device", "add", "1001", "0612345678", "--ring", "121"],
     "argument --ring: '121' is not a whole number from 5 to 120"),
    (["device", "add", "1001", "0612345678", "--ring", "default"], "argument --ring: 'default'"),
    (["device", "remove", "1001", "0612345678", "--delay", "5"], "unrecognized arguments"),
    (["ext", "add", "1001", "--confirm-tries", "0"],
     "argument --confirm-tries: '0' is not a whole number from 1 to 9"),
    (["ext", "add", "1001", "--confirm-tries", "10"], "argument --confirm-tries: '10'"),
    (["ext", "add", "1001", "--confirm-timeout", "31"],
     "argument --confirm-timeout: '31' is not a whole number from 1 to 30"),
    (["ext", "add", "1001", "--confirm-prompt", "../secret"],
     "argument --confirm-prompt: '../secret' is not a sound name"),
    (["ext", "add", "1001", "--confirm-prompt", "press1.gsm"],
     "argument --confirm-prompt: 'press1.gsm' is not a sound name"),
    (["ext", "add", "1001", "--confirm-prompt", "a" * 65], "is not a sound name"),
    (["ext", "add", "1001", "--confirm-prompt", 'x"\nEXEC Dial'], "is not a sound name"),
], ids=lambda argv: " ".join(argv) if isinstance(argv, list) else None)
def test_bad_arguments_raise_usage_error(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        build_parser().parse_args(argv)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("argv", [
    ["forward", "on", "1001"],
    ["ext", "list", "--csv"],
    ["forward", "on", "1001", "0612345678", "--caller-id", "x"],
], ids=" ".join)
def test_main_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_REDIS_URL", "redis://127.0.0.1:1/0")  # never contacted
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("callroute: error: ")
    assert err.rstrip().endswith("--help')")


def test_config_error_exits_2(capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLROUTE_COUNTRY", "ZZ")
    assert cli.main(["ext", "list"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "callroute: error: CALLROUTE_COUNTRY 'ZZ' is not an ISO region "
                              "code such as FR or US\n")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["forward", "on", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--require-keypress, --no-require-keypress" in out
    assert "--caller-id {original,company,original-fallback}" in out
    assert "--when always|offline|busy|noanswer[,...]" in out
